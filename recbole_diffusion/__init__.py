"""recbole-diffusion: diffusion and lifelong-memory recommenders as a RecBole plugin.

Importing the package also teaches RecBole's own entry points the plugin's new model names
(see :mod:`recbole_diffusion.hooks`).
"""

from recbole_diffusion import hooks as _hooks

_hooks.install()

from recbole_diffusion.quick_start import load_data_and_model, objective_function, run, run_recbole_diffusion  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load_data_and_model", "objective_function", "run", "run_recbole_diffusion"]
