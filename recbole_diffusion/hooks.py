"""Teach RecBole's own entry points the plugin's models (run once, at ``import recbole_diffusion``).

RecBole chooses by model *name*: ``recbole.utils.get_model`` imports
``recbole.model.<kind>.<name>``; Config reads ``recbole/properties/model/<Name>.yaml``; the
trainer is ``recbole.trainer.<Name>Trainer`` or a default; the dataloader comes from a name table
inside ``recbole.data.utils.get_dataloader``. So that ``recbole.quick_start.run_recbole(model=
'TDiffRec')`` works, this module

1. registers the plugin's model modules under ``recbole.model.<kind>.<name>`` for every *new*
   name (a name RecBole already has, e.g. ``DiffRec``, keeps meaning RecBole's class there);
2. makes Config load the plugin's yaml defaults for plugin model classes (and not RecBole's file
   of the same name);
3. gives plugin models the dataloader they need (auto-encoder style models, which read a user's
   whole history, get RecBole's user dataloader);
4. registers ``recbole.trainer.<Name>Trainer`` for new names, with torch>=2.6-safe checkpoints;
5. switches autograd anomaly detection back off: RecBole's SINE module turns it on for the whole
   process when ``recbole.model.sequential_recommender`` is imported (by any model lookup), which
   makes every backward pass several times slower, RecBole's own models' included;
6. installs the shims that run RecBole 1.2.1 on NumPy 2 and SciPy >= 1.13 (:mod:`.compat`);
7. never loads RecBole's dataset and dataloader caches, which are pickles
   (:mod:`.data.utils`);
8. silences the deprecation warnings RecBole 1.2.1 itself triggers on every run under pandas 2 and
   torch 2 (they say nothing about the user's run);
9. gives RecBole's LightGCN a CSR adjacency with a symmetric backward, three times faster on CPU
   (:mod:`.graph`).
"""

import sys
import warnings
from importlib.resources import files

import torch
import yaml

import recbole.config.configurator
import recbole.data
import recbole.data.utils
import recbole.quick_start.quick_start
import recbole.model.sequential_recommender  # noqa: F401  (imports SINE, see 5. above)
import recbole.trainer
import recbole.utils
from recbole.model.abstract_recommender import AutoEncoderMixin

from recbole_diffusion import compat, graph
from recbole_diffusion.data import utils as data_utils
from recbole_diffusion.utils.utils import get_model, get_trainer, is_plugin_model, plugin_models, recbole_has_model

PROPERTIES = files("recbole_diffusion.properties")  # the repository's top-level properties/
_RECBOLE_LOAD_INTERNAL = recbole.config.configurator.Config._load_internal_config_dict
_RECBOLE_GET_DATALOADER = recbole.data.utils.get_dataloader
# (category, message start) of the warnings RecBole 1.2.1's own code raises on every run.
RECBOLE_DEPRECATIONS = [
    (FutureWarning, "A value is trying to be set on a copy"),  # pandas: its inplace fillna
    (FutureWarning, "using <built-in function len> in Series.agg"),  # pandas: its sequence lengths
    (FutureWarning, "`torch.cuda.amp.GradScaler"),  # torch: its trainer's GradScaler
    (DeprecationWarning, "__array_wrap__ must accept context"),  # NumPy 2: its Interaction's torch tensors
]


def plugin_yaml_files(model_class):
    """The plugin's default files for a model: overall, then each plugin base class, then its own."""
    found = [PROPERTIES / "overall.yaml"]
    for cls in reversed(model_class.__mro__):
        if is_plugin_model(cls):
            found.append(PROPERTIES / "model" / f"{cls.__name__}.yaml")
    return [path for path in found if path.is_file()]


def _load_internal_config_dict(self, model, model_class, dataset):
    if not is_plugin_model(model_class):
        return _RECBOLE_LOAD_INTERNAL(self, model, model_class, dataset)
    # A name RecBole has no yaml for: RecBole's defaults by model type, none of its model files.
    _RECBOLE_LOAD_INTERNAL(self, f"recbole_diffusion:{model}", model_class, dataset)
    for path in plugin_yaml_files(model_class):
        with path.open(encoding="utf-8") as f:
            self.internal_config_dict.update(yaml.load(f, Loader=self.yaml_loader) or {})


def get_dataloader(config, phase):
    """RecBole's dataloader choice, which also knows what plugin models need."""
    model_class = config.model_class
    if is_plugin_model(model_class) and issubclass(model_class, AutoEncoderMixin):
        return recbole.data.utils._get_AE_dataloader(config, phase)
    return _RECBOLE_GET_DATALOADER(config, phase)


def install():
    compat.install()
    for name, (submodule, module_name) in plugin_models().items():
        if recbole_has_model(name):
            continue  # RecBole's own class keeps its name there
        model_class = get_model(name)
        sys.modules[f"recbole.model.{submodule}.{module_name}"] = sys.modules[model_class.__module__]
        setattr(recbole.trainer, f"{name}Trainer", get_trainer(model_class.type, name, model_class))
    recbole.config.configurator.Config._load_internal_config_dict = _load_internal_config_dict
    recbole.data.utils.get_dataloader = get_dataloader
    recbole.data.get_dataloader = get_dataloader
    for module in (recbole.data.utils, recbole.data, recbole.quick_start.quick_start):
        module.create_dataset = data_utils.create_dataset
    recbole.data.utils.load_split_dataloaders = recbole.data.load_split_dataloaders = data_utils.load_split_dataloaders
    torch.autograd.set_detect_anomaly(False)
    for category, message in RECBOLE_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=category)
    graph.install()
