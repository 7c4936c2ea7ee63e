"""DiffRec and TDiffRec on ml-100k (shipped with RecBole): training, metrics, checkpoints, recency."""

from pathlib import Path

import numpy as np
import pytest
import torch

from recbole.data.interaction import Interaction

import recbole_diffusion.utils.checkpoint
from recbole_diffusion.config import Config
from recbole_diffusion.model.general_recommender.tdiffrec import TDiffRec, recency_weights
from recbole_diffusion.quick_start import build, load_data_and_model, run_recbole_diffusion
from recbole_diffusion.utils import ConfigError

METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20", "hit@10", "mrr@10"]


@pytest.mark.parametrize("model", ["DiffRec", "TDiffRec"])
def test_train_and_test_returns_metrics(model, tiny_config, checkpoint_dir):
    result = run_recbole_diffusion(model=model, dataset="ml-100k", config_dict=tiny_config())
    assert result["model"] == model
    for split in ("best_valid_result", "test_result"):
        metrics = result[split]
        assert set(METRICS) <= set(metrics)
        for key in METRICS:
            assert 0.0 <= metrics[key] <= 1.0, (split, key, metrics[key])
        # Relations every correct top-k evaluation satisfies (per user, hence on average).
        assert metrics["recall@20"] >= metrics["recall@10"]
        assert metrics["hit@10"] >= metrics["recall@10"]
        assert metrics["hit@10"] >= metrics["mrr@10"]
        assert metrics["recall@20"] > 0  # starting the reverse chain from the history ranks seen-like items
    assert result["best_valid_score"] == result["best_valid_result"]["recall@20"]  # valid_metric of the plugin
    saved = Path(result["saved_model_file"])
    assert saved.parent == checkpoint_dir and saved.is_file()


def _train_epochs(config_dict, model, epochs):
    config = Config(model=model, dataset="ml-100k", config_dict=config_dict)
    _, (train_data, _, _), _, trainer = build(config)
    return [trainer._train_epoch(train_data, epoch) for epoch in range(epochs)]


@pytest.mark.parametrize("model", ["DiffRec", "TDiffRec"])
def test_training_loss_falls(model, tiny_config):
    losses = _train_epochs(tiny_config(train_batch_size=128), model, 5)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses


def test_build_is_seeded(tiny_config):
    """Two builds of one config split the data and initialise the model identically."""
    config = Config(model="DiffRec", dataset="ml-100k", config_dict=tiny_config())
    _, (train_a, _, test_a), model_a, _ = build(config)
    torch.rand(100)  # whatever ran in between
    np.random.rand(100)
    _, (train_b, _, test_b), model_b, _ = build(config)
    for field in ("user_id", "item_id"):
        assert torch.equal(train_a._dataset.inter_feat[field], train_b._dataset.inter_feat[field])
        assert torch.equal(test_a._dataset.inter_feat[field], test_b._dataset.inter_feat[field])
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("model_name", ["DiffRec", "TDiffRec"])
def test_checkpoint_round_trip(model_name, tiny_config, checkpoint_dir, monkeypatch):
    config = Config(model=model_name, dataset="ml-100k", config_dict=tiny_config(epochs=2, eval_step=0))
    _, (train_data, _, _), model, trainer = build(config)
    trainer.fit(train_data, None, saved=True)
    saved = Path(trainer.saved_model_file)
    assert saved.parent == checkpoint_dir and saved.is_file()
    assert list(checkpoint_dir.iterdir()) == [saved]  # the temporary file was renamed

    loads = []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy_load)
    loaded_config, loaded, _, loaded_train, _, _ = load_data_and_model(str(saved))
    assert loads == [True]
    assert type(loaded) is type(model) and loaded_config["model"] == model_name

    # The diffusion process and its importance-sampling state come back exactly.
    history, count = model.diffusion.loss_history, model.diffusion.loss_count
    assert count.sum() > 0 and history.abs().sum() > 0
    assert torch.equal(loaded.diffusion.loss_history, history)
    assert torch.equal(loaded.diffusion.loss_count, count)
    assert torch.equal(loaded.diffusion.betas, model.diffusion.betas)
    # Same split, hence the same histories the scores start from.
    assert torch.equal(loaded.history_item_id, model.history_item_id)
    assert torch.equal(loaded.history_item_value, model.history_item_value)

    model.eval()
    loaded.eval()
    assert not model.sampling_noise and not loaded.sampling_noise
    users = Interaction({model.USER_ID: torch.arange(1, 65)}).to(config["device"])
    with torch.no_grad():
        expected = model.full_sort_predict(users)
        actual = loaded.full_sort_predict(users)
    assert expected.shape == (64, model.n_items)
    assert torch.equal(actual, expected)


