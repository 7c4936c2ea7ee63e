"""The shared Gaussian diffusion core against closed forms and naive reference implementations."""

import math

import numpy as np
import pytest
import torch

from recbole_diffusion.model.diffusion import GaussianDiffusion, make_betas

T = 10


def alphas_cumprod_np(betas):
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


@pytest.fixture
def diffusion():
    """A short schedule with sizeable noise, so every closed form is well conditioned."""
    return GaussianDiffusion(make_betas("linear", T, 1.0, 0.01, 0.2), mean_type="x0", history_num_per_term=4)


# ----- schedules ---------------------------------------------------------------------------------
def test_linear_schedule_is_linspace_of_scaled_bounds():
    betas = make_betas("linear", 7, noise_scale=0.5, noise_min=0.01, noise_max=0.04)
    assert betas.dtype == torch.float64
    np.testing.assert_allclose(betas.numpy(), np.linspace(0.005, 0.02, 7), rtol=0, atol=1e-15)


def test_linear_var_schedule_makes_the_variance_linear():
    betas = make_betas("linear-var", 40, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    variance = 1.0 - alphas_cumprod_np(betas.numpy())
    np.testing.assert_allclose(variance, np.linspace(0.005 * 0.005, 0.005 * 0.01, 40), rtol=1e-9, atol=1e-15)
    # Not the plain linear schedule: beta_t = 1 - abar_t / abar_{t-1} shrinks as the variance grows.
    assert betas[0] == pytest.approx(0.005 * 0.005)
    assert not torch.allclose(betas, make_betas("linear", 40, 0.005, 0.005, 0.01))


def test_cosine_schedule_follows_closed_form_and_clips():
    steps, s = 50, 0.008

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    raw = np.array([1.0 - f((i + 1) / steps) / f(i / steps) for i in range(steps)])
    betas = make_betas("cosine", steps).numpy()
    clipped = raw > 0.999
    assert clipped[-1] and clipped.sum() >= 1  # alpha_bar(1) = cos^2(pi/2) ~ 0: the last beta is 1
    np.testing.assert_allclose(betas[~clipped], raw[~clipped], rtol=1e-10)
    np.testing.assert_array_equal(betas[clipped], 0.999)
    # Before clipping starts, alpha_bar_t = f(t/T) / f(0).
    first_clip = int(np.argmax(clipped))
    expected = np.array([f((i + 1) / steps) / f(0.0) for i in range(first_clip)])
    np.testing.assert_allclose(alphas_cumprod_np(betas)[:first_clip], expected, rtol=1e-9)


def test_binomial_schedule():
    betas = make_betas("binomial", 6).numpy()
    np.testing.assert_allclose(betas, [1 / 7, 1 / 6, 1 / 5, 1 / 4, 1 / 3, 1 / 2], rtol=1e-15)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="quadratic"):
        make_betas("quadratic", 10)


