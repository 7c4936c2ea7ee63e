r"""DiffRec
################################################

Reference:
    Wenjie Wang, Yiyan Xu, Fuli Feng, Xinyu Lin, Xiangnan He, Tat-Seng Chua.
    "Diffusion Recommender Model." SIGIR 2023.  Code: https://github.com/YiyanXu/DiffRec

What is implemented (equation numbers of the paper):
    - forward process q(x_t | x_0) over the user's interaction vector x_0, Eq. (2)-(3), with the
      noise schedules ``linear`` and ``linear-var`` (the authors' default) between
      ``noise_scale`` x ``noise_min`` and ``noise_scale`` x ``noise_max`` (Sec. 3.2: noise far
      smaller than in image diffusion), or the fixed ``cosine`` and ``binomial`` shapes, which
      ignore the three noise keys (as in the authors' code);
    - the denoiser predicts x_0 (``mean_type: x0``, Eq. (9)-(10)) or the noise (``eps``);
    - the loss: MSE to x_0, reweighted by SNR(t-1) - SNR(t) into the ELBO term (``reweight``,
      Eq. (11)), and timestep importance sampling p_t ∝ sqrt(E[L_t^2]) over the last
      ``history_num_per_term`` losses per step (Eq. (13));
    - inference (Algorithm 2): corrupt the history for T' = ``sampling_steps`` steps (T' = 0: start
      from the history itself), then run the T reverse steps taking the posterior mean (or sampling,
      ``sampling_noise``); the result scores every item.

Beyond the paper:
    - ``inference_steps: K`` < T runs the reverse process as a strided x0-DDIM over K timesteps
      (K denoiser calls instead of T; ``None`` or T is the paper's chain). On ML-1M, K = 5 keeps
      Recall@20 within noise of K = T = 40.

Deviations, on purpose:
    - ``noise_scale`` must be > 0 (the authors' noise-free variant is an MLP autoencoder).
    - The loss history is vectorised per timestep (same FIFO contents as the authors' per-sample loop)
      and, with the schedules, is a buffer: it is saved in checkpoints and survives a resume.
"""

import torch

from recbole.model.abstract_recommender import AutoEncoderMixin, GeneralRecommender
from recbole.utils import InputType

from recbole_diffusion.model.diffusion import MEAN_TYPES, GaussianDiffusion, betas_from_config, check_noise_config
from recbole_diffusion.model.layers import MLPDenoiser
from recbole_diffusion.utils.checks import require, require_choice, require_inference_steps, require_sampling_steps

# Sohl-Dickstein et al. (2015) Sec. 2.4.1, kept by the authors: a tiny first-step variance.
FIRST_BETA = 1e-5


def check_diffusion_config(config):
    """Validate the diffusion keys shared by every DiffRec variant."""
    check_noise_config(config)
    require_choice(config, "mean_type", MEAN_TYPES)
    require_sampling_steps(config)
    require_inference_steps(config)
    require(config["history_num_per_term"] >= 1, "history_num_per_term", config["history_num_per_term"], "must be >= 1")


def build_diffusion(config):
    """The Gaussian diffusion process a DiffRec config describes."""
    betas = betas_from_config(config)
    if config["beta_fixed"]:
        betas[0] = FIRST_BETA
    return GaussianDiffusion(betas, config["mean_type"], config["history_num_per_term"])


class DiffRec(GeneralRecommender, AutoEncoderMixin):
    r"""Gaussian diffusion over each user's interaction vector with an MLP denoiser."""

    input_type = InputType.LISTWISE

    @staticmethod
    def check_config(config):
        check_diffusion_config(config)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.sampling_steps = config["sampling_steps"]
        self.inference_steps = config["inference_steps"]
        self.sampling_noise = config["sampling_noise"]
        self.reweight = config["reweight"]
        self.build_histroy_items(dataset)
        self.diffusion = build_diffusion(config)
        self.denoiser = MLPDenoiser(
            self.n_items, config["dims_dnn"], config["embedding_size"], config["dropout"], config["norm"]
        )

    def interaction_vectors(self, interaction):
        """The users' (possibly reweighted) training interaction vectors x_0, [batch, n_items]."""
        return self.get_rating_matrix(interaction[self.USER_ID])

    def calculate_loss(self, interaction):
        x_start = self.interaction_vectors(interaction)
        return self.diffusion.training_loss(self.denoiser, x_start, reweight=self.reweight).mean()

    def generate(self, x_start):
        """Algorithm 2: x_{T'} from the history, then the reverse process (T, or inference_steps, calls)."""
        if self.sampling_steps > 0:
            t = torch.full((x_start.shape[0],), self.sampling_steps - 1, device=x_start.device, dtype=torch.long)
            x_start = self.diffusion.q_sample(x_start, t)
        return self.diffusion.reverse_process(self.denoiser, x_start, self.inference_steps, self.sampling_noise)

    def full_sort_predict(self, interaction):
        return self.generate(self.interaction_vectors(interaction))

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