def test_checkpoints_hold_plain_data(tiny_config):
    """A plain ``torch.load(weights_only=True)`` with no allow-list reads the checkpoint, and the
    Config rebuilds from its values; no part of the package turns the protection off."""
    result = run_recbole_diffusion(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config())
    raw = torch.load(result["saved_model_file"], weights_only=True)
    assert raw["config"]["final_config_dict"]["model"] == "TDiffRec"
    assert raw["config"]["final_config_dict"]["MODEL_TYPE"] == {"__enum__": ["ModelType", "GENERAL"]}
    assert "diffusion.loss_history" in raw["state_dict"]
    config = Config.from_data(raw["config"])
    assert config.model_class is TDiffRec and config["steps"] == 5
    package = Path(recbole_diffusion.utils.checkpoint.__file__).parents[1]
    offenders = [
        str(p) for p in package.rglob("*.py") if "weights_only=False" in p.read_text(encoding="utf-8") or "safe_globals" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_recency_weights_on_a_hand_made_example():
    # user 1: times 30, 10, 20, 40 (shuffled); user 2: 5, 1; user 3: one interaction; user 4: a tie.
    users = np.array([1, 2, 1, 3, 1, 2, 1, 4, 4, 4])
    times = np.array([30, 5, 10, 7, 20, 1, 40, 5, 5, 1])
    rank, weights = recency_weights(users, times, 5, 0.2, 1.0)
    expected_rank = np.array([2, 1, 0, 0, 1, 0, 3, 1, 2, 0])
    np.testing.assert_array_equal(rank, expected_rank)
    per_user = {1: np.linspace(0.2, 1.0, 4), 2: np.linspace(0.2, 1.0, 2), 3: np.linspace(0.2, 1.0, 1), 4: np.linspace(0.2, 1.0, 3)}
    expected = np.array([per_user[u][r] for u, r in zip(users, expected_rank)])
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights[3] == 0.2  # a single interaction gets w_min
    assert weights[6] == pytest.approx(1.0, abs=1e-15)  # the newest gets w_max


def test_tdiffrec_history_is_recency_weighted_on_ml100k(tiny_config):
    config = Config(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config(w_min=0.3, w_max=0.9))
    _, (train_data, _, _), model, _ = build(config)
    inter = train_data._dataset.inter_feat
    users, items, times = (inter[f].numpy() for f in ("user_id", "item_id", "timestamp"))
    counts = np.bincount(users)
    checked = 0
    for user in [int(np.argmax(counts)), int(np.argmin(np.where(counts > 0, counts, 10**9))), 1, 2, 100]:
        mine = np.flatnonzero(users == user)
        order = mine[np.argsort(times[mine], kind="stable")]  # ties: order of the training data
        n = len(order)
        assert np.all(np.diff(times[order]) >= 0)
        history_id, history_value = model.history_item_id[user].cpu(), model.history_item_value[user].cpu()
        np.testing.assert_array_equal(history_id[:n].numpy(), items[order])
        np.testing.assert_allclose(history_value[:n].numpy(), np.linspace(0.3, 0.9, n), rtol=1e-6)
        assert (history_value[n:] == 0).all() and (history_id[n:] == 0).all()
        # The training target x_0 carries those weights at the items' columns.
        x0 = model.interaction_vectors(Interaction({"user_id": torch.tensor([user])}).to(config["device"]))[0].cpu()
        np.testing.assert_allclose(x0[items[order]].numpy(), np.linspace(0.3, 0.9, n), rtol=1e-6)
        assert int((x0 != 0).sum()) == n
        checked += 1
    assert checked == 5


@pytest.mark.parametrize("model_name", ["DiffRec", "LDiffRec"])
def test_inference_steps_all_is_the_papers_chain_and_fewer_runs(model_name, tiny_config):
    """K = steps reproduces the posterior-mean chain exactly; K < steps is K strided denoiser calls."""
    ldiffrec = {"in_dims": [8], "n_cate": 2} if model_name == "LDiffRec" else {}
    config = Config(model=model_name, dataset="ml-100k", config_dict=tiny_config(steps=10, **ldiffrec))
    _, (train_data, _, _), model, _ = build(config)
    model.eval()
    users = Interaction({model.USER_ID: torch.arange(1, 17)})
    calls = []
    denoiser_forward = model.denoiser.forward
    model.denoiser.forward = lambda *args: calls.append(1) or denoiser_forward(*args)
    with torch.no_grad():
        paper = model.full_sort_predict(users)
        model.inference_steps = 10
        assert torch.equal(model.full_sort_predict(users), paper)
        calls.clear()
        model.inference_steps = 3
        few = model.full_sort_predict(users)
    assert len(calls) == 3 and torch.isfinite(few[:, 1:]).all() and few.shape == paper.shape


@pytest.mark.parametrize("model_name", ["DiffRec", "DreamRec"])
def test_a_single_diffusion_step_trains_and_evaluates(model_name, tiny_config):
    result = run_recbole_diffusion(model=model_name, dataset="ml-100k", config_dict=tiny_config(steps=1, MAX_ITEM_LIST_LENGTH=5))
    assert 0.0 <= result["test_result"]["recall@20" if model_name == "DiffRec" else "hit@20"] <= 1.0


def test_dreamrec_steps_alone_configures_its_samplers(tiny_config):
    """The DDIM step count defaults to steps and is only checked when the DDIM sampler runs."""
    assert Config(model="DreamRec", dataset="ml-100k", config_dict={"steps": 20})["steps"] == 20
    with pytest.raises(ConfigError, match="'inference_steps' = 30"):
        Config(model="DreamRec", dataset="ml-100k", config_dict={"steps": 20, "sampler": "ddim", "inference_steps": 30})
