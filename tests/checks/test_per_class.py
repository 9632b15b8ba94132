"""Per-class results: the record's rule applied within each class, and the per_class gate.

Expected per-class values come from an independent numpy group-by; the model case uses a
hand-set network whose Grad-CAM is known exactly (one class reads a corner marker).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.checks.classes import by_class
from modelaudit.checks.record import MAX_LISTED, judge
from modelaudit.errors import AuditFailure, InvalidInputError


def _groupby(values: np.ndarray, labels: np.ndarray, aggregate: object, direction: str) -> dict:
    """Per label: numpy's reading of the rule (worst, mean, or the ceil(q n)-th best)."""
    out = {}
    for label in np.unique(labels):
        v = values[labels == label]
        if aggregate == "all":
            out[int(label)] = v.min() if direction == "higher" else v.max()
        elif aggregate == "mean":
            out[int(label)] = v.mean()
        else:
            best_first = np.sort(v)[::-1] if direction == "higher" else np.sort(v)
            out[int(label)] = best_first[math.ceil(float(aggregate) * len(v) - 1e-9) - 1]
    return out


@pytest.mark.parametrize("aggregate", ["all", "mean", 0.75, 0.3])
@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_per_class_values_equal_a_numpy_groupby(aggregate: object, direction: str) -> None:
    rng = np.random.default_rng(7)
    values = rng.random(60)
    labels = rng.integers(0, 5, 60)
    bound = {"at_least": 0.2} if direction == "higher" else {"at_most": 0.8}
    rec = judge(
        "assert_demo",
        "score",
        values.tolist(),
        aggregate=aggregate,  # type: ignore[arg-type]
        classes=by_class(labels.tolist()),
        **bound,
    )
    expected = _groupby(values, labels, aggregate, direction)
    assert [c.label for c in rec.per_class] == sorted(expected)
    for c in rec.per_class:
        assert c.count == int((labels == c.label).sum())
        assert c.obtained == pytest.approx(expected[c.label], abs=1e-12)
        ok = expected[c.label] >= 0.2 if direction == "higher" else expected[c.label] <= 0.8
        assert c.passed is bool(ok)
    assert rec.classes == tuple(labels.tolist())


