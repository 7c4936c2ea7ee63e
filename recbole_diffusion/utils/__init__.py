from recbole_diffusion.utils.checks import ConfigError
from recbole_diffusion.utils.checkpoint import load_checkpoint, save_checkpoint
from recbole_diffusion.utils.utils import RECBOLE_PREFIX, get_model, get_trainer, is_plugin_model, plugin_models

__all__ = [
    "ConfigError",
    "RECBOLE_PREFIX",
    "get_model",
    "get_trainer",
    "is_plugin_model",
    "load_checkpoint",
    "plugin_models",
    "save_checkpoint",
]