# ----- buffers vs closed forms ---------------------------------------------------------------------
def test_posterior_buffers_match_closed_forms(diffusion):
    betas = diffusion.betas.numpy()
    abar = alphas_cumprod_np(betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    np.testing.assert_allclose(diffusion.alphas_cumprod.numpy(), abar, rtol=1e-12)
    np.testing.assert_allclose(diffusion.alphas_cumprod_prev.numpy(), abar_prev, rtol=1e-12)
    variance = betas * (1 - abar_prev) / (1 - abar)
    np.testing.assert_allclose(diffusion.posterior_variance.numpy(), variance, rtol=1e-12, atol=1e-18)
    assert diffusion.posterior_variance[0] == 0  # x_{-1} = x_0 is known exactly
    # The log variance is clipped at t = 0 to the value of t = 1.
    np.testing.assert_allclose(diffusion.posterior_log_variance_clipped.numpy()[1:], np.log(variance[1:]), rtol=1e-12)
    assert diffusion.posterior_log_variance_clipped[0] == pytest.approx(math.log(variance[1]))
    coef1 = betas * np.sqrt(abar_prev) / (1 - abar)
    coef2 = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
    np.testing.assert_allclose(diffusion.posterior_mean_coef1.numpy(), coef1, rtol=1e-12)
    np.testing.assert_allclose(diffusion.posterior_mean_coef2.numpy(), coef2, rtol=1e-12, atol=1e-18)
    assert diffusion.posterior_mean_coef1[0] == pytest.approx(1.0, abs=1e-12)
    assert diffusion.posterior_mean_coef2[0] == 0


def test_q_posterior_is_the_bayes_posterior(diffusion):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): a product of two Gaussians."""
    gen = torch.Generator().manual_seed(0)
    n = 64
    x0 = torch.randn(n, 5, generator=gen)
    x_t = torch.randn(n, 5, generator=gen)
    t = torch.randint(1, T, (n,), generator=gen)
    mean, variance, log_variance = diffusion.q_posterior_mean_variance(x0, x_t, t)
    assert mean.shape == (n, 5) and variance.shape == (n, 1)

    betas = diffusion.betas.numpy()
    abar = alphas_cumprod_np(betas)
    tt = t.numpy()
    b, ab_prev = betas[tt][:, None], abar[tt - 1][:, None]
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(1 - b) x_{t-1}, b)
    precision = 1.0 / (1.0 - ab_prev) + (1.0 - b) / b
    expected_var = 1.0 / precision
    expected_mean = expected_var * (
        np.sqrt(ab_prev) * x0.double().numpy() / (1.0 - ab_prev) + np.sqrt(1.0 - b) * x_t.double().numpy() / b
    )
    np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance.numpy(), expected_var, rtol=1e-5)
    np.testing.assert_allclose(log_variance.numpy(), np.log(expected_var), rtol=1e-5)


def test_q_sample_moments(diffusion):
    torch.manual_seed(0)
    n = 200_000
    x0 = torch.tensor([1.0, -0.5, 0.0, 2.0])
    for step in (0, 4, T - 1):
        t = torch.full((n,), step, dtype=torch.long)
        x_t = diffusion.q_sample(x0.expand(n, -1), t)
        abar = float(diffusion.alphas_cumprod[step])
        std = math.sqrt(1 - abar)
        np.testing.assert_allclose(x_t.mean(0).numpy(), math.sqrt(abar) * x0.numpy(), atol=5 * std / math.sqrt(n))
        np.testing.assert_allclose(x_t.var(0).numpy(), np.full(4, 1 - abar), rtol=5 * math.sqrt(2 / n))


def test_predict_start_from_noise_inverts_q_sample(diffusion):
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(200, 7, generator=gen)
    noise = torch.randn(200, 7, generator=gen)
    t = torch.arange(200) % T
    x_t = diffusion.q_sample(x0, t, noise)
    torch.testing.assert_close(diffusion.predict_start_from_noise(x_t, t, noise), x0, rtol=0, atol=2e-5)
    eps_model = GaussianDiffusion(diffusion.betas, mean_type="eps")
    torch.testing.assert_close(eps_model.predict_start(noise, x_t, t), x0, rtol=0, atol=2e-5)
    # An x0 model passes its output through.
    assert diffusion.predict_start(x0, x_t, t) is x0


def test_loss_weight_is_snr_difference(diffusion):
    abar = alphas_cumprod_np(diffusion.betas.numpy())
    snr = abar / (1 - abar)
    t = torch.arange(T)
    weight = diffusion.loss_weight(t).numpy()
    assert weight[0] == 1.0
    np.testing.assert_allclose(weight[1:], snr[:-1] - snr[1:], rtol=1e-6)
    assert (weight[1:] > 0).all()


def test_mean_type_must_be_known():
    with pytest.raises(ValueError, match="v_pred"):
        GaussianDiffusion(make_betas("linear", 5), mean_type="v_pred")


# ----- importance sampling -------------------------------------------------------------------------
def test_timesteps_are_uniform_until_every_history_is_full(diffusion):
    torch.manual_seed(0)
    size = diffusion.loss_history.shape[1]
    diffusion.loss_history.uniform_(0.1, 5.0)
    diffusion.loss_count.fill_(size)
    diffusion.loss_count[3] = size - 1  # one step short of a full history
    n = 20_000
    t, pt = diffusion.sample_timesteps(n, importance=True)
    assert torch.equal(pt, torch.ones(n))
    counts = torch.bincount(t, minlength=T).double()
    assert (t >= 0).all() and (t < T).all()
    expected = n / T
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected)
    # Full histories but importance off: still uniform.
    diffusion.loss_count.fill_(size)
    t, pt = diffusion.sample_timesteps(n, importance=False)
    assert torch.equal(pt, torch.ones(n))
    assert (torch.bincount(t, minlength=T).double() - expected).abs().max() < 5 * math.sqrt(expected)


def test_importance_sampling_probabilities(diffusion):
    torch.manual_seed(0)
    size = diffusion.loss_history.shape[1]
    history = torch.rand(T, size, dtype=torch.float64) + 0.5
    history[6] *= 40.0  # one step with far larger losses
    diffusion.loss_history.copy_(history)
    diffusion.loss_count.fill_(size)
    rms = history.pow(2).mean(1).sqrt()
    probs = rms / rms.sum() * 0.999 + 0.001 / T
    n = 20_000
    t, pt = diffusion.sample_timesteps(n, importance=True)
    assert pt.dtype == torch.float32
    torch.testing.assert_close(pt, (probs[t] * T).float())
    counts = torch.bincount(t, minlength=T).double()
    assert int(counts.argmax()) == 6
    np.testing.assert_allclose((counts / n).numpy(), probs.numpy(), atol=5 * math.sqrt(0.25 / n))


def reference_update(history, count, t, losses):
    """The authors' per-sample FIFO update (DiffRec's gaussian_diffusion.py)."""
    size = history.shape[1]
    for step, loss in zip(t.tolist(), losses.tolist()):
        if count[step] == size:
            history[step, :-1] = history[step, 1:].copy()
            history[step, -1] = loss
        else:
            history[step, count[step]] = loss
            count[step] += 1


def test_update_loss_history_is_the_per_sample_fifo(diffusion):
    """The vectorised update equals the authors' per-sample loop."""
    gen = torch.Generator().manual_seed(3)
    history = np.zeros(tuple(diffusion.loss_history.shape))
    count = np.zeros(T, dtype=np.int64)
    for batch in range(7):
        n = [3, 17, 40, 1, 25, 60, 200][batch]
        # the first batch leaves some steps without any history; the last brings more than a FIFO holds
        high = 4 if batch in (0, 6) else T
        t = torch.randint(0, high, (n,), generator=gen)
        losses = torch.rand(n, generator=gen)
        diffusion.update_loss_history(t, losses)
        reference_update(history, count, t, losses)
        np.testing.assert_array_equal(diffusion.loss_count.numpy(), count)
        np.testing.assert_array_equal(diffusion.loss_history.numpy(), history)
    assert (count == diffusion.loss_history.shape[1]).all()  # the FIFOs did wrap around


