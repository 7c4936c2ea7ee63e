"""RP3beta and GF-CF: closed forms against small cases computed by hand, and runs on ml-100k."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recbole.data.interaction import Interaction

from recbole_diffusion.config import Config
from recbole_diffusion.model.general_recommender.gfcf import gfcf_filter
from recbole_diffusion.model.general_recommender.rp3beta import rp3beta_similarity
from recbole_diffusion.quick_start import load_data_and_model, run_recbole_diffusion
from recbole_diffusion.utils import ConfigError

# 3 users x 3 items: user degrees (2, 2, 1), item degrees (2, 2, 1)
R = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=np.float32))


def test_rp3beta_walks_three_steps_and_discounts_popularity():
    # alpha = 1: P_ui = [[.5,.5,0],[0,.5,.5],[1,0,0]], P_iu = [[.5,0,.5],[.5,.5,0],[0,1,0]];
    # P_iu P_ui = [[.75,.25,0],[.25,.5,.25],[0,.5,.5]], diagonal zeroed, columns / pop^0.5 = (sqrt2, sqrt2, 1)
    s = 1 / np.sqrt(2)
    expected = np.array([[0, 0.25 * s, 0], [0.25 * s, 0, 0.25], [0, 0.5 * s, 0]])
    assert np.allclose(rp3beta_similarity(R, alpha=1.0, beta=0.5, neighbors=3), expected)
    # alpha = 2 squares each step's probability: (P_iu^2 P_ui^2)[0, 1] = .25 * .25 = 1/16
    assert rp3beta_similarity(R, alpha=2.0, beta=0.0, neighbors=3)[0, 1] == pytest.approx(1 / 16)
    # one neighbour per item: row 1 keeps the larger of its two weights (.25 on item 2 beats .25 s on item 0)
    assert np.allclose(rp3beta_similarity(R, alpha=1.0, beta=0.5, neighbors=1)[1], [0, 0, 0.25])
    rows = rp3beta_similarity(R, alpha=1.0, beta=0.5, neighbors=3, normalize=True).sum(axis=1)
    assert np.allclose(rows, 1.0)


def test_gfcf_linear_filter_is_the_normalised_item_graph():
    # R~ = [[1/2, 1/2, 0], [0, 1/2, 1/sqrt2], [1/sqrt2, 0, 0]]; R~^T R~ by hand
    s = 1 / np.sqrt(2)
    expected = np.array([[0.75, 0.25, 0], [0.25, 0.5, 0.5 * s], [0, 0.5 * s, 0.5]])
    assert np.allclose(gfcf_filter(R, ideal_weight=0.0, ideal_rank=1), expected)


def test_gfcf_ideal_filter_of_full_rank_is_the_identity_and_of_low_rank_the_leading_subspace():
    assert np.allclose(gfcf_filter(R, 0.3, ideal_rank=3) - gfcf_filter(R, 0.0, 1), 0.3 * np.eye(3))
    rng = np.random.default_rng(0)
    big = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    users, items = np.asarray(big.sum(1)).ravel(), np.asarray(big.sum(0)).ravel()
    inv = lambda d: np.where(d > 0, d, np.inf) ** -0.5  # noqa: E731
    normalised = inv(users)[:, None] * big.toarray().astype(np.float64) * inv(items)[None, :]
    v = np.linalg.svd(normalised)[2][:5]
    ideal = np.diag(inv(items)) @ v.T @ v @ np.diag(np.sqrt(items))
    assert np.allclose(gfcf_filter(big, 1.0, ideal_rank=5) - gfcf_filter(big, 0.0, 1), ideal, atol=1e-7)


@pytest.mark.parametrize("model", ["RP3beta", "GFCF"])
def test_runs_on_ml100k_and_reloads_to_identical_scores(model, tiny_config):
    result = run_recbole_diffusion(model=model, dataset="ml-100k", config_dict=tiny_config())
    assert result["test_result"]["recall@20"] > 0.2  # ItemKNN-like quality on ml-100k (measured ~0.35-0.37)
    config, net, dataset, train_data, *_ = load_data_and_model(result["saved_model_file"])
    users = Interaction({dataset.uid_field: torch.arange(1, 6)})
    reloaded = load_data_and_model(result["saved_model_file"])[1]
    assert torch.equal(net.full_sort_predict(users), reloaded.full_sort_predict(users))
    rows = Interaction({dataset.uid_field: torch.tensor([1, 2]), dataset.iid_field: torch.tensor([3, 4])})
    assert torch.allclose(net.predict(rows), net.full_sort_predict(rows).view(2, -1)[[0, 1], [3, 4]])


@pytest.mark.parametrize(
    "model, key, value", [("RP3beta", "beta", -1.0), ("RP3beta", "neighbors", 0), ("GFCF", "ideal_rank", 0), ("GFCF", "ideal_weight", -0.1)]
)
def test_bad_values_fail_before_any_data(model, key, value):
    with pytest.raises(ConfigError, match=f"'{key}' = {value}"):
        Config(model=model, dataset="ml-100k", config_dict={key: value})
