"""Normalisation, upsampling, fusion and the transformer reshapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.errors import InvalidInputError
from modelaudit.explainers import normalize_maps, swin_reshape, upsample_maps, vit_reshape
from modelaudit.explainers.postprocess import finish_maps

maps_st = st.tuples(
    st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1)
)


def make(n, h, w, seed):
    return torch.randn(n, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=30, deadline=None)
@given(maps_st, st.floats(1e-30, 1e30))
def test_normalize_spans_unit_interval_and_is_scale_free(shape, scale):
    m = make(*shape)
    out = normalize_maps(m)
    assert not out.isnan().any()
    assert bool((out >= 0).all() and (out <= 1).all())
    flat = m.flatten(1)
    varying = flat.amax(1) > flat.amin(1)
    peaks = out.flatten(1).amax(1)
    assert bool((peaks[varying] > 1 - 1e-6).all())
    assert bool((out.flatten(1).amin(1) == 0).all())
    torch.testing.assert_close(normalize_maps(m * scale), out, rtol=1e-6, atol=1e-7)


def test_zero_and_constant_maps_become_zero_not_nan():
    m = torch.stack([torch.zeros(3, 3), torch.full((3, 3), 7.0), torch.full((3, 3), -2e-30)])
    assert torch.equal(normalize_maps(m), torch.zeros(3, 3, 3))


def test_upsample_is_bilinear_without_corner_alignment():
    m = torch.tensor([[[0.0, 1.0]]])  # 1 x 2 -> 1 x 4
    torch.testing.assert_close(upsample_maps(m, (1, 4)), torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))
    same = torch.rand(2, 3, 5, 5)
    assert upsample_maps(same, (5, 5)) is same


def test_finish_orders_relu_upsample_normalize():
    raw = torch.tensor([[[[-1.0, 2.0], [0.0, 4.0]]]])  # (N=1, K=1, 2, 2)
    out = finish_maps([raw], (2, 2))
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 0.5], [0.0, 1.0]]]]))
    signed = finish_maps([raw], (2, 2), relu=False)  # min -1 -> 0, max 4 -> 1
    torch.testing.assert_close(signed, torch.tensor([[[[0.0, 0.6], [0.2, 1.0]]]]))
    kept = finish_maps([raw], (8, 8), relu=False, normalize=False, upsample=False)
    assert torch.equal(kept, raw)


def test_fusion_without_upsampling_uses_the_largest_layer():
    small = torch.ones(1, 1, 2, 2)
    big = torch.zeros(1, 1, 4, 4)
    big[..., 0, 0] = 1.0
    out = finish_maps([small, big], (16, 16), upsample=False, normalize=False)
    assert out.shape == (1, 1, 4, 4)
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(1.0))  # (1 + 1) / 2
    torch.testing.assert_close(out[0, 0, 3, 3], torch.tensor(0.5))  # (1 + 0) / 2


def test_vit_reshape_drops_the_class_token_and_builds_the_grid():
    tokens = torch.arange(2 * 7 * 3, dtype=torch.float32).view(2, 7, 3)  # cls + 2x3 patches
    grid = vit_reshape(tokens, height=2, width=3)
    assert grid.shape == (2, 3, 2, 3)
    # patch (row 1, col 2) is token 1 + 1 * 3 + 2 = 6; its feature 1
    assert grid[0, 1, 1, 2] == tokens[0, 6, 1]
    assert vit_reshape(torch.zeros(1, 17, 5)).shape == (1, 5, 4, 4)
    assert vit_reshape(torch.zeros(1, 18, 5), prefix_tokens=2).shape == (1, 5, 4, 4)
    with pytest.raises(InvalidInputError, match="do not form a 4x4 grid"):
        vit_reshape(torch.zeros(1, 18, 5))
    with pytest.raises(InvalidInputError, match="tokens"):
        vit_reshape(torch.zeros(1, 3, 4, 4))


def test_swin_reshape_moves_channels_first():
    x = torch.rand(2, 3, 4, 5)
    assert torch.equal(swin_reshape(x), x.permute(0, 3, 1, 2))
    with pytest.raises(InvalidInputError):
        swin_reshape(torch.rand(2, 3, 4))
