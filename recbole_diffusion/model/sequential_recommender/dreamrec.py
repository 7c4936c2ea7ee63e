r"""DreamRec
################################################

Reference:
    Zhengyi Yang, Jiancan Wu, Zhicai Wang, Xiang Wang, Yancheng Yuan, Xiangnan He.
    "Generate What You Prefer: Reshaping Sequential Recommendation via Guided Diffusion."
    NeurIPS 2023.  Code: https://github.com/YangZhengyi98/DreamRec

What is implemented:
    - guidance c: item embeddings + learned positions over the last ``MAX_ITEM_LIST_LENGTH`` items,
      one Transformer block (causal self-attention and a position-wise feed-forward, with the
      layer norms of the authors' code); c is the output at the last real position (Sec. 4.1);
    - forward process over the target item's embedding e_n, Eq. (4); the denoiser predicts x_0
      from (x_t, c, t) (``denoiser_type`` mlp1 / mlp2), loss ||e_n - x̂_0||^2, Eq. (7); no negatives;
    - classifier-free guidance: c is replaced by a learned null embedding with probability
      ``uncond_prob`` (p_u) in training; sampling uses x̂_0 = (1 + w) f(x_t, c, t) - w f(x_t, ∅, t),
      w = ``guidance_weight``, Eq. (8);
    - generation from x_T ~ N(0, I) by the DDPM posterior step (``sampler: ddpm``, T denoiser calls)
      or, beyond the paper, by deterministic DDIM over ``inference_steps`` strided steps
      (``sampler: ddim``, Song et al. 2021); the oracle embedding scores every item by inner
      product (``full_sort_predict``), Sec. 4.2.

Deviations, on purpose:
    - evaluation in eval mode (the authors' code samples with dropout on) and, through RecBole, over
      every row, with the padding id never recommended;
    - training walks RecBole's shuffled epochs (the authors' code draws every batch independently,
      with replacement across batches);
    - a row with an empty history (RecBole's ``item_length = 0``) reads position 0, whose keys are
      all masked, as the authors' data does with ``len_seq = 1`` over padding;
    - attention scores are scaled by sqrt(d) over all heads, as in the authors' code; the step
      embedding is the shared one: cos-then-sin halves (a permutation of the authors' sin-then-cos,
      absorbed by the following linear layer) at frequencies 10000^(-i/(d/2)) (the authors' use
      10000^(-i/(d/2 - 1)): the same range but for the lowest one); the ``cosine`` schedule is the
      shared one (no renormalisation).
"""

import torch
import torch.nn as nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_diffusion.model.diffusion import (
    GaussianDiffusion,
    betas_from_config,
    check_noise_config,
    classifier_free_guidance,
    strided_timesteps,
)
from recbole_diffusion.model.layers import GuidedMLPDenoiser
from recbole_diffusion.utils.checks import require, require_choice, require_inference_steps

SAMPLERS = ("ddpm", "ddim")


class HistoryEncoder(nn.Module):
    """One Transformer block over the padded history, as in DreamRec's code (Tenc.cacu_h)."""

    def __init__(self, hidden_size, max_length, n_heads, dropout):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"config key 'n_heads' = {n_heads}: must divide embedding_size = {hidden_size}")
        self.n_heads = n_heads
        self.position_embedding = nn.Embedding(max_length, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.ln_query, self.ln_ff, self.ln_out, self.ln_residual = (nn.LayerNorm(hidden_size) for _ in range(4))
        self.query, self.key, self.value = (nn.Linear(hidden_size, hidden_size) for _ in range(3))
        self.attention_dropout = nn.Dropout(dropout)
        self.ff = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size))
        self.ff_dropout = nn.Dropout(dropout)

    def forward(self, item_emb, mask, lengths):
        """item_emb [B, L, d] of the padded history, mask [B, L] (True on real items), lengths [B]."""
        batch, length, dim = item_emb.shape
        positions = torch.arange(length, device=item_emb.device)
        keep = mask.unsqueeze(-1).float()
        seq = self.dropout(item_emb + self.position_embedding(positions)) * keep
        queries = self.ln_query(seq)
        heads = lambda x: x.view(batch, length, self.n_heads, dim // self.n_heads).transpose(1, 2)
        q, k, v = heads(self.query(queries)), heads(self.key(seq)), heads(self.value(seq))
        scores = q @ k.transpose(-1, -2) / dim**0.5
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        allowed = causal & mask[:, None, None, :]
        # the dtype's lowest value rather than -inf: a row with no allowed key attends uniformly, as
        # with the authors' -2^32 (which overflows to -inf in half precision, and the row to NaN)
        weights = torch.softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1)
        weights = self.attention_dropout(weights * mask[:, None, :, None])
        attended = (weights @ v).transpose(1, 2).reshape(batch, length, dim) + queries
        ff_in = self.ln_ff(attended)
        out = self.ln_residual(self.ff_dropout(self.ff(ff_in)) + ff_in) * keep
        out = self.ln_out(out)
        last = (lengths - 1).clamp(min=0)
        return out[torch.arange(batch, device=out.device), last]


