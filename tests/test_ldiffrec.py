"""LDiffRec and LTDiffRec on ml-100k (shipped with RecBole): item clusters, the clustered VAE,
annealing, the two learning rates, checkpoints, config errors."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction

from recbole_diffusion.config import Config
from recbole_diffusion.model.general_recommender.ldiffrec import (
    ClusteredVAE,
    LDiffRec,
    file_item_embeddings,
    split_dims,
)
from recbole_diffusion.model.general_recommender.ltdiffrec import LTDiffRec
from recbole_diffusion.quick_start import build, load_data_and_model, run_recbole_diffusion
from recbole_diffusion.trainer import LDiffRecTrainer, SafeTrainingMixin
from recbole_diffusion.utils import ConfigError, get_trainer

N_ITEMS = 1682  # ml-100k items (internal ids 1..1682; 0 is padding)
TINY = {
    "epochs": 1,
    "eval_step": 1,
    "stopping_step": 10,
    "in_dims": [8],
    "dims_dnn": [16],
    "embedding_size": 4,
    "steps": 5,
    "n_cate": 3,
    "item_emb_size": 8,
    "kmeans_n_init": 2,
    "train_batch_size": 256,
    "show_progress": False,
    "seed": 2020,
    "reproducibility": True,
}


def make_config(model="LDiffRec", **overrides):
    return Config(model=model, dataset="ml-100k", config_dict={**TINY, **overrides})


@pytest.fixture(scope="module")
def train_dataset(tmp_path_factory):
    """The ml-100k training split, loaded once for the module (model keys do not change it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["pytest"])
        patch.chdir(tmp_path_factory.mktemp("data"))
        config = make_config()
        train_data, _, _ = data_preparation(config, create_dataset(config))
    return train_data._dataset


# ----- clusters ------------------------------------------------------------------------------------
def test_clusters_cover_every_item_exactly_once(train_dataset):
    model = LDiffRec(make_config(), train_dataset)
    assignment = model.cluster_assignment
    assert assignment.shape == (N_ITEMS + 1,)
    assert assignment[0] == -1  # the padding item is in no cluster
    assert ((assignment[1:] >= 0) & (assignment[1:] < 3)).all()
    sizes = torch.bincount(assignment[1:], minlength=3)
    assert (sizes > 0).all() and int(sizes.sum()) == N_ITEMS
    # The cluster order is a permutation of the items 1..n, cluster by cluster.
    order = model.item_order
    assert sorted(order.tolist()) == list(range(1, N_ITEMS + 1))
    assert torch.equal(assignment[order], torch.sort(assignment[1:]).values)
    assert model.autoencoder.cluster_sizes == sizes.tolist()
    assert [enc[0].in_features for enc in model.autoencoder.encoders] == sizes.tolist()
    assert sum(model.autoencoder.latent_sizes) == 8
    # Clusters are numbered by their smallest item id.
    firsts = [int(torch.nonzero(assignment == c)[0]) for c in range(3)]
    assert firsts == sorted(firsts)
    # Scores come back in item-id order; the padding column is -inf.
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({"user_id": torch.arange(1, 9)}))
    assert scores.shape == (8, N_ITEMS + 1)
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    items = torch.tensor([1, 50, 1682, 7, 1, 2, 3, 4])
    with torch.no_grad():
        picked = model.predict(Interaction({"user_id": torch.arange(1, 9), "item_id": items}))
    assert torch.equal(picked, scores[torch.arange(8), items])


def test_svd_clusters_are_deterministic(train_dataset):
    """No embedding file: seeded SVD + seeded k-means, whatever the global RNG state."""
    config = make_config()
    first = LDiffRec(config, train_dataset).cluster_assignment
    torch.rand(1000)
    np.random.rand(1000)
    second = LDiffRec(config, train_dataset).cluster_assignment
    assert torch.equal(first, second)
    assert torch.equal(first[1:], torch.from_numpy(LDiffRec.cluster_items(config, train_dataset)))


