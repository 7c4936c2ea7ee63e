"""Checkpoints that save and load on torch >= 2.6 without turning ``weights_only`` off.

RecBole saves with ``pickle_protocol=4`` (whose FRAME opcode the weights-only unpickler rejects)
and loads with a bare ``torch.load`` (weights-only by default since torch 2.6, which refuses
RecBole's Config). Here checkpoints use torch's default protocol, are written to a temporary file
and renamed (no half-written checkpoint is left), and are read with ``weights_only=True`` inside
``torch.serialization.safe_globals`` naming exactly the classes a RecBole checkpoint holds.
"""

import os

import torch
import yaml

import recbole.config
from recbole.utils import enum_type


def checkpoint_globals():
    """The classes a checkpoint's pickled Config may reference."""
    from recbole_diffusion.config import Config
    from recbole_diffusion.utils.utils import get_model, plugin_models

    enums = [value for value in vars(enum_type).values() if isinstance(value, type) and issubclass(value, enum_type.Enum)]
    models = [get_model(name) for name in plugin_models()]
    return [recbole.config.Config, Config, yaml.FullLoader, *enums, *models]


def save_checkpoint(state, path):
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location=None):
    with torch.serialization.safe_globals(checkpoint_globals()):
        return torch.load(path, map_location=map_location, weights_only=True)
