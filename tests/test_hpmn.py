"""HPMN: periodic memory writing, incremental serving == full pass, the covariance regulariser,
learning a separable task, bad configs, and an ml-100k CTR run through RecBole."""

from types import SimpleNamespace

import pytest
import recbole.utils
import torch
from recbole.data.interaction import Interaction
from sklearn.metrics import roc_auc_score

from recbole_diffusion.config import Config
from recbole_diffusion.model.sequential_recommender.hpmn import HPMN, memory_covariance_loss
from recbole_diffusion.quick_start import run_recbole_diffusion
from recbole_diffusion.utils import ConfigError


def hpmn_config(**overrides):
    """A small HPMN config (RecBole's Config reads no data)."""
    config = {
        "embedding_size": 8,
        "hidden_size": 8,
        "memory_layers": 4,
        "memory_periods": [1, 2, 4, 8],
        "attention_hidden_size": [8],
        "mlp_hidden_size": [16],
        "dropout_prob": 0.0,
        "MAX_ITEM_LIST_LENGTH": 20,
        "show_progress": False,
    }
    config.update(overrides)
    return Config(model="HPMN", dataset="ml-100k", config_dict=config)


def bare_model(n_items=50, seed=0, **overrides):
    """The nn.Module alone: a config and a stand-in dataset that only knows the number of items."""
    config = hpmn_config(**overrides)
    torch.manual_seed(seed)
    return HPMN(config, SimpleNamespace(num=lambda field: n_items)), config


def padded(lengths, max_length, n_items, generator):
    """Right-padded histories (RecBole's layout) of the given lengths."""
    seq = torch.randint(1, n_items, (len(lengths), max_length), generator=generator)
    lengths = torch.tensor(lengths)
    seq[torch.arange(max_length)[None] >= lengths[:, None]] = 0
    return seq, lengths


def rows(config, seq, lengths, targets, labels=None):
    data = {
        config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]: seq,
        config["ITEM_LIST_LENGTH_FIELD"]: lengths,
        config["ITEM_ID_FIELD"]: targets,
    }
    if labels is not None:
        data[config["LABEL_FIELD"]] = labels
    return Interaction(data)


def test_recbole_finds_the_plugin_class():
    assert recbole.utils.get_model("HPMN") is HPMN


def test_defaults_are_the_din_ctr_setting(no_data_loading):
    config = Config(model="HPMN", dataset="ml-100k")
    assert config["eval_args"]["mode"] == {"valid": "uni100", "test": "uni100"}
    assert config["eval_args"]["order"] == "TO" and config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["metrics"] == ["AUC", "LogLoss"] and config["valid_metric"] == "AUC"
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert config["train_neg_sample_args"]["sample_num"] == 1
    assert config["repeatable"] and config["memory_periods"] == [1, 2, 4, 8]


@pytest.mark.parametrize("periods", [[1, 2, 4, 8], [1, 3, 2, 5]])
def test_a_layer_is_written_only_at_multiples_of_its_period(periods):
    model, _ = bare_model(memory_periods=periods)
    model.eval()
    generator = torch.Generator().manual_seed(1)
    items = torch.randint(1, 50, (3, 17), generator=generator)
    with torch.no_grad():
        memory = model.init_memory(3)
        for step in range(1, 18):
            new = model.update_memory(memory, items[:, step - 1], step)
            changed = (new - memory).abs().amax(dim=(0, 2)) > 0
            assert changed.tolist() == [step % period == 0 for period in periods], step
            # the padding id writes nothing
            assert torch.equal(model.update_memory(new, torch.zeros(3, dtype=torch.long), step + 1), new)
            memory = new


