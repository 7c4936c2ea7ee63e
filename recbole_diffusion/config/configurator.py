"""The plugin's Config: RecBole's, with plugin-first model lookup and early validation."""

from logging import getLogger

import torch
import yaml

import recbole.config
from recbole.utils import ModelType

from recbole_diffusion.config.arguments import parse_value
from recbole_diffusion.config.trust import check_no_code
from recbole_diffusion.config.validation import PLUGIN_RUN_DEFAULTS, check_known_keys, check_values
from recbole_diffusion.utils.checkpoint import data_to_config
from recbole_diffusion.utils.checks import ConfigError
from recbole_diffusion.utils.utils import RECBOLE_PREFIX, get_model

DEFAULT_DATASET = "ml-100k"  # ships inside RecBole: runs without a download


class SafeYamlLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with RecBole's implicit resolvers (set by :func:`safe_yaml_loader`)."""


def safe_yaml_loader():
    """RecBole's yaml reading (its float resolver included: ``1e-4`` is a float) on PyYAML's
    SafeLoader: a config file holds data only (RecBole's FullLoader resolves ``!!python/name:``
    tags to objects)."""
    if "yaml_implicit_resolvers" not in vars(SafeYamlLoader):  # once: RecBole appends its resolver on every call
        recbole.config.Config._build_yaml_loader(None)  # adds RecBole's resolver to FullLoader: take its resolvers over
        SafeYamlLoader.yaml_implicit_resolvers = {key: list(value) for key, value in yaml.FullLoader.yaml_implicit_resolvers.items()}
    return SafeYamlLoader


