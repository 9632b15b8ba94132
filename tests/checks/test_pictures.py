"""What each check hands the report to draw: strips, curves, regions, peaks, classes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.checks.sanity import STRIP_STEPS
from modelaudit.checks.stability import STRIP_DRAWS
from modelaudit.errors import AuditFailure


class Bright(nn.Module):
    """Logit of class 0 = 8 * mean brightness; class 1 stays at 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 8 * x.mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_faithfulness_keeps_the_mean_curve_and_a_random_order_reference() -> None:
    images = torch.zeros(2, 1, 4, 4)
    images[:, 0, :2] = 1.0  # the bright top half, and maps pointing at exactly it
    rec = ma.assert_faithful(Bright(), images[:, 0].clone(), images=images, target=0,
                             at_most=0.7, steps=8)  # fmt: skip
    curves = rec.samples.curves
    # 2 of 16 pixels per step, bright ones first: logit 4, 3, 2, 1, 0, 0...; p = sigmoid
    expected = [sigmoid(v) for v in (4, 3, 2, 1, 0, 0, 0, 0, 0)]
    (label, mean, area), = curves.lines  # fmt: skip
    assert label == "map order" and mean.tolist() == pytest.approx(expected, abs=1e-6)
    assert area == pytest.approx(sum(rec.values) / 2, abs=1e-9)
    assert curves.x.tolist() == pytest.approx([k / 8 for k in range(9)])
    # a random order deletes bright pixels at the images' rate: it keeps more probability
    ref_label, ref_mean, ref_area = curves.reference
    assert ref_label == "random order" and ref_area > area + 0.05
    assert ref_mean[0] == pytest.approx(expected[0]) and ref_mean[-1] == pytest.approx(0.5)
    assert "random pixel order (seed 0): mean AUC" in rec.notes[-1]
    # without the reference: no extra forwards, no dashed curve
    bare = ma.assert_faithful(Bright(), images[:, 0].clone(), images=images, target=0,
                              at_most=0.7, steps=8, random_reference=False)  # fmt: skip
    assert bare.samples.curves.reference is None and bare.values == rec.values


def test_sanity_strip_holds_the_maps_after_spread_out_randomisation_steps() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Conv2d(1, 1, 1) for _ in range(6)], nn.Flatten(), nn.Linear(16, 2))
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))

    def grad_x_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        images = images.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(images)[:, 0].sum(), images)
        return (g * images)[:, 0].abs()

    rec = ma.assert_map_changes_when_randomized(net, x, grad_x_input, at_most=1.0 - 1e-9,
                                                 aggregate="mean")  # fmt: skip
    steps = rec.details["steps"]  # 7 parameterised layers, top first
    assert len(steps) == 7 and len(rec.samples.strip) == STRIP_STEPS == 4
    # steps round((k + 1) * 7 / 4) - 1 for k = 0..3 (Python rounds 3.5 to 4): 1, 3, 4, 6
    assert [c for c, _ in rec.samples.strip] == [f"{steps[i]} randomised" for i in (1, 3, 4, 6)]
    # each kept map is the one whose similarity the record holds for that step
    for (caption, kept), i in zip(rec.samples.strip, (1, 3, 4, 6), strict=True):
        sim = ma.randomization_similarity(net, x, grad_x_input).similarity[i]
        rho = ma.measure.similarity.spearman(rec.samples.maps, kept)
        assert rho.tolist() == pytest.approx(sim.tolist(), abs=1e-5), caption


def test_stability_strip_holds_the_first_noisy_maps() -> None:
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(2))

    def squares(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0] ** 2

    rec = ma.assert_stable(nn.Identity(), x, squares, at_most=2.0 - 1e-9, sigma=0.1)
    assert [c for c, _ in rec.samples.strip] == ["noise draw 1", "noise draw 2"]
    assert STRIP_DRAWS == 2
    gen = torch.Generator().manual_seed(0)  # the check's seed: the same draws again
    first = (x + 0.1 * torch.randn(x.shape, generator=gen))[:, 0] ** 2
    top = first.flatten(1).amax(dim=1).view(-1, 1, 1)
    assert torch.allclose(rec.samples.strip[0][1], (first / top).clamp(min=0), atol=1e-6)


def test_localization_says_what_the_region_is_and_marks_the_pointing_peak() -> None:
    maps = torch.zeros(2, 8, 8)
    maps[:, 1, 1] = 1.0
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4]])
    assert ma.assert_pointing_game(maps, boxes, at_least=0.5).samples.peaks is True
    assert ma.assert_mass_in_box(maps, boxes, at_least=0.5).samples.region == "object"
    with pytest.raises(AuditFailure) as info:
        ma.assert_mass_in_box(maps, boxes, at_most=0.1)  # a watermark-style check
    views = info.value.record.samples
    assert views.region == "forbidden region" and views.peaks is False


def test_heat_map_checks_carry_the_explained_and_predicted_classes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))  # fmt: skip
    net.class_names = ["a", "b", "c"]
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 0])
    maps = ma.gradcam(net, x, target=labels, layer="1")
    with pytest.raises(AuditFailure) as info:  # no mass in a 1-pixel box: fails, and draws
        ma.assert_mass_in_box(maps, torch.tensor([[0, 0, 1, 1]] * 4), at_least=0.9)
    views = info.value.record.samples
    probs = net(x).softmax(dim=1)  # independent: the model's own output
    assert views.labels.tolist() == [0, 1, 2, 0]
    assert views.predicted.tolist() == probs.argmax(dim=1).tolist()
    assert views.confidence.tolist() == pytest.approx(probs.max(dim=1).values.tolist(), abs=1e-6)
    assert views.class_names == ("a", "b", "c")
