"""Model and trainer lookup: the plugin's classes first, then RecBole's (as RecBole-GNN does)."""

import difflib
import importlib
import importlib.util
import pkgutil
import re
import signal
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import recbole.model
import recbole.utils

from recbole_diffusion.utils.checks import ConfigError

MODEL_SUBMODULES = ["general_recommender", "context_aware_recommender", "sequential_recommender"]
# RecBole's model packages, but exlib_recommender (importing it needs xgboost and lightgbm).
RECBOLE_SUBMODULES = MODEL_SUBMODULES + ["knowledge_aware_recommender"]
# `--model=recbole.DiffRec` names RecBole's built-in class where the plugin has one of that name.
RECBOLE_PREFIX = "recbole."


@lru_cache(maxsize=None)
def plugin_models():
    """{class name: (submodule, module name)} of every model class the plugin ships."""
    found = {}
    for submodule in MODEL_SUBMODULES:
        package = importlib.import_module(f"recbole_diffusion.model.{submodule}")
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for name, value in vars(module).items():
                if isinstance(value, type) and name.lower() == info.name and value.__module__ == module.__name__:
                    found[name] = (submodule, info.name)
    return found


# Import names whose pip package is named differently.
PIP_NAMES = {"faiss": "faiss-cpu", "torch_scatter": "torch-scatter", "kmeans_pytorch": "kmeans-pytorch", "sklearn": "scikit-learn"}
TOP_LEVEL_IMPORT = re.compile(r"^(?:from|import)\s+([A-Za-z_]\w*)", re.M)


def pip_name(module):
    return PIP_NAMES.get(module, module)


def missing_packages(source_file):
    """pip names of the packages a model module imports at its top level that are absent.

    (Imports inside a model's functions, e.g. NCL's faiss, surface when the model runs:
    :class:`MissingPackageError` there.)"""
    with open(source_file, encoding="utf-8") as f:
        modules = sorted(set(TOP_LEVEL_IMPORT.findall(f.read())))
    return [pip_name(name) for name in modules if importlib.util.find_spec(name) is None]


def require_packages(model_name, source_file):
    """Stop, in one line naming what to install, when a model needs a package the install lacks."""
    missing = missing_packages(source_file)
    if missing:
        raise ConfigError(
            f"model '{model_name}' needs {', '.join(missing)}, which recbole-diffusion does not install: "
            f"pip install {' '.join(missing)}"
        )


def is_plugin_model(model_class):
    return model_class.__module__.startswith("recbole_diffusion.")


def recbole_has_model(model_name):
    """Whether RecBole itself ships a model module of this name (without importing optional libs)."""
    return any(
        importlib.util.find_spec(f"recbole.model.{submodule}.{model_name.lower()}") is not None
        for submodule in RECBOLE_SUBMODULES
    )


def recbole_model(model_name):
    """RecBole's own model class; a clear error for an unknown name or a missing optional package."""
    # by path: importing exlib_recommender's package would itself need xgboost and lightgbm
    for submodule in RECBOLE_SUBMODULES + ["exlib_recommender"]:
        source = Path(recbole.model.__file__).parent / submodule / f"{model_name.lower()}.py"
        if source.is_file():
            require_packages(model_name, source)
    try:
        return recbole.utils.get_model(model_name)
    except (ValueError, ImportError):
        # An unknown name makes RecBole import its optional xgboost/lightgbm models: say what is meant.
        near = difflib.get_close_matches(model_name, sorted(set(plugin_models()) | recbole_model_names()), n=3, cutoff=0.6)
        hint = f": did you mean {' or '.join(near)}?" if near else ""
        raise ConfigError(
            f"model '{model_name}' is neither a recbole-diffusion model {sorted(plugin_models())} nor a RecBole model{hint}"
        ) from None


@lru_cache(maxsize=None)
def recbole_model_names():
    """The names of RecBole's models (the class a model file is named after), nothing imported."""
    root = Path(recbole.model.__file__).parent
    names = set()
    for submodule in RECBOLE_SUBMODULES + ["exlib_recommender"]:
        for source in (root / submodule).glob("*.py"):
            classes = re.findall(r"^class (\w+)\(", source.read_text(encoding="utf-8"), re.M)
            names.update(name for name in classes if name.lower() == source.stem)
    return frozenset(names)


def get_model(model_name):
    """Model class for ``model_name``: the plugin's, else RecBole's; ``recbole.<Name>`` forces RecBole's."""
    if model_name.startswith(RECBOLE_PREFIX):
        return recbole_model(model_name[len(RECBOLE_PREFIX):])
    if model_name in plugin_models():
        submodule, module_name = plugin_models()[model_name]
        module = importlib.import_module(f"recbole_diffusion.model.{submodule}.{module_name}")
        return getattr(module, model_name)
    return recbole_model(model_name)


def get_trainer(model_type, model_name, model_class=None):
    """Trainer class: the plugin's ``<Name>Trainer`` for its models, else RecBole's choice.

    Whatever the choice, checkpoints are written and read the way that works on torch >= 2.6.
    """
    from recbole_diffusion.trainer import with_safe_training

    plugin_trainers = importlib.import_module("recbole_diffusion.trainer")
    trainer = None
    if model_class is not None and is_plugin_model(model_class):
        trainer = getattr(plugin_trainers, model_name + "Trainer", None)
    if trainer is None:
        trainer = recbole.utils.get_trainer(model_type, model_name)
    return with_safe_training(trainer)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def signals_interrupt():
    """Within: SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, whatever the process
    inherited or a library installed (a process started with SIGINT ignored, as bash's ``cmd &``
    in a script starts it, gets no KeyboardInterrupt from Python; Ray's driver dies in native code
    on SIGTERM). Elsewhere than the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
