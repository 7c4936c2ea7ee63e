"""The shared Gaussian diffusion core: noise schedules, forward process, posterior, reverse
samplers and importance sampling of timesteps.

Every diffusion model of the plugin (DiffRec, T-DiffRec, L-DiffRec, DreamRec) builds one
:class:`GaussianDiffusion` and hands it a denoising network as a plain callable
``denoise(x_t, t) -> output``; the networks live in :mod:`recbole_diffusion.model.layers`.

Notation follows Ho et al. (2020), "Denoising Diffusion Probabilistic Models", which DiffRec
(Wang et al., SIGIR 2023) restates as its Eq. (2)-(10): ``alpha_t = 1 - beta_t``,
``alpha_bar_t = prod_{s<=t} alpha_s``. Timesteps are 0-based: index ``t`` here is step ``t+1``
of the papers. Schedules are float64 buffers, so they travel with ``state_dict`` and a
checkpoint restores exactly the process it was trained with.
"""

import math

import torch
import torch.nn as nn

from recbole_diffusion.utils.checks import require, require_choice

NOISE_SCHEDULES = ("linear", "linear-var", "cosine", "binomial", "exp", "sqrt")
# The schedules that read noise_scale, noise_min and noise_max; the others are fixed shapes.
SCALED_SCHEDULES = ("linear", "linear-var")
MEAN_TYPES = ("x0", "eps")