def test_embedding_file_is_read_by_item_token(train_dataset, tmp_path):
    # Row i = the item with token i: tokens <= 600 at one point, the rest at another.
    table = np.zeros((N_ITEMS + 1, 4), dtype=np.float32)
    table[601:] = 10.0
    path = tmp_path / "item_emb.npy"
    np.save(path, table)
    model = LDiffRec(make_config(n_cate=2, item_emb_path=str(path)), train_dataset)
    tokens = train_dataset.id2token("item_id", np.arange(1, N_ITEMS + 1)).astype(int)
    expected = (tokens > 600).astype(np.int64)
    expected = expected if expected[0] == 0 else 1 - expected  # clusters numbered by first item
    np.testing.assert_array_equal(model.cluster_assignment[1:].numpy(), expected)
    assert model.autoencoder.cluster_sizes == [int((expected == 0).sum()), int((expected == 1).sum())]


def test_embedding_file_errors(train_dataset, tmp_path):
    with pytest.raises(ConfigError, match="'item_emb_path' = .*no such file"):
        LDiffRec(make_config(item_emb_path=str(tmp_path / "missing.npy")), train_dataset)
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((100, 4)))
    with pytest.raises(ConfigError, match="has 100 rows.*needs row"):
        LDiffRec(make_config(item_emb_path=str(short)), train_dataset)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(N_ITEMS + 1))
    with pytest.raises(ConfigError, match="shape"):
        LDiffRec(make_config(item_emb_path=str(flat)), train_dataset)
    # A dataset whose item tokens are not integers names no rows.
    named = SimpleNamespace(iid_field="item_id", item_num=3, id2token=lambda field, ids: np.array(["12", "abc"]))
    with pytest.raises(ConfigError, match="token 'abc' is not an integer"):
        file_item_embeddings(named, str(flat.with_name("short.npy")))


# ----- the clustered VAE -------------------------------------------------------------------------
def test_split_dims_and_shapes_for_uneven_clusters():
    sizes = [7, 2, 1]  # 10 items; in_dims [10, 20]: latent 10, one hidden layer of 20
    # 20 * [0.7, 0.2, rest] = [14, 4, 2]; 10 * [0.7, 0.2, rest] = [7, 2, 1]
    assert split_dims(sizes, [20, 10]) == [[14, 7], [4, 2], [2, 1]]
    assert split_dims([1, 1, 98], [10]) == [[1], [1], [8]]  # int(0.1) = 0 -> 1, the last takes the rest
    with pytest.raises(ConfigError, match="cannot be split"):
        split_dims([1, 1, 1, 1, 1, 95], [5])

    vae = ClusteredVAE(sizes, in_dims=[10, 20], out_dims=[])
    shapes = [[(m.in_features, m.out_features) for m in enc if isinstance(m, torch.nn.Linear)] for enc in vae.encoders]
    assert shapes == [[(7, 14), (14, 14)], [(2, 4), (4, 4)], [(1, 2), (2, 2)]]  # mean and log-variance
    assert vae.latent_sizes == [7, 2, 1]
    assert vae.shared_decoder and (vae.decoders[0].in_features, vae.decoders[0].out_features) == (10, 10)

    per_cluster = ClusteredVAE(sizes, in_dims=[10, 20], out_dims=[20])
    shapes = [[(m.in_features, m.out_features) for m in dec if isinstance(m, torch.nn.Linear)] for dec in per_cluster.decoders]
    assert shapes == [[(7, 14), (14, 7)], [(2, 4), (4, 2)], [(1, 2), (2, 1)]]
    assert not isinstance(per_cluster.decoders[0][-1], torch.nn.Tanh)  # logits: no activation last

    for model in (vae, per_cluster):
        model.eval()
        x = torch.rand(5, 10)
        x_used, z, kl = model.encode(x)
        assert torch.equal(x_used, x) and z.shape == (5, 10) and kl.dim() == 0 and kl >= 0
        assert model.decode(z).shape == (5, 10)
    # Cluster c's encoder only reads cluster c's columns.
    x2 = x.clone()
    x2[:, 7:9] += 1.0
    _, z2, _ = per_cluster.encode(x2)
    assert torch.equal(z2[:, :7], z[:, :7]) and torch.equal(z2[:, 9:], z[:, 9:]) and not torch.equal(z2[:, 7:9], z[:, 7:9])


