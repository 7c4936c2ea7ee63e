"""DreamRec: guidance formula, DDIM vs DDPM, padded histories, the null condition, checkpoints, bad configs."""

import pytest
import recbole.utils
import torch
from recbole.data.interaction import Interaction

from recbole_diffusion.config import Config
from recbole_diffusion.model.diffusion import GaussianDiffusion, classifier_free_guidance, make_betas, strided_timesteps
from recbole_diffusion.model.sequential_recommender.dreamrec import DreamRec
from recbole_diffusion.quick_start import build, load_data_and_model, run_recbole_diffusion
from recbole_diffusion.utils import ConfigError


@pytest.fixture
def dream_config(tiny_config):
    def make(**overrides):
        return tiny_config(
            **{"embedding_size": 8, "steps": 10, "inference_steps": 10, "MAX_ITEM_LIST_LENGTH": 5, "train_batch_size": 1024, **overrides}
        )

    return make


@pytest.fixture
def dream_model(dream_config):
    config = Config(model="DreamRec", dataset="ml-100k", config_dict=dream_config())
    _, _, model, _ = build(config)
    return config, model.eval()


def rows(config, sequences):
    """An interaction of histories (right-padded with 0, RecBole's layout) and their targets."""
    length = config["MAX_ITEM_LIST_LENGTH"]
    seqs = torch.tensor([seq + [0] * (length - len(seq)) for seq in sequences])
    return Interaction(
        {
            config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]: seqs,
            config["ITEM_LIST_LENGTH_FIELD"]: torch.tensor([len(seq) for seq in sequences]),
            config["ITEM_ID_FIELD"]: torch.tensor([1] * len(sequences)),
        }
    )


def test_recbole_finds_the_plugin_class():
    assert recbole.utils.get_model("DreamRec") is DreamRec


def test_classifier_free_guidance_formula():
    cond, uncond = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    assert torch.allclose(classifier_free_guidance(cond, uncond, 4.0), torch.tensor([8.0, -17.0]))
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0), cond)


def test_guided_denoiser_combines_conditional_and_null_passes(dream_model):
    _, model = dream_model
    condition, x_t, t = torch.randn(3, 8), torch.randn(3, 8), torch.tensor([0, 4, 9])
    guided = model.guided_denoiser(condition)(x_t, t)
    cond = model.denoiser(x_t, condition, t)
    null = model.denoiser(x_t, model.null_condition.expand(3, -1), t)
    assert torch.allclose(guided, (1 + model.guidance_weight) * cond - model.guidance_weight * null, atol=1e-5)
    # with the null condition itself, guidance changes nothing
    only_null = model.guided_denoiser(model.null_condition.expand(3, -1))(x_t, t)
    assert torch.allclose(only_null, null, atol=1e-5)


def test_ddim_at_full_stride_with_eta_one_is_the_ddpm_step():
    diffusion = GaussianDiffusion(make_betas("linear", 50, 1.0, 1e-4, 0.02))
    x_t, x_start, noise = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    for step in (1, 17, 49):
        t = torch.full((4,), step)
        mean, variance, _ = diffusion.q_posterior_mean_variance(x_start, x_t, t)
        ddim_mean = diffusion.ddim_step(x_t, step, step - 1, x_start, eta=1.0, noise=torch.zeros_like(x_t))
        assert torch.allclose(ddim_mean, mean, atol=1e-5)
        ddim_sample = diffusion.ddim_step(x_t, step, step - 1, x_start, eta=1.0, noise=noise)
        assert torch.allclose(ddim_sample - ddim_mean, variance.sqrt() * noise, atol=1e-5)
    # the last step (to x_0) returns the predicted x_0 itself
    assert torch.allclose(diffusion.ddim_step(x_t, 0, -1, x_start), x_start, atol=1e-6)


def test_strided_timesteps():
    steps = strided_timesteps(500, 10)
    assert len(steps) == 10 and steps[0] == 499 and steps[-1] == 0
    assert bool((steps[:-1] > steps[1:]).all())
    assert strided_timesteps(5, 5).tolist() == [4, 3, 2, 1, 0]


