"""Stability: map change under noise (replayed noise, scipy Spearman) and flip equivariance."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.measure import flip_equivariance, map_change, noise_stability


def channel0(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)[:, 0]


def ramp(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Ignores the image: always brightest on the right."""
    n, _, h, w = x.shape
    return torch.arange(w, dtype=torch.float32).repeat(n, h, 1) + 1


def test_map_change_hand_computed() -> None:
    a = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    assert map_change(a, 10 * a).tolist() == [0.0]
    assert map_change(a, -a).tolist() == [2.0]  # reversed ranking
    assert map_change(a, a.flip(-1), measure="mean_abs").tolist() == [0.375]
    assert map_change(a, 3 * a, measure="mean_abs").tolist() == [0.0]
    assert map_change(torch.zeros(1, 2, 2), a, measure="mean_abs").item() == pytest.approx(7 / 16)
    with pytest.raises(
        InvalidInputError, match="measure must be 'spearman' or 'mean_abs'; got 'l2'"
    ):
        map_change(a, a, measure="l2")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="same shape"):
        map_change(a, torch.ones(1, 2, 3), measure="mean_abs")


def test_noise_stability_replays_the_documented_noise() -> None:
    x = torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    rng = torch.get_rng_state()
    res = noise_stability(nn.Identity(), x, channel0, sigma=0.1, repeats=3, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is untouched
    gen = torch.Generator().manual_seed(7)
    assert res.changes.shape == (3, 3)
    for r in range(3):
        noisy = x + 0.1 * torch.randn(x.shape, generator=gen)
        for i in range(3):
            rho = spearmanr(x[i, 0].flatten().numpy(), noisy[i, 0].flatten().numpy()).statistic
            assert res.changes[r, i].item() == pytest.approx(1 - rho, abs=1e-5)
    assert torch.equal(res.per_sample, res.changes.max(dim=0).values)
    assert res.max == pytest.approx(res.changes.max().item())
    assert res.mean == pytest.approx(res.per_sample.mean().item())
    assert torch.equal(res.original, x[:, 0])
    again = noise_stability(nn.Identity(), x, channel0, sigma=0.1, repeats=3, seed=7)
    assert torch.equal(again.changes, res.changes)


def test_noise_stability_grows_with_sigma_and_is_zero_for_a_constant_explainer() -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    small = noise_stability(nn.Identity(), x, channel0, sigma=0.01).mean
    large = noise_stability(nn.Identity(), x, channel0, sigma=1.0).mean
    assert small < 0.05 < large
    assert noise_stability(nn.Identity(), x, ramp, measure="mean_abs").max == 0.0


def test_flip_equivariance_exact_values() -> None:
    x = torch.rand(2, 1, 4, 6, generator=torch.Generator().manual_seed(2))
    change, maps = flip_equivariance(nn.Identity(), x, channel0)
    assert change.tolist() == [0.0, 0.0] and torch.equal(maps, x[:, 0])
    # the ramp ignores the flip; the flipped ramp is its reverse: rank correlation -1
    change, _ = flip_equivariance(nn.Identity(), x, ramp)
    assert change.tolist() == [2.0, 2.0]
    # vertically the ramp is constant along the flipped axis: equivariant
    change, _ = flip_equivariance(nn.Identity(), x, ramp, direction="vertical")
    assert change.tolist() == [0.0, 0.0]
    with pytest.raises(InvalidInputError, match="direction must be 'horizontal' or 'vertical'"):
        flip_equivariance(nn.Identity(), x, ramp, direction="diagonal")  # type: ignore[arg-type]


def test_argument_errors() -> None:
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(InvalidInputError, match="sigma must be a positive number; got 0"):
        noise_stability(nn.Identity(), x, channel0, sigma=0)
    with pytest.raises(InvalidInputError, match="repeats must be a positive int; got 0"):
        noise_stability(nn.Identity(), x, channel0, repeats=0)
    with pytest.raises(
        InvalidInputError, match=r"explainer output for noise draw 0 must have shape \(N, H, W\)"
    ):
        noise_stability(nn.Identity(), x, lambda m, inp: inp if inp is not x else inp[:, 0])