def make_betas(schedule, steps, noise_scale=1.0, noise_min=1e-4, noise_max=0.02, max_beta=0.999):
    """Return the float64 betas of a named schedule.

    Only ``linear`` and ``linear-var`` read ``noise_scale``, ``noise_min`` and ``noise_max``;
    ``cosine``, ``binomial``, ``exp`` and ``sqrt`` depend on the number of steps alone.

    - ``linear``: beta_t linear in [noise_scale*noise_min, noise_scale*noise_max] (DDPM).
    - ``linear-var``: the *variance* 1 - alpha_bar_t is linear in that range (DiffRec's default).
    - ``cosine``: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), s = 0.008 (Nichol & Dhariwal 2021).
    - ``binomial``: beta_t = 1 / (T - t + 1) (Sohl-Dickstein et al. 2015, Sec. 2.4.1).
    - ``exp``: the VP-SDE discretisation of DreamRec's code, beta(s) linear in [0.1, 10] over
      s = (2i+1)/(2T): beta_i = 1 - exp(-0.1/T - (2i+1)/2 * 9.9/T^2) (noise bounds unused).
    - ``sqrt``: alpha_bar(t) = 1 - sqrt(t + 1e-4) (Li et al. 2022, Diffusion-LM; DreamRec's code).
    """
    if schedule in ("linear", "linear-var"):
        levels = torch.linspace(noise_scale * noise_min, noise_scale * noise_max, steps, dtype=torch.float64)
        if schedule == "linear":
            return levels
        alphas_cumprod = 1.0 - levels
        ratios = alphas_cumprod[1:] / alphas_cumprod[:-1]
        return torch.cat([levels[:1], (1.0 - ratios).clamp(max=max_beta)])
    if schedule == "cosine":
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        alpha_bar = torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2
        return (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    if schedule == "binomial":
        t = torch.arange(steps, dtype=torch.float64)
        return 1.0 / (steps - t + 1)
    if schedule == "exp":
        beta_min, beta_max = 0.1, 10.0
        x = torch.linspace(1, 2 * steps + 1, steps, dtype=torch.float64)
        return 1.0 - torch.exp(-beta_min / steps - x * 0.5 * (beta_max - beta_min) / steps**2)
    if schedule == "sqrt":
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        alpha_bar = 1.0 - torch.sqrt(grid + 1e-4)
        return (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    raise ValueError(f"noise_schedule '{schedule}' is unknown; choose one of {list(NOISE_SCHEDULES)}")


def check_noise_config(config):
    """Validate the schedule keys every diffusion model reads (``noise_*``, ``steps``)."""
    require_choice(config, "noise_schedule", NOISE_SCHEDULES)
    require(isinstance(config["steps"], int) and config["steps"] >= 1, "steps", config["steps"], "must be an integer >= 1")
    require(config["noise_scale"] > 0, "noise_scale", config["noise_scale"], "must be > 0")
    require(config["noise_min"] > 0, "noise_min", config["noise_min"], "must be > 0")
    require(
        config["noise_min"] <= config["noise_max"],
        "noise_min",
        config["noise_min"],
        f"must not exceed noise_max = {config['noise_max']!r}",
    )
    require(config["noise_scale"] * config["noise_max"] < 1, "noise_max", config["noise_max"], "noise_scale * noise_max must be < 1")


def betas_from_config(config):
    return make_betas(config["noise_schedule"], config["steps"], config["noise_scale"], config["noise_min"], config["noise_max"])


def classifier_free_guidance(conditional, unconditional, weight):
    """(1 + w) f(x_t, c, t) - w f(x_t, null, t) (Ho & Salimans 2022; DreamRec Eq. (8))."""
    return (1.0 + weight) * conditional - weight * unconditional


def strided_timesteps(steps, count):
    """``count`` timesteps, evenly spread over [0, steps - 1], descending, ending at 0."""
    return torch.linspace(steps - 1, 0, count, dtype=torch.float64).round().long().unique_consecutive()


def _gather(values, t, ndim):
    """values[t] as float32, shaped to broadcast over a batch of rank ``ndim``."""
    out = values.index_select(0, t).float()
    return out.view(-1, *([1] * (ndim - 1)))


class GaussianDiffusion(nn.Module):
    """Forward process q(x_t | x_0), posterior q(x_{t-1} | x_t, x_0) and reverse samplers.

    Args:
        betas: 1-D float64 tensor of length T.
        mean_type: ``"x0"`` if the network predicts x_0, ``"eps"`` if it predicts the noise.
        history_num_per_term: losses kept per timestep for importance sampling (DiffRec Sec. 3.3).
    """

    def __init__(self, betas, mean_type="x0", history_num_per_term=10):
        super().__init__()
        if mean_type not in MEAN_TYPES:
            raise ValueError(f"mean_type '{mean_type}' is unknown; choose one of {list(MEAN_TYPES)}")
        betas = betas.to(torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError(f"betas must be a 1-D tensor in (0, 1], got {betas}")
        self.mean_type = mean_type
        self.steps = len(betas)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, 0)
        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        # The variance at t=0 is 0; its log is clipped to the next one, as in DDPM's code (with a
        # single step there is none: beta_1, never used, since no noise is added at t=0).
        first = posterior_variance[1:2] if self.steps > 1 else betas[:1]
        posterior_log_variance = torch.log(torch.cat([first, posterior_variance[1:]]))
        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas_cumprod": (1.0 / alphas_cumprod).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_log_variance,
            # Eq. (10) of DiffRec: mu = coef1 * x0 + coef2 * x_t
            "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod),
            # Importance-sampling state (a FIFO of the last losses per step) is resumable state.
            "loss_history": torch.zeros(self.steps, history_num_per_term, dtype=torch.float64),
            "loss_count": torch.zeros(self.steps, dtype=torch.long),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value)

    # ----- forward process -------------------------------------------------------------
    def q_sample(self, x_start, t, noise=None):
        """Sample x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        return (
            _gather(self.sqrt_alphas_cumprod, t, x_start.dim()) * x_start
            + _gather(self.sqrt_one_minus_alphas_cumprod, t, x_start.dim()) * noise
        )

    def q_posterior_mean_variance(self, x_start, x_t, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        ndim = x_t.dim()
        mean = _gather(self.posterior_mean_coef1, t, ndim) * x_start + _gather(self.posterior_mean_coef2, t, ndim) * x_t
        return mean, _gather(self.posterior_variance, t, ndim), _gather(self.posterior_log_variance_clipped, t, ndim)

    def predict_start_from_noise(self, x_t, t, eps):
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        ndim = x_t.dim()
        return _gather(self.sqrt_recip_alphas_cumprod, t, ndim) * x_t - _gather(self.sqrt_recipm1_alphas_cumprod, t, ndim) * eps

    def predict_start(self, model_output, x_t, t):
        """The x_0 implied by the network's output, whatever it predicts."""
        if self.mean_type == "x0":
            return model_output
        return self.predict_start_from_noise(x_t, t, model_output)

    def snr(self, t):
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t)."""
        alpha_bar = self.alphas_cumprod[t]
        return alpha_bar / (1.0 - alpha_bar)

    # ----- training ----------------------------------------------------------------------
    def sample_timesteps(self, batch_size, importance=True, uniform_prob=0.001):
        """Draw timesteps and their sampling probabilities relative to uniform (p_t * T).

        With ``importance``, p_t is proportional to sqrt(E[L_t^2]) over each step's loss history
        (DiffRec Eq. (13)), mixed with ``uniform_prob`` of uniform; until every step has a full
        history, sampling is uniform.
        """
        device = self.betas.device
        if not importance:
            t = torch.randint(0, self.steps, (batch_size,), device=device)
            return t, torch.ones(batch_size, device=device)
        # Chosen on the device, without reading the history's state back to the host.
        history_full = (self.loss_count == self.loss_history.shape[1]).all()
        rms = self.loss_history.pow(2).mean(-1).sqrt()
        weighted = rms / rms.sum().clamp(min=torch.finfo(rms.dtype).tiny) * (1.0 - uniform_prob) + uniform_prob / self.steps
        probs = torch.where(history_full, weighted, torch.full_like(weighted, 1.0 / self.steps))
        t = torch.multinomial(probs, batch_size, replacement=True)
        return t, (probs[t] * self.steps).float()

    @torch.no_grad()
    def update_loss_history(self, t, losses):
        """Append each sample's loss to the FIFO of its timestep, in batch order (the authors'
        per-sample loop), in a few tensor ops with no host synchronisation.

        Per step s with ``c`` stored and ``n`` new losses, the FIFO keeps the last
        ``c' = min(c + n, size)`` of (stored, new): everything moves ``c + n - c'`` places to the
        front, and what would land before position 0 goes to a discarded extra column.
        """
        losses = losses.detach().to(self.loss_history.dtype)
        size = self.loss_history.shape[1]
        count = self.loss_count
        new = torch.bincount(t, minlength=self.steps)
        kept = (count + new).clamp(max=size)
        shift = count + new - kept
        # each sample's rank among the batch's samples of its step, in batch order
        order = torch.sort(t, stable=True).indices
        sorted_t = t[order]
        rank = torch.empty_like(t)
        rank[order] = torch.arange(len(t), device=t.device) - torch.searchsorted(sorted_t, sorted_t)
        merged = self.loss_history.new_zeros(self.steps, size + 1)  # column `size`: discarded writes
        slots = torch.arange(size, device=t.device).expand(self.steps, size)
        old_target = slots - shift[:, None]
        old_target = torch.where((slots < count[:, None]) & (old_target >= 0), old_target, size)
        merged.scatter_(1, old_target, self.loss_history)
        new_target = count[t] + rank - shift[t]
        merged[t, torch.where(new_target >= 0, new_target, size)] = losses
        self.loss_history.copy_(merged[:, :size])
        self.loss_count.copy_(kept)

    def loss_weight(self, t):
        """Per-sample weight of the x0-MSE that turns it into the ELBO term L_t (DiffRec Eq. (11)).

        For x_0 prediction the KL term equals (SNR(t-1) - SNR(t)) / 2 * ||x_0 - x̂_0||^2 ; the
        first step keeps weight 1 (its term is a reconstruction likelihood).
        """
        if self.mean_type == "x0":
            weight = self.snr((t - 1).clamp(min=0)) - self.snr(t)
        else:
            weight = (1 - self.alphas_cumprod[t]) / ((1 - self.alphas_cumprod_prev[t]) ** 2 * (1 - self.betas[t]))
        return torch.where(t == 0, torch.ones_like(weight), weight).float()

    def training_loss(self, denoise, x_start, reweight=True, importance=True):
        """The per-sample diffusion loss of a batch, importance-weighted (divided by p_t * T).

        ``denoise(x_t, t)`` is the network. Returns a tensor of shape [batch]; its mean is the
        objective. With ``importance``, also records the losses for importance sampling.
        """
        t, pt = self.sample_timesteps(x_start.shape[0], importance=importance)
        noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise)
        output = denoise(x_t, t)
        target = x_start if self.mean_type == "x0" else noise
        mse = (target - output).pow(2).flatten(1).mean(1)
        if reweight:
            loss = self.loss_weight(t) * mse
            if self.mean_type == "eps":
                # At t = 0 the eps model is trained through the x_0 it implies (a likelihood term).
                recon = (x_start - self.predict_start_from_noise(x_t, t, output)).pow(2).flatten(1).mean(1) / 2.0
                loss = torch.where(t == 0, recon, loss)
        else:
            loss = mse
        if importance:
            self.update_loss_history(t, loss)
        return loss / pt

    # ----- reverse process -----------------------------------------------------------------
    def p_mean_variance(self, denoise, x_t, t):
        """Mean and log-variance of p(x_{t-1} | x_t): the posterior at the predicted x_0."""
        x_start = self.predict_start(denoise(x_t, t), x_t, t)
        mean, _, log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        return mean, log_variance

    def p_sample_loop(self, denoise, x_t, sampling_noise=False):
        """Run the reverse chain t = T-1 .. 0 from ``x_t`` and return x_0.

        Without ``sampling_noise`` each step takes the posterior mean (DiffRec's inference);
        with it, the ancestral DDPM step adds exp(log_var / 2) * z for t > 0.
        """
        for step in reversed(range(self.steps)):
            t = torch.full((x_t.shape[0],), step, device=x_t.device, dtype=torch.long)
            mean, log_variance = self.p_mean_variance(denoise, x_t, t)
            if sampling_noise and step > 0:
                mean = mean + torch.exp(0.5 * log_variance) * torch.randn_like(x_t)
            x_t = mean
        return x_t

    def reverse_process(self, denoise, x_t, inference_steps=None, sampling_noise=False):
        """x_0 from ``x_t`` with ``inference_steps`` denoiser calls (``None``: all T).

        All T: the posterior-mean chain (:meth:`p_sample_loop`, the papers' inference). Fewer:
        DDIM over that many strided timesteps, deterministic (``eta = 0``), or with
        ``sampling_noise`` stochastic (``eta = 1``).
        """
        if inference_steps is None or inference_steps == self.steps:
            return self.p_sample_loop(denoise, x_t, sampling_noise)
        timesteps = strided_timesteps(self.steps, inference_steps)
        return self.ddim_sample_loop(denoise, x_t, timesteps, eta=1.0 if sampling_noise else 0.0)

    def ddim_sample_loop(self, denoise, x_t, timesteps, eta=0.0):
        """DDIM sampling (Song et al. 2021, Eq. (12)) over the descending ``timesteps``.

        Each step predicts x_0, then moves to the previous listed step:
        x_prev = sqrt(abar_prev) x̂_0 + sqrt(1 - abar_prev - sigma^2) epŝ + sigma z, with
        sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).
        ``eta = 0`` is deterministic; with ``eta = 1`` and every step listed, the mean and variance
        are DDPM's posterior ones. Costs ``len(timesteps)`` denoiser calls instead of T.
        """
        timesteps = timesteps.tolist()
        for i, step in enumerate(timesteps):
            t = torch.full((x_t.shape[0],), step, device=x_t.device, dtype=torch.long)
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            x_start = self.predict_start(denoise(x_t, t), x_t, t)
            x_t = self.ddim_step(x_t, step, prev, x_start, eta)
        return x_t

    def ddim_step(self, x_t, step, prev, x_start, eta=0.0, noise=None):
        """One DDIM move from timestep ``step`` to ``prev`` (-1: to x_0) given the predicted x_0."""
        abar = self.alphas_cumprod[step]
        abar_prev = self.alphas_cumprod[prev] if prev >= 0 else abar.new_tensor(1.0)
        eps = (x_t - abar.sqrt().float() * x_start) / (1.0 - abar).sqrt().float()
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        mean = abar_prev.sqrt().float() * x_start + (1 - abar_prev - sigma**2).clamp(min=0).sqrt().float() * eps
        if eta > 0 and prev >= 0:
            noise = torch.randn_like(x_t) if noise is None else noise
            mean = mean + sigma.float() * noise
        return mean
