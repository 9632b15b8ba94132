"""assert_faithful: deletion and insertion AUCs against hand-computed curves."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.explainers.explanation import Explanation


class Bright(nn.Module):
    """Logit of class 0 = 8 * mean brightness; class 1 stays at 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 8 * x.mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def bright_half() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 4x4 images bright in their top half, and maps pointing at exactly that half."""
    images = torch.zeros(2, 1, 4, 4)
    images[:, 0, :2] = 1.0
    return images, images[:, 0].clone()


def deletion_curve_auc() -> float:
    # 2 of the 16 pixels go per step, the 8 bright ones first: logit 8 * mean = 4, 3, 2, 1, 0...
    # softmax([s, 0])[0] = sigmoid(s); trapezoid over 8 equal steps on [0, 1]
    curve = [1 / (1 + math.exp(-v)) for v in (4, 3, 2, 1, 0, 0, 0, 0, 0)]
    return (sum(curve) - (curve[0] + curve[-1]) / 2) / 8


def test_deletion_auc_of_a_faithful_map() -> None:
    images, maps = bright_half()
    rec = ma.assert_faithful(Bright(), maps, images=images, target=0, at_most=0.7, steps=8)
    assert rec.check == "deletion_auc" and rec.passed
    assert rec.details["fill"] == "zeros" and rec.details["metric"] == "deletion"
    assert rec.details["steps"] == 8
    assert rec.values == pytest.approx((deletion_curve_auc(),) * 2, abs=1e-6)
    one_at_a_time = ma.assert_faithful(
        Bright(), maps, images=images, target=0, at_most=0.7, steps=8, forward_batch=1
    )
    assert one_at_a_time.values == pytest.approx(rec.values, abs=1e-6)


def test_an_unfaithful_map_fails_with_the_curve_named() -> None:
    images, maps = bright_half()
    with pytest.raises(AuditFailure) as info:
        ma.assert_faithful(Bright(), 1 - maps, images=images, target=0, at_most=0.7, steps=8)
    err = info.value
    assert err.record.message == str(err) and err.record.failing == (0, 1)
    assert str(err).splitlines()[0] == (
        "assert_faithful: deletion_auc <= 0.7 must hold for every sample; 2 of 2 samples fail."
    )
    assert (
        "  deletion AUC of the target's softmax probability over 8 steps, fill zeros"
        in str(err).splitlines()
    )
    # the dark pixels go first: logit 4 for 4 steps, then 3, 2, 1, 0
    curve = [1 / (1 + math.exp(-v)) for v in (4, 4, 4, 4, 4, 3, 2, 1, 0)]
    auc = (sum(curve) - (curve[0] + curve[-1]) / 2) / 8
    assert err.record.values == pytest.approx((auc, auc), abs=1e-6)


def test_insertion_with_a_zeros_fill() -> None:
    images, maps = bright_half()
    rec = ma.assert_faithful(
        Bright(), maps, images=images, metric="insertion", target=0, at_least=0.8, steps=8,
        fill="zeros",
    )  # fmt: skip
    # the bright pixels come back first: logit 0 -> 1 -> 2 -> 3 -> 4, then stays at 4
    curve = [1 / (1 + math.exp(-v)) for v in (0, 1, 2, 3, 4, 4, 4, 4, 4)]
    auc = (sum(curve) - (curve[0] + curve[-1]) / 2) / 8
    assert rec.check == "insertion_auc" and rec.passed and rec.details["fill"] == "zeros"
    assert rec.values == pytest.approx((auc, auc), abs=1e-6)


def test_maps_from_an_explainer_bring_their_images_and_targets() -> None:
    images, maps = bright_half()
    explained = Explanation(
        maps, method="gradcam", layer="conv", targets=torch.tensor([0, 0]), inputs=images
    )
    rec = ma.assert_faithful(Bright(), explained, at_most=0.7, steps=8)
    assert rec.values == pytest.approx((deletion_curve_auc(),) * 2, abs=1e-6)
    assert rec.method == "gradcam" and rec.layer == "conv"
    assert rec.samples is not None and torch.equal(rec.samples.images, images)
    assert torch.equal(rec.samples.maps, maps)


def test_bad_metric_and_missing_images_are_clear_errors() -> None:
    images, maps = bright_half()
    with pytest.raises(InvalidInputError, match="metric must be 'deletion' or 'insertion'"):
        ma.assert_faithful(Bright(), maps, images=images, metric="aopc", at_most=1)  # type: ignore[arg-type]
    with pytest.raises(
        InvalidInputError, match="assert_faithful needs the images the maps explain: pass images="
    ):
        ma.assert_faithful(Bright(), maps, at_most=1)


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ({"at_most": 1}, r"assert_faithful: at_most=1 always passes: deletion_auc lies in "
                         r"\[0, 1\], so every value is <= 1. Give at_most in \[0, 1\)."),
        ({"at_most": -0.1}, r"at_most=-0.1 can never pass"),
        ({"at_least": 0}, r"at_least=0 always passes: .* Give at_least in \(0, 1\]."),
        ({"at_least": 1.2}, r"at_least=1.2 can never pass"),
    ],
)  # fmt: skip
def test_an_auc_bound_outside_0_1_is_invalid_for_class_targets(bound: dict, message: str) -> None:
    images, maps = bright_half()
    forwards: list[int] = []

    class Counting(Bright):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            forwards.append(x.shape[0])
            return super().forward(x)

    with pytest.raises(InvalidInputError, match=message):
        ma.assert_faithful(Counting(), maps, images=images, target=0, steps=8, **bound)
    assert forwards == []  # rejected before any forward pass
    insertion = message.replace("deletion_auc", "insertion_auc")
    with pytest.raises(InvalidInputError, match=insertion):
        ma.assert_faithful(Counting(), maps, images=images, metric="insertion", target=0, **bound)


def test_a_callable_targets_auc_is_unbounded_so_any_bound_is_kept() -> None:
    images, maps = bright_half()
    # a raw score, 3 * logit = 24 * mean brightness: 12, 9, 6, 3, 0, 0, 0, 0, 0 over 8 steps
    score = lambda out: 3 * out[:, 0]  # noqa: E731
    rec = ma.assert_faithful(Bright(), maps, images=images, target=score, at_most=3.5, steps=8)
    # trapezoid: (12 + 9 + 6 + 3 - 12 / 2) / 8 = 3.0, outside [0, 1]
    assert rec.values == pytest.approx((3.0, 3.0))
    assert ma.assert_faithful(Bright(), maps, images=images, target=score, at_least=1.5, steps=8)
    with pytest.raises(AuditFailure):
        ma.assert_faithful(Bright(), maps, images=images, target=score, at_least=4, steps=8)