# ----- annealing ---------------------------------------------------------------------------------
def test_annealing_schedules_by_hand(train_dataset):
    config = make_config(n_cate=1, lamda=0.1, anneal_cap=0.02, anneal_steps=4, vae_anneal_cap=0.3, vae_anneal_steps=10)
    model = LDiffRec(config, train_dataset)
    # lambda = max((1 - e/4) * 0.1, 0.02) after e epochs
    expected_lambda = [0.1, 0.075, 0.05, 0.025, 0.02, 0.02]
    for e, value in enumerate(expected_lambda):
        model.update_count.fill_(e)
        assert float(model.diffusion_weight()) == pytest.approx(value, abs=1e-7)  # float32 on the device
    # beta = min(0.3, b/10) after b batches
    for b, value in enumerate([0.0, 0.1, 0.2, 0.3, 0.3]):
        model.update_count_vae.fill_(b)
        assert float(model.kl_weight()) == pytest.approx(value, abs=1e-7)
    constant = LDiffRec(make_config(n_cate=1, lamda=0.01, anneal_cap=0.02, anneal_steps=0, vae_anneal_cap=0.3, vae_anneal_steps=0), train_dataset)
    constant.update_count.fill_(7)
    constant.update_count_vae.fill_(7)
    assert constant.diffusion_weight() == 0.02 and constant.kl_weight() == 0.3


# ----- optimiser -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [("LDiffRec", LDiffRec), ("LTDiffRec", LTDiffRec)])
def test_two_learning_rates_in_two_param_groups(name, cls, train_dataset):
    config = make_config(name, n_cate=1, lr1=0.003, lr2=0.0007, wd1=0.01, wd2=0.02)
    model = cls(config, train_dataset)
    trainer_class = get_trainer(model.type, name, cls)
    assert trainer_class is LDiffRecTrainer and issubclass(trainer_class, SafeTrainingMixin)
    trainer = trainer_class(config, model)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    groups = trainer.optimizer.param_groups
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("autoencoder", 0.003, 0.01),
        ("denoiser", 0.0007, 0.02),
    ]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.autoencoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.denoiser.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# ----- config errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, key, value",
    [
        ({"n_cate": 0}, "n_cate", "0"),
        ({"n_cate": 2000}, "in_dims", "[8]"),
        ({"in_dims": []}, "in_dims", "[]"),
        ({"ae_act_func": "gelu"}, "ae_act_func", "'gelu'"),
        ({"lr1": 0}, "lr1", "0"),
        ({"wd2": -1.0}, "wd2", "-1.0"),
        ({"anneal_steps": -1}, "anneal_steps", "-1"),
        ({"vae_anneal_cap": -0.1}, "vae_anneal_cap", "-0.1"),
        ({"steps": 5, "sampling_steps": 6}, "sampling_steps", "6"),
    ],
)
def test_bad_value_stops_at_config(overrides, key, value, no_data_loading):
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    assert f"config key '{key}' = {value}:" in str(info.value)


def test_n_cate_above_item_count_stops_when_built(train_dataset):
    config = make_config(n_cate=5000, in_dims=[5000])
    with pytest.raises(ConfigError) as info:
        LDiffRec(config, train_dataset)
    assert str(info.value) == f"config key 'n_cate' = 5000: must be at most the number of items ({N_ITEMS})"


def test_ltdiffrec_needs_a_time_field(no_data_loading):
    with pytest.raises(ConfigError, match="'TIME_FIELD' = None"):
        make_config("LTDiffRec", TIME_FIELD=None)


def test_ltdiffrec_without_time_column_stops_when_built():
    config = make_config("LTDiffRec", load_col={"inter": ["user_id", "item_id", "rating"]})
    with pytest.raises(ConfigError, match="TIME_FIELD.*load_col"):
        build(config)


