"""Denoising networks shared by the plugin's diffusion models (kept apart from the diffusion
core in :mod:`recbole_diffusion.model.diffusion`)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim, max_period=10000):
    """Sinusoidal embedding of integer timesteps (Vaswani et al. 2017; Ho et al. 2020).

    Returns [len(t), dim]: cos of the first half of the frequencies, then sin; zero-padded when
    ``dim`` is odd.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _init_linear(layer):
    """Xavier-normal weights and N(0, 0.001) biases, the initialisation of DiffRec's code."""
    nn.init.xavier_normal_(layer.weight)
    nn.init.normal_(layer.bias, std=0.001)


class MLPDenoiser(nn.Module):
    """DiffRec's denoiser f_theta(x_t, t): an MLP over [x_t, Linear(emb(t))] with tanh between layers.

    ``dims`` lists the hidden sizes of the decoder half as in DiffRec's ``--dims``: with
    ``dims=[200, 600]`` and ``n`` inputs the network is (n + emb) -> 600 -> 200 -> 600 -> n.
    Input dropout (``dropout``) and optional L2 normalisation of x_t act as in the paper's code.
    """

    def __init__(self, n_features, dims, time_emb_size, dropout=0.5, norm=False):
        super().__init__()
        self.time_emb_size = time_emb_size
        self.norm = norm
        out_dims = list(dims) + [n_features]
        in_dims = out_dims[::-1]
        self.time_layer = nn.Linear(time_emb_size, time_emb_size)
        in_sizes = [in_dims[0] + time_emb_size] + in_dims[1:]
        self.in_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(in_sizes[:-1], in_sizes[1:]))
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.dropout = nn.Dropout(dropout)
        for layer in [self.time_layer, *self.in_layers, *self.out_layers]:
            _init_linear(layer)

    def forward(self, x_t, t):
        time = self.time_layer(timestep_embedding(t, self.time_emb_size))
        if self.norm:
            x_t = F.normalize(x_t)
        h = torch.cat([self.dropout(x_t), time], dim=-1)
        for layer in self.in_layers:
            h = torch.tanh(layer(h))
        for i, layer in enumerate(self.out_layers):
            h = layer(h)
            if i < len(self.out_layers) - 1:
                h = torch.tanh(h)
        return h


class GuidedMLPDenoiser(nn.Module):
    """DreamRec's denoiser f_theta(x_t, c, t) over [x_t, c, step_mlp(t)] (all of size d).

    ``mlp1``: one Linear(3d -> d); ``mlp2``: Linear(3d -> 2d), GELU, Linear(2d -> d). The step
    embedding is sinusoidal -> Linear(d -> 2d) -> GELU -> Linear(2d -> d), as in DreamRec's code.
    """

    KINDS = ("mlp1", "mlp2")

    def __init__(self, hidden_size, kind="mlp1"):
        super().__init__()
        self.hidden_size = hidden_size
        self.step_mlp = nn.Sequential(
            nn.Linear(hidden_size, hidden_size * 2), nn.GELU(), nn.Linear(hidden_size * 2, hidden_size)
        )
        if kind == "mlp1":
            self.net = nn.Linear(hidden_size * 3, hidden_size)
        else:
            self.net = nn.Sequential(
                nn.Linear(hidden_size * 3, hidden_size * 2), nn.GELU(), nn.Linear(hidden_size * 2, hidden_size)
            )

    def forward(self, x_t, condition, t):
        step = self.step_mlp(timestep_embedding(t, self.hidden_size))
        return self.net(torch.cat([x_t, condition, step], dim=-1))

    def guided_pair(self, condition, null, steps):
        """``pair(x_t, t) -> (f(x_t, c, t), f(x_t, null, t))`` for sampling, equal to two forward
        calls: the first layer is split by its inputs, so the condition's share (both conditions)
        and every step's share are computed once per generation, and x_t's once per step for both
        passes, instead of a (3d -> .) layer over twice the rows at every step."""
        first = self.net if isinstance(self.net, nn.Linear) else self.net[0]
        rest = nn.Identity() if isinstance(self.net, nn.Linear) else self.net[1:]
        w_x, w_c, w_s = first.weight.split(self.hidden_size, dim=1)
        conditional = F.linear(condition, w_c, first.bias)
        unconditional = F.linear(null, w_c, first.bias)
        all_steps = torch.arange(steps, device=condition.device)
        step_share = F.linear(self.step_mlp(timestep_embedding(all_steps, self.hidden_size)), w_s)

        def pair(x_t, t):
            shared = F.linear(x_t, w_x) + step_share.index_select(0, t)
            return rest(shared + conditional), rest(shared + unconditional)

        return pair