@pytest.mark.parametrize("periods", [[1, 2, 4, 8], [2, 3, 3, 25]])
def test_incremental_updates_equal_the_full_pass(periods):
    model, config = bare_model(memory_periods=periods)
    model.eval()
    generator = torch.Generator().manual_seed(2)
    lengths = [1, 3, 8, 13, 19, 20, 20]
    seq, length = padded(lengths, 20, 50, generator)
    targets = torch.randint(1, 50, (len(lengths),), generator=generator)
    with torch.no_grad():
        full = model.memory(seq, length)
        memory = model.init_memory(len(lengths))
        for step in range(1, 21):  # padding (id 0) past each row's length writes nothing
            memory = model.update_memory(memory, seq[:, step - 1], step)
        assert torch.allclose(memory, full, atol=1e-6)
        # RecBole's path (histories deduplicated and bucketed by length) scores the same
        assert torch.allclose(model.predict(rows(config, seq, length, targets)), model.score(memory, targets), atol=1e-6)

        # users at different points of their histories, updated together: a per-row step
        offsets = torch.tensor([0, 5, 11])
        memory = model.init_memory(3)
        long_seq, _ = padded([20, 20, 20], 20, 50, generator)
        for tick in range(20):
            step = tick - offsets + 1  # <= 0: that user's history has not started yet
            item = torch.where(step >= 1, long_seq[torch.arange(3), (step - 1).clamp(min=0)], 0)
            memory = model.update_memory(memory, item, step)
        assert torch.allclose(memory, model.memory(long_seq, 20 - offsets), atol=1e-6)


def test_items_past_the_history_length_change_nothing():
    model, config = bare_model()
    model.eval()
    generator = torch.Generator().manual_seed(3)
    seq, length = padded([4, 9, 20], 20, 50, generator)
    noisy = seq.clone()
    noisy[seq == 0] = 7
    targets = torch.tensor([1, 2, 3])
    with torch.no_grad():
        assert torch.equal(model.memory(noisy, length), model.memory(seq, length))
        assert torch.allclose(model.predict(rows(config, noisy, length, targets)), model.predict(rows(config, seq, length, targets)))


def test_covariance_regulariser_formula():
    # two slots, d = 2: centred rows [-1, 1] and [1, -1]; C = [[1, -1], [-1, 1]]; 1/2 * (1 + 1) = 1
    two = torch.tensor([[[1.0, 3.0], [2.0, 0.0]]])
    assert torch.allclose(memory_covariance_loss(two), torch.tensor([1.0]))
    # uncorrelated slots cost nothing, whatever their variance; one slot has no covariance at all
    orthogonal = torch.tensor([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, -2.0]]])
    assert torch.allclose(memory_covariance_loss(orthogonal), torch.zeros(1))
    assert torch.allclose(memory_covariance_loss(torch.randn(2, 1, 5)), torch.zeros(2))
    # three slots against the definition written out: C_jk = 1/d sum_u (m_ju - mean_j)(m_ku - mean_k)
    memory = torch.tensor([[[1.0, 2.0, 6.0], [0.0, -3.0, 3.0], [2.0, 2.0, 2.0]]])
    centred = [[value - sum(slot) / 3 for value in slot] for slot in memory[0].tolist()]
    cov = [[sum(a * b for a, b in zip(centred[j], centred[k])) / 3 for k in range(3)] for j in range(3)]
    expected = 0.5 * sum(cov[j][k] ** 2 for j in range(3) for k in range(3) if j != k)
    # by hand: centred slots [-2, -1, 3], [0, -3, 3], [0, 0, 0]; C_01 = C_10 = (0 + 3 + 9) / 3 = 4, others 0
    assert expected == 0.5 * (4.0**2 + 4.0**2) == 16.0
    assert torch.allclose(memory_covariance_loss(memory), torch.tensor([expected]))


