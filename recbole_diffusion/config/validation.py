"""Checks of a whole config before any data is loaded: unknown keys and generic values.

Known keys are those with a default (RecBole's overall, dataset and model-type yaml, the model's
yaml, the plugin's run keys), the keys RecBole's pipeline and the model's own code read without a
default (found once in their source), and those a user declares with ``extra_config_keys``.
"""

import difflib
import inspect
import math
import re
from functools import lru_cache
from pathlib import Path

from recbole.utils import ModelType

from recbole_diffusion.utils.checks import ConfigError, is_int, require

# Keys of every run through the plugin (any model), with their defaults.
PLUGIN_RUN_DEFAULTS = {
    # A training batch loss above this multiple of max(|first batch loss|, 1), or non-finite,
    # stops the run as diverged (None: never).
    "divergence_factor": 10000.0,
    # Config keys the user adds on purpose (read by their own model); no typo check for them.
    "extra_config_keys": [],
    # The seed of the data split (None: seed). Runs over several seeds share one split this way.
    "split_seed": None,
    # How a general model's training interactions are drawn each epoch: "interaction" (RecBole's:
    # every one once) or "user" (LightGCN's code: a user uniformly, then one of theirs).
    "train_sampling": "interaction",
}
TRAIN_SAMPLINGS = ("interaction", "user")
# Set by RecBole's distributed launch (run_recbole's --nproc etc.) rather than a yaml.
DISTRIBUTED_KEYS = {"local_rank", "nproc", "world_size", "offset", "ip", "port"}
LEARNING_RATE_KEYS = ("learning_rate", "lr1", "lr2")
SIZE_KEY = re.compile(r"(^|_)(dims?|sizes?)(_|$)")
CONFIG_KEY_READ = re.compile(r"""config\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\]""")


@lru_cache(maxsize=None)
def recbole_pipeline_keys():
    """Keys RecBole's data, trainer, evaluator and quick-start code read, default or not."""
    import recbole

    root = Path(recbole.__file__).parent
    keys = set()
    for package in ("config", "data", "trainer", "evaluator", "utils", "quick_start", "sampler"):
        for source in (root / package).rglob("*.py"):
            keys.update(CONFIG_KEY_READ.findall(source.read_text(encoding="utf-8")))
    return frozenset(keys)


@lru_cache(maxsize=None)
def model_read_keys(model_class):
    """Keys a model's own code (and its RecBole / plugin base classes) reads, default or not
    (RecBole's DiffRec reads ``norm``, which its yaml lacks)."""
    keys = set()
    for cls in model_class.__mro__:
        if cls.__module__.split(".")[0] in ("recbole", "recbole_diffusion"):
            keys.update(CONFIG_KEY_READ.findall(Path(inspect.getsourcefile(cls)).read_text(encoding="utf-8")))
    return frozenset(keys)


def known_keys(config, declared=True):
    """Keys the run knows; with ``declared``, also the user's ``extra_config_keys``."""
    known = set(config.internal_config_dict) | recbole_pipeline_keys() | set(PLUGIN_RUN_DEFAULTS) | DISTRIBUTED_KEYS
    known |= model_read_keys(config.model_class)
    known |= {"model", "dataset"}
    return known | set(config.final_config_dict.get("extra_config_keys") or []) if declared else known


def check_known_keys(config):
    """Every key the user set must be known: a typo fails with the nearest known keys."""
    declared = config.final_config_dict.get("extra_config_keys")
    require(
        isinstance(declared, list) and all(isinstance(key, str) for key in declared),
        "extra_config_keys", declared, "must be a list of key names",
    )
    known = known_keys(config)
    for key, value in config.external_config_dict.items():
        if key not in known:
            raise unknown_key_error(key, value, config.model_label, known)