@pytest.mark.parametrize("seed", range(6))
def test_without_the_gate_the_verdict_is_unchanged(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.random(30).tolist()
    labels = rng.integers(0, 3, 30).tolist()
    for aggregate in ("all", "mean", 0.5):
        plain = judge("assert_demo", "score", values, at_least=0.4, aggregate=aggregate)
        known = judge(
            "assert_demo",
            "score",
            values,
            at_least=0.4,
            aggregate=aggregate,
            classes=by_class(labels),
        )
        same = ("passed", "values", "obtained", "failing", "rule", "bound", "aggregate")
        assert all(getattr(plain, f) == getattr(known, f) for f in same)
        assert dataclasses.replace(known, classes=(), per_class=()) == plain


def test_the_gate_fails_a_passing_record_and_names_the_failing_classes() -> None:
    values = [0.9] * 5 + [0.31] * 4 + [0.4] * 3 + [0.8] * 4
    labels = [0] * 5 + [1] * 4 + [2] * 3 + [3] * 4
    names = ("circle", "triangle", "square", "cross")
    with pytest.raises(AuditFailure) as info:
        ma.decide(
            "assert_demo",
            "score",
            values,
            at_least=0.5,
            aggregate="mean",
            classes=by_class(labels, names=names, gate=True),
        )
    rec = info.value.record
    assert rec.passed is False and rec.obtained == pytest.approx(sum(values) / len(values))
    assert rec.obtained >= 0.5  # the overall mean holds: only the classes fail
    assert [c.name for c in rec.per_class if not c.passed] == ["triangle", "square"]
    assert "per class: 2 of 4 classes fail: triangle (n=4): 0.31, square (n=3): 0.4" in str(
        info.value
    )
    assert rec.rule.endswith("must hold for the mean over 16 samples, and in every class")


def test_a_passing_gate_says_every_class_held() -> None:
    rec = ma.decide(
        "assert_demo",
        "score",
        [0.9, 0.7, 0.8],
        at_least=0.5,
        classes=by_class([0, 1, 1], names=("a", "b"), gate=True),
    )
    assert rec.passed
    assert rec.message.endswith("; every class held (2 classes, worst b (n=2): 0.7)")


def test_json_carries_the_classes_and_per_class_rows() -> None:
    rec = judge(
        "assert_demo",
        "score",
        [0.9, float("nan"), 0.2],
        at_least=0.5,
        classes=by_class([4, 4, 1], names=("a", "b")),
    )
    out = rec.to_json()
    assert out["classes"] == [4, 4, 1]
    assert out["per_class"] == [
        {"label": 1, "name": "b", "count": 1, "obtained": 0.2, "passed": False},
        {"label": 4, "name": None, "count": 2, "obtained": None, "passed": False},
    ]


def test_failure_text_lists_at_most_ten_classes_worst_first() -> None:
    labels = list(range(14))
    values = [0.05 * k for k in labels]  # class k scores 0.05 k: class 0 is the worst
    with pytest.raises(AuditFailure) as info:
        ma.decide("assert_demo", "score", values, at_least=0.5, classes=by_class(labels))
    line = next(x for x in str(info.value).splitlines() if "per class" in x)
    shown = [part.split(" (n=")[0].strip() for part in line.split(": ", 1)[1].split(", ")]
    assert shown[:MAX_LISTED] == [str(k) for k in range(MAX_LISTED)]
    assert line.endswith("... and 4 more")
    assert "0 (n=1): 0 fails" in line


def test_the_gate_needs_classes_and_one_per_value() -> None:
    with pytest.raises(InvalidInputError, match="per_class=True needs the class of each"):
        ma.assert_mass_in_box(
            torch.ones(2, 4, 4), torch.tensor([[0, 0, 2, 2]] * 2), at_least=0.2, per_class=True
        )
    with pytest.raises(InvalidInputError, match="classes has 3 entries for 2 values"):
        judge("assert_demo", "score", [0.1, 0.2], at_least=0.5, classes=by_class([0, 1, 1]))
    with pytest.raises(InvalidInputError, match="classes must be an"):
        by_class(torch.zeros(2, 2, dtype=torch.long))


class CornerForOneClass(nn.Module):
    """Layer "act" holds channel 0 (the object) and channel 1 (a corner marker) of the
    image; classes 0 and 1 are scored on channel 0, class 2 on channel 1. Grad-CAM's
    weights are the linear weights / (H W), so the map of class 2 is the marker exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(x[:, :2])).flatten(1))


def _corner_data(n: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.zeros(n, 3, 16, 16)
    boxes = torch.tensor([[4 + k % 3, 5, 10 + k % 3, 11] for k in range(n)])
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        images[k, 0, y1:y2, x1:x2] = 1.0  # the object
    images[:, 1, :3, 13:] = 1.0  # the marker, top-right corner
    return images, boxes, torch.arange(n) % 3


def test_a_model_that_fails_on_one_class_names_exactly_that_class() -> None:
    model = CornerForOneClass()
    images, boxes, labels = _corner_data()
    maps = ma.gradcam(model, images, target=labels, layer="act")
    mass = ma.mass_in_box(maps, boxes)
    assert torch.equal(mass, (labels != 2).float())  # exact: the object, or the marker
    rec = ma.assert_mass_in_box(maps, boxes, at_least=0.6, aggregate="mean")  # 8/12 hold
    assert rec.classes == tuple(labels.tolist())  # read from the maps' targets
    assert [(c.label, c.count, c.obtained, c.passed) for c in rec.per_class] == [
        (0, 4, 1.0, True),
        (1, 4, 1.0, True),
        (2, 4, 0.0, False),
    ]
    with pytest.raises(AuditFailure) as info:
        ma.assert_mass_in_box(maps, boxes, at_least=0.6, aggregate="mean", per_class=True)
    assert "per class: 1 of 3 classes fail: 2 (n=4): 0\n" in str(info.value)
    assert [c.label for c in info.value.record.per_class if not c.passed] == [2]


def test_given_classes_win_over_the_maps_targets() -> None:
    images, boxes, labels = _corner_data()
    maps = ma.gradcam(CornerForOneClass(), images, target=labels, layer="act")
    groups = [0] * 6 + [1] * 6  # by image position instead: both groups mix the classes
    rec = ma.assert_pointing_game(
        maps, boxes, at_least=0.5, aggregate="mean", classes=groups, per_class=True
    )
    hits = ma.pointing_game(maps, boxes).numpy()
    assert [c.obtained for c in rec.per_class] == pytest.approx([hits[:6].mean(), hits[6:].mean()])


def test_map_checks_on_explained_models_take_classes(  # stability: a known map change
) -> None:
    images = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    square = lambda m, x: x[:, 0] ** 2  # noqa: E731
    rec = ma.assert_stable(nn.Identity(), images, square, at_most=1.0, classes=[0, 0, 0, 1, 1, 1])
    per = np.array(rec.values)
    assert [c.obtained for c in rec.per_class] == pytest.approx([per[:3].max(), per[3:].max()])