def test_padded_and_empty_histories(dream_model):
    config, model = dream_model
    batch = rows(config, [[], [3], [3, 7], [3, 7, 9, 11, 12]])
    condition = model.guidance(batch)
    assert condition.shape == (4, 8) and torch.isfinite(condition).all()
    # the empty history reads position 0 (all keys masked); a longer history changes c
    assert not torch.allclose(condition[0], condition[1])
    torch.manual_seed(0)
    scores = model.full_sort_predict(batch)
    assert scores.shape == (4, model.n_items) and torch.isfinite(scores).all()
    # what follows the last real item does not matter
    padded = rows(config, [[3, 7]])
    padded[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]][0, 2:] = 5
    assert torch.allclose(model.guidance(padded), condition[2:3], atol=1e-6)


@pytest.mark.parametrize("uncond_prob, null_trained", [(0.0, False), (0.9, True)])
def test_null_condition_is_trained_only_when_dropped(dream_config, uncond_prob, null_trained):
    config = Config(model="DreamRec", dataset="ml-100k", config_dict=dream_config(uncond_prob=uncond_prob))
    _, (train_data, _, _), model, _ = build(config)
    model.calculate_loss(next(iter(train_data))).backward()
    grad = model.null_condition.grad
    assert (grad is not None and bool(grad.abs().sum() > 0)) == null_trained


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_training_runs_and_checkpoint_reloads_to_identical_scores(dream_config, sampler):
    result = run_recbole_diffusion(
        model="DreamRec", dataset="ml-100k", config_dict=dream_config(sampler=sampler, inference_steps=4 if sampler == "ddim" else 10)
    )
    for value in result["test_result"].values():
        assert 0.0 <= value <= 1.0
    assert set(result["test_result"]) >= {"hit@10", "hit@20", "ndcg@10", "ndcg@20"}
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    model.eval()
    batch = next(iter(test_data))[0]
    torch.manual_seed(7)
    first = model.full_sort_predict(batch)
    torch.manual_seed(7)
    again = model.full_sort_predict(batch)
    assert torch.equal(first, again)
    _, _, fresh, _ = build(config)
    fresh.load_state_dict(model.state_dict())
    torch.manual_seed(7)
    assert torch.equal(fresh.eval().full_sort_predict(batch), first)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"guidance_weight": -1.0}, "guidance_weight"),
        ({"uncond_prob": 1.0}, "uncond_prob"),
        ({"uncond_prob": -0.1}, "uncond_prob"),
        ({"noise_schedule": "quadratic"}, "noise_schedule"),
        ({"sampler": "euler"}, "sampler"),
        ({"inference_steps": 11, "sampler": "ddim"}, "inference_steps"),
    ],
)
def test_bad_config_stops_with_the_key_and_value(dream_config, overrides, key):
    with pytest.raises(ConfigError) as error:
        Config(model="DreamRec", dataset="ml-100k", config_dict=dream_config(**overrides))
    message = str(error.value)
    assert f"'{key}'" in message and repr(next(iter(overrides.values()))) in message


def test_sampled_evaluation_scores_a_historys_candidates_against_one_generation(dream_model, monkeypatch):
    _, model = dream_model
    model.eval()
    seq = torch.tensor([[3, 5, 0, 0, 0]] * 3 + [[7, 0, 0, 0, 0]] * 2)
    rows = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: torch.tensor([2, 2, 2, 1, 1]), model.ITEM_ID: torch.tensor([4, 9, 11, 4, 2])})
    generated = []
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda batch: generated.append(len(batch)) or real_generate(batch))
    torch.manual_seed(1)
    scores = model.predict(rows)
    assert generated == [2]  # two distinct histories, one generation each
    torch.manual_seed(1)
    oracle = real_generate(rows[torch.tensor([0, 3])])  # the same noise draws, in the same order
    expected = torch.stack([oracle[0]] * 3 + [oracle[1]] * 2) * model.item_embedding(rows[model.ITEM_ID])
    torch.testing.assert_close(scores, expected.sum(-1))
