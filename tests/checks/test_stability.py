"""assert_stable: noise and flips, with an explainer or with an explainer's maps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.explainers.explanation import Explanation


def images_2x6() -> torch.Tensor:
    return torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(3))


def ramp(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """1, 2, ..., W along every row, whatever the image: not flip-equivariant horizontally."""
    return torch.arange(x.shape[-1], dtype=torch.float32).repeat(x.shape[0], x.shape[-2], 1) + 1


def failure(fn, *args, **kwargs) -> AuditFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(AuditFailure) as info:
        fn(*args, **kwargs)
    assert info.value.record.message == str(info.value)
    return info.value


def test_assert_stable_noise_record() -> None:
    square = lambda m, x: x[:, 0] ** 2  # noqa: E731
    rec = ma.assert_stable(nn.Identity(), images_2x6(), square, at_most=0.2, sigma=0.01)
    assert rec.check == "map_change_noise" and rec.assertion == "assert_stable"
    assert rec.details["repeats"] == 4 and rec.details["sigma"] == 0.01
    per_draw = torch.tensor(rec.details["per_draw"])
    assert per_draw.shape == (4, 2)
    # a sample's value is its largest change over the draws
    assert rec.values == pytest.approx(tuple(per_draw.max(dim=0).values.tolist()))


def test_a_map_that_breaks_under_any_noise_fails_with_the_hand_computed_change() -> None:
    images = images_2x6()

    def brittle(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        flat = ramp(m, x)
        return flat if torch.equal(x, images) else flat.flip(-1)

    err = failure(ma.assert_stable, nn.Identity(), images, brittle, at_most=0.5, repeats=3)
    # the ranking reverses: spearman -1, change 1 - (-1) = 2 in every draw
    assert err.record.values == (2.0, 2.0) and err.record.failing == (0, 1)
    assert err.record.details["per_draw"] == [[2.0, 2.0]] * 3
    assert str(err).splitlines()[0] == (
        "assert_stable: map_change_noise <= 0.5 must hold for every sample; 2 of 2 samples fail."
    )
    assert (
        "  largest change over 3 noise draws of std 0.02 (seed 0); change = 1 - spearman"
        in str(err).splitlines()
    )
    # mean |1..6 / 6 - 6..1 / 6| = (5 + 3 + 1 + 1 + 3 + 5) / 36 = 0.5
    err = failure(ma.assert_stable, nn.Identity(), images, brittle, at_most=0.4, measure="mean_abs")
    assert err.record.values == pytest.approx((0.5, 0.5))
    assert "change = mean |difference|" in str(err)
    # a map that ignores the image does not move at all
    assert ma.assert_stable(nn.Identity(), images, ramp, at_most=0.0).values == (0.0, 0.0)


def test_assert_stable_flips() -> None:
    images = images_2x6()
    err = failure(ma.assert_stable, nn.Identity(), images, ramp, at_most=0.1, perturbation="hflip")
    assert err.record.values == (2.0, 2.0) and err.record.check == "map_change_hflip"
    assert (
        "change between the horizontally flipped image's map and the flipped map; "
        "change = 1 - spearman" in str(err)
    )
    rec = ma.assert_stable(nn.Identity(), images, ramp, at_most=0.1, perturbation="vflip")
    assert rec.passed and rec.values == (0.0, 0.0)  # rows are all the same: vflip is a no-op
    with pytest.raises(InvalidInputError, match="perturbation must be 'noise', 'hflip' or 'vflip'"):
        ma.assert_stable(nn.Identity(), images, ramp, at_most=0.1, perturbation="rotate")  # type: ignore[arg-type]


def test_samples_are_the_original_maps_and_images() -> None:
    images = images_2x6()
    err = failure(ma.assert_stable, nn.Identity(), images, ramp, at_most=0.1, perturbation="hflip")
    views = err.record.samples
    assert views is not None and torch.equal(views.images, images)
    assert torch.allclose(views.maps[0, 0], torch.arange(1, 7) / 6)  # scaled to [0, 1]
    assert views.boxes is None and views.masks is None


def test_maps_from_an_explainer_are_explained_again_with_the_same_method(
    method_calls: list[dict],
) -> None:
    images = images_2x6()
    targets = torch.tensor([3, 1])
    maps = Explanation(
        ramp(nn.Identity(), images), method="test_ramp", layer="conv", targets=targets,
        inputs=images,
    )  # fmt: skip
    err = failure(ma.assert_stable, nn.Identity(), maps, at_most=0.1, perturbation="hflip")
    assert err.record.values == (2.0, 2.0)
    assert err.record.method == "test_ramp" and err.record.layer == "conv"
    assert str(err).splitlines()[-1] == "  method: test_ramp, layer: conv"
    assert method_calls and all(c["method"] == "test_ramp" for c in method_calls)
    assert all(c["layer"] == "conv" and torch.equal(c["target"], targets) for c in method_calls)
    assert err.record.samples is not None and torch.equal(err.record.samples.images, images)
    rec = ma.assert_stable(nn.Identity(), maps, at_most=0.1, perturbation="vflip")
    assert rec.passed and rec.values == (0.0, 0.0)


def test_plain_images_without_an_explainer_are_a_clear_error() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"assert_stable needs an explainer: pass explainer=lambda model, images: \.\.\. "
        r"or maps returned by a modelaudit explainer",
    ):
        ma.assert_stable(nn.Identity(), images_2x6(), at_most=0.1)


@pytest.mark.parametrize(
    ("measure", "bound", "message"),
    [
        ("spearman", {"at_most": 2}, r"at_most=2 always passes: map_change_noise lies in "
                                     r"\[0, 2\], so every value is <= 2. Give at_most in \[0, 2\)."),
        ("spearman", {"at_most": -0.1}, r"at_most=-0.1 can never pass"),
        ("spearman", {"at_least": 0}, r"at_least=0 always passes: .* Give at_least in \(0, 2\]."),
        ("spearman", {"at_least": 2.5}, r"at_least=2.5 can never pass"),
        ("mean_abs", {"at_most": 1}, r"at_most=1 always passes: map_change_noise lies in "
                                     r"\[0, 1\], .* Give at_most in \[0, 1\)."),
        ("mean_abs", {"at_most": 1.5}, r"at_most=1.5 always passes"),
        ("mean_abs", {"at_least": 1.5}, r"at_least=1.5 can never pass"),
    ],
)  # fmt: skip
def test_a_change_bound_outside_the_measures_range_fails_before_any_explanation(
    measure: str, bound: dict, message: str
) -> None:
    calls: list[int] = []

    def counting(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return ramp(m, x)

    with pytest.raises(InvalidInputError, match=f"assert_stable: {message}"):
        ma.assert_stable(nn.Identity(), images_2x6(), counting, measure=measure, **bound)  # type: ignore[arg-type]
    assert calls == []


def test_spearman_change_reaches_2_so_bounds_above_1_still_decide() -> None:
    images = images_2x6()

    def reversed_under_noise(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        flat = ramp(m, x)
        return flat if torch.equal(x, images) else flat.flip(-1)

    # the ranking reverses: change 2 in every draw, above at_most=1.5 (a valid bound)
    err = failure(ma.assert_stable, nn.Identity(), images, reversed_under_noise, at_most=1.5)
    assert err.record.values == (2.0, 2.0)
    rec = ma.assert_stable(nn.Identity(), images, reversed_under_noise, at_least=2.0)
    assert rec.passed and rec.obtained == 2.0
