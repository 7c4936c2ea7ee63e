"""Checkpoints that hold data, never objects.

A checkpoint is a ``torch.save`` of one dict of plain values:

- ``format``: :data:`CHECKPOINT_FORMAT`;
- ``config``: the run's final config as plain values (:func:`config_to_data`): dicts, lists,
  numbers, strings, booleans, ``None``; enums as ``{"__enum__": [class, member]}``, the device as
  ``{"__device__": "cuda:0"}``. The Config is rebuilt from these values without RecBole's
  ``eval()`` (:meth:`recbole_diffusion.config.Config.from_data`);
- ``state_dict``, ``optimizer``: tensors and numbers;
- ``other_parameter``: a model's non-tensor state (ItemKNN, EASE, SLIMElastic keep numpy arrays
  and scipy sparse matrices there) as tensors (:func:`state_to_data`), converted back on load.

It is read with ``torch.load(weights_only=True)`` and *no* allow-listed class: the unpickler can
build tensors and containers only, so a crafted file cannot call anything. It is written to a
temporary file and renamed, so no half-written checkpoint is left behind.
"""

import enum
import os
import uuid

import numpy as np
import scipy.sparse as sp
import torch

CHECKPOINT_FORMAT = "recbole-diffusion/checkpoint-v2"
SPARSE_FORMATS = ("csr", "csc", "coo")


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of this format."""


def config_to_data(value, where="config"):
    """``value`` as plain data; anything that is not data fails, naming where it sits."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return {"__enum__": [type(value).__name__, value.name]}
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, dict):
        return {str(key): config_to_data(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CheckpointError(f"{where} = {value!r}: a {type(value).__name__} cannot be stored as plain data")


def config_as_data(config):
    """What a checkpoint stores of a (RecBole or plugin) Config: the model as named, the final values."""
    return {
        "model_spec": getattr(config, "model_spec", config["model"]),
        "final_config_dict": config_to_data(config.final_config_dict),
    }


def data_to_config(value):
    """The inverse of :func:`config_to_data`; enums come only from RecBole's ``enum_type``."""
    from recbole.utils import enum_type

    if isinstance(value, dict):
        if set(value) == {"__enum__"}:
            class_name, member = value["__enum__"]
            enum_class = getattr(enum_type, class_name, None)
            if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)) or member not in enum_class.__members__:
                raise CheckpointError(f"stored config names an unknown enum {class_name}.{member}")
            return enum_class[member]
        if set(value) == {"__device__"}:
            return torch.device(value["__device__"])
        return {key: data_to_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [data_to_config(item) for item in value]
    return value


def state_to_data(value, where):
    """A model's ``other_parameter()`` entry as tensors (numpy arrays, scipy sparse matrices)."""
    if value is None or isinstance(value, (torch.Tensor, bool, int, float, str)):
        return value
    if sp.issparse(value):
        kind = value.format if value.format in SPARSE_FORMATS else "csr"
        coo = value.tocoo()
        return {
            "__sparse__": kind,
            "row": torch.from_numpy(coo.row.astype(np.int64)),
            "col": torch.from_numpy(coo.col.astype(np.int64)),
            "data": torch.from_numpy(np.ascontiguousarray(coo.data)),
            "shape": list(coo.shape),
        }
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise CheckpointError(f"other_parameter {where!r}: a numpy array of Python objects cannot be stored as data")
        return {"__numpy__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: state_to_data(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [state_to_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CheckpointError(f"other_parameter {where!r}: a {type(value).__name__} cannot be stored as data")


def data_to_state(value):
    """The inverse of :func:`state_to_data`."""
    if isinstance(value, dict):
        if "__sparse__" in value:
            matrix = sp.coo_matrix(
                (value["data"].numpy(), (value["row"].numpy(), value["col"].numpy())), shape=tuple(value["shape"])
            )
            return matrix.asformat(value["__sparse__"])
        if "__numpy__" in value:
            return value["__numpy__"].numpy()
        return {key: data_to_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [data_to_state(item) for item in value]
    return value


def restore_model(model, checkpoint):
    """Put a loaded checkpoint's weights and non-tensor state back into ``model``."""
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(data_to_state(checkpoint.get("other_parameter")))


def save_checkpoint(state, path):
    """Write ``state`` (plain data and tensors) to ``path`` through a temporary file beside it,
    created as ``torch.save`` creates files (its mode is the umask's, as RecBole's checkpoints)."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location=None):
    """Read a checkpoint as data only; a file that is not one fails naming the file and why."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}': no such file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint '{path}': the file is empty (0 bytes)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises several types for a bad file)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Unsupported global" in str(error) or "Weights only load failed" in str(error):
            reason = (
                "it holds Python objects, not data (written by recbole-diffusion < 0.2 or by RecBole itself, or crafted); "
                "nothing in it was run. Retrain, or convert it in a trusted process"
            )
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {reason}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"checkpoint '{path}': format {found!r}, expected {CHECKPOINT_FORMAT!r}")
    return checkpoint
