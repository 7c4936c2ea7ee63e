"""Every RecBole 1.2.1 general, sequential and context-aware model runs by name through the plugin
(one epoch on a slice of the bundled ml-100k, best checkpoint reloaded for the test), so that a pin
bump cannot silently break one."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from recbole_diffusion.quick_start import run_recbole_diffusion
from recbole_diffusion.utils import ConfigError, get_model
from recbole_diffusion.utils.utils import RECBOLE_PREFIX, plugin_models

KINDS = ("general_recommender", "sequential_recommender", "context_aware_recommender")
# ml-100k's first ~4,000 ratings in time (61 users, ~950 items): every model in a few seconds.
SLICE = {"val_interval": {"timestamp": "[0,875000000)"}}
# Only where the tiny slice itself is the problem, never to make a model's defaults work:
TINY_DATA = {
    "DGCF": {"train_batch_size": 64},  # its correlation sample (n_items / batches) must fit the 61 users
}
NEEDS_PACKAGE = {"NCL": "faiss"}  # imported when the model trains: stops naming the package
NEEDS_DATA = {"GRU4RecKG": ".ent", "KSR": ".ent"}  # pre-trained knowledge embeddings, not in ml-100k


def recbole_models():
    """(kind, class name) of every model module RecBole ships in the three kinds."""
    found = []
    for kind in KINDS:
        package = importlib.import_module(f"recbole.model.{kind}")
        for info in pkgutil.iter_modules(package.__path__):
            source = Path(package.__path__[0], f"{info.name}.py").read_text(encoding="utf-8")
            found += [(kind, name) for name in re.findall(r"^class (\w+)\(", source, re.M) if name.lower() == info.name]
    return found


MODELS = recbole_models()


def test_the_list_is_complete():
    assert len(MODELS) >= 80 and ("general_recommender", "LightGCN") in MODELS and ("sequential_recommender", "SASRec") in MODELS


@pytest.mark.parametrize("kind, name", MODELS, ids=[name for _, name in MODELS])
def test_model_runs_by_name(kind, name, checkpoint_dir):
    spec = RECBOLE_PREFIX + name if name in plugin_models() else name
    config = {
        **SLICE,
        "epochs": 1,
        "pretrain_epochs": 1,  # RaCT, S3Rec: pre-training runs instead of training by default,
        "save_step": 1,  # and saves the pre-trained model every save_step epochs
        "show_progress": False,
        "checkpoint_dir": str(checkpoint_dir),
        **({"MAX_ITEM_LIST_LENGTH": 10} if kind == "sequential_recommender" else {}),
        **TINY_DATA.get(name, {}),
    }
    if name in NEEDS_PACKAGE:
        with pytest.raises(ModuleNotFoundError) as info:
            run_recbole_diffusion(model=spec, dataset="ml-100k", config_dict=config)
        assert info.value.name == NEEDS_PACKAGE[name]
        return
    if name in NEEDS_DATA:
        with pytest.raises(ValueError, match=re.escape(NEEDS_DATA[name])):
            run_recbole_diffusion(model=spec, dataset="ml-100k", config_dict=config)
        return
    result = run_recbole_diffusion(model=spec, dataset="ml-100k", config_dict=config)
    assert result["test_result"] and all(value == value for value in result["test_result"].values())  # no NaN


@pytest.mark.parametrize("name, package", [("lightgbm", "lightgbm"), ("xgboost", "xgboost")])
def test_models_of_libraries_not_installed_name_the_package(name, package):
    with pytest.raises(ConfigError, match=f"model '{name}' needs {package}.*pip install {package}"):
        get_model(name)


def test_a_package_imported_at_run_time_is_named_in_one_line(run_entry):
    assert run_entry("--model=NCL", "--epochs=1", "--val_interval={'timestamp': '[0,875000000)'}") == (
        "error: this run needs the package faiss-cpu, which recbole-diffusion does not install: pip install faiss-cpu"
    )