def unknown_key_error(key, value, models, known):
    """The error for a key that ``models`` (a name, or names) do not know, with the nearest known keys."""
    near = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.7)
    hint = f"did you mean {' or '.join(repr(k) for k in near)}? " if near else ""
    return ConfigError(
        f"config key '{key}' = {value!r} is not a key of {models} (nor of RecBole, the dataset or the plugin): {hint}"
        "A key your own code reads can be declared with extra_config_keys: [...]"
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(key, value, default):
    """A value of the kind the key's default has (a number where a number is expected, ...)."""
    if default is None or value is None:
        return
    if isinstance(default, bool):
        require(isinstance(value, bool), key, value, "must be True or False")
    elif is_int(default):
        require(is_int(value), key, value, "must be an integer")
    elif isinstance(default, float):
        require(_is_number(value), key, value, "must be a number")
    elif isinstance(default, (list, dict)):
        require(isinstance(value, type(default)), key, value, f"must be a {type(default).__name__}")


def _check_range(key, value):
    """Ranges that hold for the key by its meaning, whatever the model."""
    if key in ("epochs", "stopping_step", "train_batch_size", "eval_batch_size", "MAX_ITEM_LIST_LENGTH"):
        require(is_int(value) and value >= 1, key, value, "must be an integer >= 1")
    elif key == "eval_step":
        require(is_int(value) and value >= 0, key, value, "must be an integer >= 0 (0: no validation)")
    elif key in LEARNING_RATE_KEYS:
        require(_is_number(value) and math.isfinite(value) and value > 0, key, value, "must be a finite number > 0")
    elif key == "weight_decay" and value is not None:
        require(_is_number(value) and math.isfinite(value) and value >= 0, key, value, "must be a finite number >= 0")
    elif key == "divergence_factor" and value is not None:
        require(_is_number(value) and value > 1, key, value, "must be a number > 1, or None to never stop")
    elif "dropout" in key and (_is_number(value) or isinstance(value, list)):
        values = value if isinstance(value, list) else [value]
        require(all(_is_number(v) and 0 <= v < 1 for v in values), key, value, "dropout probabilities must be in [0, 1)")
    elif SIZE_KEY.search(key) and (is_int(value) or (isinstance(value, list) and value and all(is_int(v) for v in value))):
        values = value if isinstance(value, list) else [value]
        require(all(v >= 1 for v in values), key, value, "sizes must be integers >= 1")


def check_values(config):
    """Types of the keys the user set (against their defaults) and generic ranges of every key."""
    final, defaults = config.final_config_dict, {**PLUGIN_RUN_DEFAULTS, **config.internal_config_dict}
    for key in config.external_config_dict:
        _check_type(key, final.get(key), defaults.get(key))
    for key, value in final.items():
        _check_range(key, value)
    _check_valid_metric(final)
    _check_train_sampling(config)


def _check_train_sampling(config):
    """``train_sampling: user`` replaces RecBole's loader of training interactions, where the model has that one."""
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.utils import get_dataloader

    final = config.final_config_dict
    value = final["train_sampling"]
    require(value in TRAIN_SAMPLINGS, "train_sampling", value, f"must be one of {list(TRAIN_SAMPLINGS)}")
    if value == "interaction":
        return
    require(
        final["MODEL_TYPE"] == ModelType.GENERAL, "train_sampling", value,
        f"draws users' interactions for a general recommender; {config.model_label} is {final['MODEL_TYPE'].name.lower()}",
    )
    loader = get_dataloader(config, "train")
    require(
        loader is TrainDataLoader, "train_sampling", value,
        f"draws training interactions, and {config.model_label} trains from RecBole's {loader.__name__} instead",
    )
    require(
        final["single_spec"], "train_sampling", value,
        "draws in each process alone: a distributed run (--nproc > 1) would train every process on the same draws",
    )


def _check_valid_metric(final):
    """``valid_metric`` must be one of the computed ``metrics``, at one of the ``topk`` cut-offs
    (RecBole finds out only after the first training epoch, with a KeyError)."""
    valid_metric, metrics, topk = final.get("valid_metric"), final.get("metrics") or [], final.get("topk")
    if not isinstance(valid_metric, str):
        return
    name, _, k = valid_metric.partition("@")
    computed = [metric.lower() for metric in (metrics if isinstance(metrics, list) else [metrics])]
    require(name.lower() in computed, "valid_metric", valid_metric, f"must be one of the metrics {metrics}, with a cut-off where it has one")
    if k:
        cutoffs = topk if isinstance(topk, list) else [topk]
        require(k.isdigit() and int(k) in cutoffs, "valid_metric", valid_metric, f"its cut-off must be one of topk = {topk}")