def test_training_loss_weights_and_records_each_sample(diffusion):
    torch.manual_seed(0)
    x0 = torch.rand(32, 6)
    seen = {}

    def denoise(x_t, t):
        seen["t"] = t
        return torch.zeros_like(x_t)

    loss = diffusion.training_loss(denoise, x0, reweight=True, importance=True)
    t = seen["t"]
    expected = diffusion.loss_weight(t) * x0.pow(2).mean(1)  # uniform sampling: p_t * T = 1
    torch.testing.assert_close(loss, expected)
    assert int(diffusion.loss_count.sum()) == sum(min(int((t == s).sum()), 4) for s in range(T))
    for step in t.unique().tolist():
        recorded = diffusion.loss_history[step, : int(diffusion.loss_count[step])]
        torch.testing.assert_close(recorded.float(), expected[t == step][-4:])


# ----- reverse process -----------------------------------------------------------------------------
@pytest.mark.parametrize("mean_type", ["x0", "eps"])
@pytest.mark.parametrize("start", ["x0", "noise"])
@pytest.mark.parametrize("sampling_noise", [False, True])
def test_p_sample_loop_with_exact_denoiser_returns_x0(mean_type, start, sampling_noise):
    """The last reverse step (t = 0) has abar_{-1} = 1, so coef1 = 1 and coef2 = 0: its mean is the
    predicted x_0 itself and no noise is added. A denoiser that always predicts the true x_0 therefore
    ends the chain exactly at x_0, from any starting point."""
    diffusion = GaussianDiffusion(make_betas("linear-var", T, 1.0, 0.01, 0.3), mean_type=mean_type)
    gen = torch.Generator().manual_seed(4)
    x0 = torch.rand(16, 9, generator=gen)
    x_start = x0.clone() if start == "x0" else torch.randn(16, 9, generator=gen)
    calls = []

    def denoise(x_t, t):
        calls.append(int(t[0]))
        assert (t == t[0]).all()
        if mean_type == "x0":
            return x0
        abar = diffusion.alphas_cumprod[t].float()[:, None]
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()  # the true noise of x_t given x0

    torch.manual_seed(5)
    out = diffusion.p_sample_loop(denoise, x_start, sampling_noise=sampling_noise)
    assert calls == list(range(T - 1, -1, -1))
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


def test_p_sample_loop_intermediate_steps_follow_the_posterior_mean():
    """With two steps, x_0 = mean at t=0 of (x̂_0, x_1) where x_1 = coef1_1 x̂_0 + coef2_1 x_2."""
    diffusion = GaussianDiffusion(make_betas("linear", 2, 1.0, 0.1, 0.3))
    x2 = torch.tensor([[1.0, -2.0, 0.5]])
    preds = {1: torch.tensor([[0.2, 0.3, 0.4]]), 0: torch.tensor([[-1.0, 0.0, 1.0]])}
    inputs = {}

    def denoise(x_t, t):
        inputs[int(t[0])] = x_t.clone()
        return preds[int(t[0])]

    out = diffusion.p_sample_loop(denoise, x2)
    b = diffusion.betas.numpy()
    abar = alphas_cumprod_np(b)
    x1 = b[1] * math.sqrt(abar[0]) / (1 - abar[1]) * preds[1].numpy() + (1 - abar[0]) * math.sqrt(1 - b[1]) / (1 - abar[1]) * x2.numpy()
    np.testing.assert_allclose(inputs[0].numpy(), x1, rtol=1e-6)
    np.testing.assert_allclose(out.numpy(), preds[0].numpy(), rtol=1e-6)