def read_yaml_file(path, name):
    """The data of a YAML file read with :func:`safe_yaml_loader`; a file that cannot be read or is
    not plain data fails as a :class:`ConfigError` that starts with ``name``."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f.read(), Loader=safe_yaml_loader())
    except OSError as error:
        raise ConfigError(f"{name}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{name}: not plain YAML data ({str(error).splitlines()[0]})") from None


class Config(recbole.config.Config):
    """RecBole's Config for plugin runs.

    - ``model`` resolves to the plugin's class first, then RecBole's; ``recbole.<Name>`` (e.g.
      ``recbole.DiffRec``) picks RecBole's built-in class of that name, whose ``config['model']``
      stays ``<Name>`` so that RecBole's name-based choices apply to it unchanged.
    - The plugin's defaults (``properties/overall.yaml`` and ``properties/model/<Name>.yaml``) are
      loaded for plugin models (see :mod:`recbole_diffusion.hooks`).
    - Config files are read as plain YAML data (SafeLoader), never as Python objects.
    - The command line is not read here (the entry script passes its ``--key=value`` overrides as
      ``config_dict``), and strings are parsed as literals, never ``eval``-ed.
    - Before any data is loaded: an unknown key fails with the nearest known ones, generic values
      (epochs, learning rates, batch sizes, dropouts, sizes, types) are checked, then the model's
      ``check_config(config)``; every error names the key and the value.
    - CE-loss sequential models get ``train_neg_sample_args: None`` unless the user set it
      (RecBole's own default refuses them).
    - Values that would make RecBole run code (KD_DAGFM's ``teacher``, dataset caches ...) are
      refused (:mod:`.trust`), also in a config restored from a checkpoint.
    - ``from_data()``: the Config a checkpoint stored as plain values (:func:`..utils.checkpoint.config_as_data`).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except NotImplementedError as error:
            raise self._evaluation_error(error) from error
        check_known_keys(self)
        check_values(self)
        check_no_code(self.final_config_dict, self.model_class)
        check = getattr(self.model_class, "check_config", None)
        if check is not None:
            check(self)

    def _init_device(self):
        """RecBole's, but a distributed run (``--nproc``) without CUDA uses gloo on the CPU
        (RecBole 1.2.1 always asks for NCCL and one GPU per process)."""
        final = self.final_config_dict
        if "local_rank" not in final or (final["use_gpu"] and torch.cuda.is_available()):
            return super()._init_device()
        final["gpu_id"] = ""
        rank = final["local_rank"]
        torch.distributed.init_process_group(
            backend="gloo", rank=rank + final["offset"], world_size=final["world_size"],
            init_method=f"tcp://{final['ip']}:{final['port']}",
        )
        final.update(device=torch.device("cpu"), single_spec=False, use_gpu=False)
        if rank != 0:
            final.update(state="error", show_progress=False, verbose=False)

    def _build_yaml_loader(self):
        return safe_yaml_loader()

    def _load_config_files(self, file_list):
        loaded = {}
        for file in file_list or []:
            loaded.update(read_yaml_file(file, f"config file '{file}'") or {})
        return loaded

    def _load_cmd_line(self):
        return {}

    def _convert_config_dict(self, config_dict):
        return {key: parse_value(value) for key, value in config_dict.items()}

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self._external_model_name()
        if dataset is None and "dataset" not in self.external_config_dict:
            dataset = DEFAULT_DATASET
        if isinstance(model, str):
            self.model_spec = model
            model_class = get_model(model)
            return super()._get_model_and_dataset(model_class, dataset)
        self.model_spec = model.__name__
        return super()._get_model_and_dataset(model, dataset)

    def _get_final_config_dict(self):
        final = {**PLUGIN_RUN_DEFAULTS, **super()._get_final_config_dict()}
        cross_entropy_sequential = final["MODEL_TYPE"] == ModelType.SEQUENTIAL and final.get("loss_type") == "CE"
        if cross_entropy_sequential and final.get("train_neg_sample_args") is not None:
            if "train_neg_sample_args" in self.external_config_dict:
                raise ConfigError(
                    f"config key 'train_neg_sample_args' = {final['train_neg_sample_args']!r}: {self.model} with "
                    "loss_type CE scores all items and samples no negatives; set it to None (~ in yaml)"
                )
            final["train_neg_sample_args"] = None
            getLogger().info(f"{self.model} uses loss_type CE: train_neg_sample_args set to None (no negative sampling)")
        return final

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

    @property
    def model_label(self):
        """The model as the user named it (``recbole.DiffRec`` vs ``DiffRec``), for logs and tables."""
        return self.model_spec if self.model_spec.startswith(RECBOLE_PREFIX) else self["model"]

    @classmethod
    def from_data(cls, data, device=None, source="stored config", overrides=None):
        """The Config a checkpoint stored (:func:`~recbole_diffusion.utils.checkpoint.config_as_data`),
        rebuilt from its values without running any of them.

        ``device`` (e.g. ``"cpu"``) places the model; by default the stored device where this
        machine has it, else the CPU. The run is rebuilt as a single process. Values that would make
        RecBole run code are refused as in a new Config (:mod:`.trust`), ``source`` naming the file.
        ``overrides`` replace stored values (keys the stored config has), checked by the model's
        ``check_config``.
        """
        config = cls.__new__(cls)
        config.model_spec = data["model_spec"]
        config.model_class = get_model(config.model_spec)
        config.yaml_loader = config._build_yaml_loader()
        config._init_parameters_category()
        final = data_to_config(data["final_config_dict"])
        for key, value in (overrides or {}).items():
            if key not in final:
                raise ConfigError(f"config key '{key}' = {value!r} is not a key of the stored config of {config.model_spec}")
            final[key] = parse_value(value)
        check_no_code(final, config.model_class, source)
        config.model, config.dataset = final["model"], final["dataset"]
        config.final_config_dict = final
        config.internal_config_dict, config.external_config_dict = {}, {}
        stored = final.get("device") or torch.device("cpu")
        if device is None:
            device = stored if stored.type == "cpu" or torch.cuda.is_available() else torch.device("cpu")
        final.update(device=torch.device(device), single_spec=True, local_rank=0)
        final["use_gpu"] = final["device"].type == "cuda"
        # RecBole's numpy aliases (np.float, ...), which its metrics use, are set up when a Config
        # is built; a process that only loads a checkpoint needs them too.
        config.compatibility_settings()
        check = getattr(config.model_class, "check_config", None)
        if overrides and check is not None:
            check(config)
        return config