def test_ltdiffrec_reads_recency_weighted_vectors(train_dataset):
    model = LTDiffRec(make_config("LTDiffRec", n_cate=1, w_min=0.3, w_max=0.9), train_dataset)
    values = model.history_item_value[model.history_item_id > 0]
    assert values.min() == pytest.approx(0.3) and values.max() == pytest.approx(0.9)
    x = model.interaction_vectors(Interaction({"user_id": torch.tensor([1])}))
    weights = x[0][x[0] > 0]
    assert weights.min() == pytest.approx(0.3) and weights.max() == pytest.approx(0.9)


# ----- checkpoints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["LDiffRec", "LTDiffRec"])
def test_checkpoint_round_trip(model_name, checkpoint_dir):
    config = make_config(model_name, epochs=2, eval_step=0, train_batch_size=400, checkpoint_dir=str(checkpoint_dir))
    _, (train_data, _, _), model, trainer = build(config)
    assert type(trainer).__name__ == "LDiffRecTrainer"
    trainer.fit(train_data, None, saved=True)
    saved = Path(trainer.saved_model_file)
    assert len(train_data) == 3  # 943 users, 400 a batch
    assert int(model.update_count) == 2  # lambda's counter: once per epoch (the authors' update_count)
    assert int(model.update_count_vae) == 6  # beta's: once per batch

    loaded_config, loaded, _, _, _, _ = load_data_and_model(str(saved))
    assert type(loaded) is type(model)
    assert torch.equal(loaded.cluster_assignment, model.cluster_assignment)
    assert torch.equal(loaded.item_order, model.item_order)
    assert int(loaded.update_count) == 2 and int(loaded.update_count_vae) == 6
    assert torch.equal(loaded.diffusion.loss_history, model.diffusion.loss_history)
    users = Interaction({"user_id": torch.arange(1, 65)})
    model.eval()
    loaded.eval()
    with torch.no_grad():
        expected = model.full_sort_predict(users)
        assert torch.equal(loaded.full_sort_predict(users), expected)
        model.calculate_loss(users)
    assert int(model.update_count_vae) == 6  # no annealing step outside training

    # Resuming a fresh model: the annealing counters come back.
    fresh = type(model)(config, train_data._dataset)
    fresh_trainer = get_trainer(fresh.type, model_name, type(fresh))(config, fresh)
    assert int(fresh.update_count) == 0
    fresh_trainer.resume_checkpoint(saved)
    assert fresh_trainer.start_epoch == 2
    assert int(fresh.update_count) == 2 and int(fresh.update_count_vae) == 6
    assert fresh.diffusion_weight() == model.diffusion_weight() and fresh.kl_weight() == model.kl_weight()

    state = {k: v.clone() for k, v in model.state_dict().items()}
    # Same cluster sizes, other members: the checkpoint's clusters are taken over.
    swapped = state["cluster_assignment"].clone()
    a = int(torch.nonzero(swapped == 0)[0])
    b = int(torch.nonzero(swapped == 1)[0])
    swapped[a], swapped[b] = 1, 0
    loaded.load_state_dict({**state, "cluster_assignment": swapped})
    assert torch.equal(loaded.cluster_assignment, swapped)
    assert loaded.item_order.tolist() == (torch.argsort(swapped[1:], stable=True) + 1).tolist()
    # Other sizes: the weights cannot fit, a clear error.
    moved = state["cluster_assignment"].clone()
    moved[a] = 1
    with pytest.raises(RuntimeError, match="item clusters .* differ"):
        loaded.load_state_dict({**state, "cluster_assignment": moved})


def test_run_returns_test_metrics(checkpoint_dir):
    result = run_recbole_diffusion(
        model="LDiffRec", dataset="ml-100k", config_dict={**TINY, "checkpoint_dir": str(checkpoint_dir)}
    )
    for split in ("best_valid_result", "test_result"):
        metrics = result[split]
        assert 0.0 < metrics["recall@20"] <= 1.0
        assert metrics["recall@20"] >= metrics["recall@10"]
        assert metrics["hit@10"] >= metrics["mrr@10"]
