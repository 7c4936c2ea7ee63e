"""The plugin's Config: RecBole's, with plugin-first model lookup and early validation."""

import recbole.config

from recbole_diffusion.utils.checks import ConfigError
from recbole_diffusion.utils.utils import RECBOLE_PREFIX, get_model


class Config(recbole.config.Config):
    """RecBole's Config for plugin runs.

    - ``model`` resolves to the plugin's class first, then RecBole's; ``recbole.<Name>`` (e.g.
      ``recbole.DiffRec``) picks RecBole's built-in class of that name, whose ``config['model']``
      stays ``<Name>`` so that RecBole's name-based choices apply to it unchanged.
    - The plugin's defaults (``properties/overall.yaml`` and ``properties/model/<Name>.yaml``) are
      loaded for plugin models (see :mod:`recbole_diffusion.hooks`).
    - A model's ``check_config(config)`` runs here, so bad values fail before data or training.
    - Pickled without the model class (it is looked up again on load), so a checkpoint needs no
      model class in its allow-list.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except NotImplementedError as error:
            raise self._evaluation_error(error) from error
        check = getattr(self.model_class, "check_config", None)
        if check is not None:
            check(self)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self._external_model_name()
        if isinstance(model, str):
            self.model_spec = model
            model_class = get_model(model)
            return super()._get_model_and_dataset(model_class, dataset)
        self.model_spec = model.__name__
        return super()._get_model_and_dataset(model, dataset)

    def _evaluation_error(self, error):
        """RecBole's refusal of an evaluation setting, restated with the keys and values involved."""
        final = self.__dict__.get("final_config_dict", {})
        mode = (final.get("eval_args") or {}).get("mode")
        return ConfigError(
            f"config keys 'eval_args' (mode = {mode!r}) and 'metrics' = {final.get('metrics')!r}: {error} "
            "(value metrics such as AUC / LogLoss need a sampled mode like uni100; full ranking needs ranking metrics)"
        )

    def _external_model_name(self):
        try:
            return self.external_config_dict["model"]
        except KeyError:
            raise KeyError("model needs to be given: as an argument, in a config file, a config dict or --model=") from None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("model_class", None)
        state.pop("yaml_loader", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.model_class = get_model(self.model_spec)
        self.yaml_loader = self._build_yaml_loader()
        # RecBole's numpy aliases (np.float, ...), which its metrics use, are set up when a Config
        # is built; a process that only unpickles one (load_data_and_model) needs them too.
        self.compatibility_settings()

    @property
    def model_label(self):
        """The model as the user named it (``recbole.DiffRec`` vs ``DiffRec``), for logs and tables."""
        return self.model_spec if self.model_spec.startswith(RECBOLE_PREFIX) else self["model"]