def test_loss_adds_the_weighted_regulariser():
    base, config = bare_model(memory_cov_weight=0.0)
    weighted, _ = bare_model(memory_cov_weight=0.5)
    weighted.load_state_dict(base.state_dict())
    generator = torch.Generator().manual_seed(4)
    seq, length = padded([3, 10, 20, 20], 20, 50, generator)
    batch = rows(config, seq, length, torch.tensor([1, 2, 3, 4]), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    base.eval(), weighted.eval()
    regulariser = memory_covariance_loss(base.memory(seq, length)).mean()
    assert regulariser > 0
    assert torch.allclose(weighted.calculate_loss(batch) - base.calculate_loss(batch), 0.5 * regulariser, atol=1e-6)


def genre_task(n, generator, max_length=12, n_items=41):
    """Histories drawn from one genre (odd or even items); click iff the target is of that genre."""
    genre = torch.randint(0, 2, (n,), generator=generator)
    lengths = torch.randint(3, max_length + 1, (n,), generator=generator)
    seq = 2 * torch.randint(1, n_items // 2, (n, max_length), generator=generator) - genre[:, None]
    seq[torch.arange(max_length)[None] >= lengths[:, None]] = 0
    label = torch.randint(0, 2, (n,), generator=generator)
    target_genre = torch.where(label == 1, genre, 1 - genre)
    target = 2 * torch.randint(1, n_items // 2, (n,), generator=generator) - target_genre
    return seq, lengths, target, label.float()


@pytest.mark.parametrize("norm", ["affine", "batch"])
def test_learns_a_task_that_needs_the_memory(norm):
    """AUC > 0.95 on held-out rows within 500 steps. Measured on data seeds 0, 1, 5 at lr 0.02: real
    BatchNorm gets there in < 150 steps; the authors' affine map plateaus at ~0.5 first, then jumps
    to 1.0 after 100-350 steps."""
    model, config = bare_model(n_items=41, MAX_ITEM_LIST_LENGTH=12, prediction_norm=norm)
    generator = torch.Generator().manual_seed(5)
    seq, lengths, target, label = genre_task(1000, torch.Generator().manual_seed(99))
    held_out = rows(config, seq, lengths, target)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    auc = 0.0
    for step in range(1, 501):
        model.train()
        batch = rows(config, *genre_task(128, generator))
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
        if step % 50 == 0:
            model.eval()
            with torch.no_grad():
                scores = model.predict(held_out)
            assert ((scores >= 0) & (scores <= 1)).all()
            auc = roc_auc_score(label.numpy(), scores.numpy())
            if auc > 0.95:
                break
    assert auc > 0.95


@pytest.mark.parametrize(
    "overrides, key, value",
    [
        ({"memory_layers": 0, "memory_periods": []}, "memory_layers", "0"),
        ({"memory_periods": [1, 0, 2, 4]}, "memory_periods", "[1, 0, 2, 4]"),
        ({"memory_periods": [1, 2]}, "memory_periods", "[1, 2]"),
        ({"memory_periods": [1, 2.5, 4, 8]}, "memory_periods", "[1, 2.5, 4, 8]"),
        ({"read_hops": 0}, "read_hops", "0"),
        ({"memory_cov_weight": -1.0}, "memory_cov_weight", "-1.0"),
        (
            {"eval_args": {"mode": {"valid": "uni100", "test": "full"}}, "metrics": ["Recall", "NDCG"], "valid_metric": "Recall@10"},
            "eval_args.mode",
            "{'valid': 'uni100', 'test': 'full'}",
        ),
    ],
)
def test_bad_config_stops_with_the_key_and_value(overrides, key, value, no_data_loading):
    with pytest.raises(ConfigError) as error:
        hpmn_config(**overrides)
    message = str(error.value)
    assert f"'{key}'" in message and f"= {value}" in message


def test_full_ranking_with_auc_is_a_config_error(no_data_loading):
    with pytest.raises(ConfigError, match=r"'eval_args' \(mode = \{'valid': 'full', 'test': 'full'\}\) and 'metrics' = \['AUC', 'LogLoss'\]"):
        hpmn_config(eval_args={"mode": "full"})


def test_ml100k_ctr_run(checkpoint_dir, small_hpmn):
    config = {
        **small_hpmn,
        "epochs": 1,
        "eval_batch_size": 20200,
        "show_progress": False,
        "checkpoint_dir": str(checkpoint_dir),
    }
    result = run_recbole_diffusion(model="HPMN", dataset="ml-100k", config_dict=config)
    for phase in ("best_valid_result", "test_result"):
        metrics = result[phase]
        assert set(metrics) == {"auc", "logloss"}
        assert 0.5 < metrics["auc"] <= 1.0  # one epoch already ranks clicks above random items
        assert 0.0 < metrics["logloss"] < 2.0


def test_prediction_norm_is_the_authors_affine_map_or_real_batchnorm():
    """affine: no batch statistics, so a row's score does not depend on the rest of its batch."""
    from recbole_diffusion.model.sequential_recommender.hpmn import FeatureAffine

    assert isinstance(bare_model()[0].predictor[0], FeatureAffine)  # the default: the authors'
    assert isinstance(bare_model(prediction_norm="batch")[0].predictor[0], torch.nn.BatchNorm1d)
    layer = FeatureAffine(3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, -1.0]])
    assert torch.equal(layer(x), torch.tensor([[1.5, 2.0, 2.0], [2.5, 0.0, -4.0]]))
    assert torch.equal(layer(x[:1]), layer(x)[:1])
