"""Config values that would make RecBole 1.2.1 run code: refused before anything is built.

Checked for every Config the plugin builds and for every Config restored from a checkpoint
(:meth:`recbole_diffusion.config.Config.from_data`), so a stored config cannot choose them either.
What RecBole would do with each, file:line in RecBole 1.2.1:

- ``teacher`` of KD_DAGFM: ``eval(f"{config['teacher']}")`` (``model/context_aware_recommender/
  kd_dagfm.py:44``): only the names of its two teacher classes are accepted.
- ``dataset_save_path``, ``dataloaders_save_path``, ``save_dataset``, ``save_dataloaders``:
  RecBole's dataset and dataloader caches are pickles, unpickled whenever such a file exists
  (``data/utils.py:58-61``, ``113-122``). The plugin never reads a cache (it rebuilds the dataset
  from its atomic files, see :mod:`recbole_diffusion.data.utils`), and refuses these keys rather
  than write pickles that RecBole's own entry points would later run.
- RecBole's own ``LDiffRec`` with ``n_cate > 1`` reads ``<dataset>/item_emb.npy`` with
  ``allow_pickle=True`` (``model/general_recommender/ldiffrec.py:232``): the file must be a plain
  array (checked here without pickle).
- Pre-trained weights that RecBole models read with ``torch.load`` (``pre_model_path`` of ConvNCF,
  RaCT, S3Rec; ``pretrain_path`` of NAIS; ``mf_pretrain_path`` / ``mlp_pretrain_path`` of NeuMF;
  ``warm_up`` of KD_DAGFM): safe only under torch's weights-only default (torch >= 2.6), so they
  are refused when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns it off.
"""

import os

import numpy as np

from recbole_diffusion.utils.checks import ConfigError

TEACHERS = {"KD_DAGFM": ("CrossNet", "CIN")}
CACHE_KEYS = ("dataset_save_path", "dataloaders_save_path", "save_dataset", "save_dataloaders")
PRETRAINED_PATH_KEYS = ("pre_model_path", "pretrain_path", "mf_pretrain_path", "mlp_pretrain_path", "warm_up")


def check_no_code(final, model_class, source="config"):
    """Raise :class:`ConfigError` for a value of ``final`` (the final config dict of a run of
    ``model_class``) that would make RecBole run code; ``source`` names where the config came from."""
    recbole_model = model_class.__module__.startswith("recbole.")
    for model, allowed in TEACHERS.items():
        if recbole_model and model_class.__name__ == model and final.get("teacher") not in allowed:
            raise ConfigError(
                f"{source} key 'teacher' = {final.get('teacher')!r}: must be one of {list(allowed)} "
                f"(RecBole's {model} evaluates this string as Python code)"
            )
    for key in CACHE_KEYS:
        if final.get(key) not in (None, False, ""):
            raise ConfigError(
                f"{source} key '{key}' = {final[key]!r}: RecBole's dataset and dataloader caches are pickles, which "
                "run code when they are loaded; recbole-diffusion neither writes nor reads them (it rebuilds the "
                "dataset from its atomic files, in seconds). Remove the key"
            )
    if _weights_only_disabled():
        for key in PRETRAINED_PATH_KEYS:
            if final.get(key):
                raise ConfigError(
                    f"{source} key '{key}' = {final[key]!r}: RecBole loads this file with torch.load, which runs "
                    "code while TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set; unset it"
                )
    if recbole_model and model_class.__name__ == "LDiffRec" and (final.get("n_cate") or 1) > 1 and final.get("data_path"):
        _require_plain_array(os.path.join(final["data_path"], "item_emb.npy"), source)


def _weights_only_disabled():
    return os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true")


def _require_plain_array(path, source):
    """RecBole's LDiffRec unpickles this file if it holds objects: it must be a plain array."""
    if not os.path.isfile(path):
        return  # RecBole's LDiffRec reports the missing file itself
    try:
        np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError:
        raise ConfigError(
            f"{source}: RecBole's LDiffRec with n_cate > 1 would unpickle '{path}', which holds "
            "Python objects, not a plain array; nothing was loaded"
        ) from None