class DreamRec(SequentialRecommender):
    r"""Guided diffusion that generates the next item's embedding from the history."""

    input_type = InputType.POINTWISE  # (history, next item) rows, no negatives

    @staticmethod
    def check_config(config):
        check_noise_config(config)
        require_choice(config, "sampler", SAMPLERS)
        require_choice(config, "denoiser_type", GuidedMLPDenoiser.KINDS)
        require(config["guidance_weight"] >= 0, "guidance_weight", config["guidance_weight"], "must be >= 0")
        require(0 <= config["uncond_prob"] < 1, "uncond_prob", config["uncond_prob"], "must be in [0, 1)")
        if config["sampler"] == "ddim":  # the DDPM sampler always makes T calls
            require_inference_steps(config)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        hidden = config["embedding_size"]
        self.guidance_weight = config["guidance_weight"]
        self.uncond_prob = config["uncond_prob"]
        self.sampler = config["sampler"]
        self.inference_steps = config["inference_steps"] or config["steps"]
        self.item_embedding = nn.Embedding(self.n_items, hidden, padding_idx=0)
        self.null_condition = nn.Parameter(torch.randn(1, hidden))
        nn.init.normal_(self.item_embedding.weight, 0, 1)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.encoder = HistoryEncoder(hidden, self.max_seq_length, config["n_heads"], config["dropout_prob"])
        self.denoiser = GuidedMLPDenoiser(hidden, config["denoiser_type"])
        self.diffusion = GaussianDiffusion(betas_from_config(config), mean_type="x0")

    def guidance(self, interaction):
        """c: the encoded history of each row, [B, d]."""
        item_seq = interaction[self.ITEM_SEQ]
        return self.encoder(self.item_embedding(item_seq), item_seq != 0, interaction[self.ITEM_SEQ_LEN])

    def calculate_loss(self, interaction):
        condition = self.guidance(interaction)
        drop = torch.rand(condition.shape[0], 1, device=condition.device) < self.uncond_prob
        condition = torch.where(drop, self.null_condition.expand_as(condition), condition)
        target = self.item_embedding(interaction[self.POS_ITEM_ID])
        loss = self.diffusion.training_loss(
            lambda x_t, t: self.denoiser(x_t, condition, t), target, reweight=False, importance=False
        )
        return loss.mean()

    def guided_denoiser(self, condition):
        """x̂_0 with classifier-free guidance; what does not change between steps is computed once
        (:meth:`GuidedMLPDenoiser.guided_pair`)."""
        pair = self.denoiser.guided_pair(condition, self.null_condition, self.diffusion.steps)

        def denoise(x_t, t):
            return classifier_free_guidance(*pair(x_t, t), self.guidance_weight)

        return denoise

    @torch.no_grad()
    def generate(self, interaction):
        """The oracle next-item embeddings, [B, d], from x_T ~ N(0, I)."""
        condition = self.guidance(interaction)
        denoise = self.guided_denoiser(condition)
        noise = torch.randn_like(condition)
        if self.sampler == "ddpm":
            return self.diffusion.p_sample_loop(denoise, noise, sampling_noise=True)
        timesteps = strided_timesteps(self.diffusion.steps, self.inference_steps)
        return self.diffusion.ddim_sample_loop(denoise, noise, timesteps)

    def full_sort_predict(self, interaction):
        return self.generate(interaction) @ self.item_embedding.weight.t()

    def predict(self, interaction):
        """Sampled evaluation: each distinct history in the batch generates one embedding, and all
        its candidates (RecBole's rows of that history) are scored against that same embedding."""
        histories = torch.cat([interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN].unsqueeze(1)], dim=1)
        _, inverse = torch.unique(histories, dim=0, return_inverse=True)
        rows = torch.arange(len(inverse), device=inverse.device)
        first = torch.full((int(inverse.max()) + 1,), len(inverse), device=inverse.device).scatter_reduce(0, inverse, rows, "amin")
        oracle = self.generate(interaction[first])[inverse]
        return (oracle * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)
