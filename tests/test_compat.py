"""The shims that run RecBole 1.2.1 on NumPy 2 and SciPy >= 1.13 (recbole_diffusion.compat):
each test fails without its shim on the current stack."""

import numpy as np
import recbole.config
import scipy.sparse as sp
import torch

from recbole_diffusion.config import Config
from recbole_diffusion.quick_start import build


def test_recboles_own_config_builds_and_sets_its_numpy_aliases():
    """RecBole's Config.compatibility_settings assigns np.float_ & co., gone in NumPy 2."""
    recbole.config.Config(model="BPR", dataset="ml-100k", config_dict={"show_progress": False})
    assert np.float is np.float64 and np.complex is np.complex128 and np.unicode is np.str_ and np.int is np.int_
    assert np.zeros(2, dtype=np.float).dtype == np.float64  # as RecBole's metrics use it


def test_dok_update_stores_entries_as_given():
    matrix = sp.dok_matrix((3, 4), dtype=np.float32)
    matrix._update({(0, 1): 1.0, (2, 3): 2.0})
    assert matrix.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]


def test_lightgcn_builds_its_normalised_adjacency(tiny_config):
    """LightGCN fills its adjacency with dok_matrix._update: D^-1/2 A D^-1/2 of the user-item graph."""
    config = Config(model="LightGCN", dataset="ml-100k", config_dict=tiny_config())
    _, (train_data, _, _), model, _ = build(config)
    adjacency = model.norm_adj_matrix.matrix.to_dense()  # (the plugin's CSR copy, tests/test_graph.py)
    users = model.n_users
    interactions = train_data._dataset.inter_matrix(form="coo").astype(np.float32).toarray()
    degrees = np.concatenate([interactions.sum(1), interactions.sum(0)]) + 1e-7
    expected = interactions / np.sqrt(degrees[:users, None]) / np.sqrt(degrees[None, users:])
    assert torch.allclose(adjacency[:users, users:], torch.from_numpy(expected), atol=1e-6)
    assert torch.equal(adjacency, adjacency.T)
