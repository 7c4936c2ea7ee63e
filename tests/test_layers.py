"""Timestep embedding and DiffRec's MLP denoiser."""

import math

import pytest
import torch

from recbole_diffusion.model.layers import GuidedMLPDenoiser, MLPDenoiser, timestep_embedding


def test_timestep_embedding_values():
    t = torch.tensor([0, 1, 7, 123])
    dim = 8
    emb = timestep_embedding(t, dim)
    assert emb.shape == (4, dim)
    half = dim // 2
    # t = 0: every cosine is 1, every sine 0.
    torch.testing.assert_close(emb[0, :half], torch.ones(half))
    torch.testing.assert_close(emb[0, half:], torch.zeros(half))
    for row, step in enumerate(t.tolist()):
        for i in range(half):
            freq = math.exp(-math.log(10000) * i / half)
            assert emb[row, i].item() == pytest.approx(math.cos(step * freq), abs=1e-5)
            assert emb[row, half + i].item() == pytest.approx(math.sin(step * freq), abs=1e-5)


def test_timestep_embedding_odd_dim_is_zero_padded():
    t = torch.tensor([0, 3, 9])
    emb = timestep_embedding(t, 7)
    assert emb.shape == (3, 7)
    assert torch.equal(emb[:, -1], torch.zeros(3))
    torch.testing.assert_close(emb[:, :6], timestep_embedding(t, 6)[:, :6], rtol=0, atol=0)


def test_mlp_denoiser_layer_sizes_and_shape():
    n, emb = 50, 10
    net = MLPDenoiser(n, [200, 600], emb, dropout=0.5)
    # (n + emb) -> 600 -> 200 -> 600 -> n, weights are [out, in]
    assert [tuple(layer.weight.shape) for layer in net.in_layers] == [(600, n + emb), (200, 600)]
    assert [tuple(layer.weight.shape) for layer in net.out_layers] == [(600, 200), (n, 600)]
    assert tuple(net.time_layer.weight.shape) == (emb, emb)
    x = torch.rand(3, n)
    out = net(x, torch.tensor([0, 4, 9]))
    assert out.shape == (3, n)


def test_mlp_denoiser_single_hidden_layer():
    net = MLPDenoiser(30, [16], 4)
    assert [tuple(layer.weight.shape) for layer in net.in_layers] == [(16, 34)]
    assert [tuple(layer.weight.shape) for layer in net.out_layers] == [(30, 16)]


@pytest.mark.parametrize("norm", [False, True])
def test_mlp_denoiser_forward_matches_a_manual_computation(norm):
    torch.manual_seed(0)
    n, emb = 12, 6
    net = MLPDenoiser(n, [8, 10], emb, dropout=0.5, norm=norm).eval()
    x = torch.rand(5, n)
    t = torch.tensor([0, 1, 2, 3, 4])
    time = net.time_layer(timestep_embedding(t, emb))
    h = torch.nn.functional.normalize(x) if norm else x
    h = torch.cat([h, time], dim=-1)
    for layer in net.in_layers:
        h = torch.tanh(layer(h))
    h = torch.tanh(net.out_layers[0](h))
    expected = net.out_layers[1](h)  # no activation on the output
    torch.testing.assert_close(net(x, t), expected)
    # In training mode the input dropout is active.
    net.train()
    assert not torch.allclose(net(x, t), expected)


@pytest.mark.parametrize("kind", GuidedMLPDenoiser.KINDS)
def test_guided_pair_is_two_forward_calls(kind):
    """The split first layer (shares computed once per generation) equals the plain forward pass."""
    torch.manual_seed(0)
    net = GuidedMLPDenoiser(8, kind)
    condition, null, x_t = torch.randn(5, 8), torch.randn(1, 8), torch.randn(5, 8)
    t = torch.tensor([0, 3, 3, 9, 1])
    conditional, unconditional = net.guided_pair(condition, null, steps=10)(x_t, t)
    torch.testing.assert_close(conditional, net(x_t, condition, t), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unconditional, net(x_t, null.expand(5, -1), t), atol=1e-5, rtol=1e-5)
