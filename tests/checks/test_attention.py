"""assert_looks_at_object: the calibrated gate, its shuffled-box condition and its messages."""

from __future__ import annotations

import pytest
import torch

import modelaudit as ma
from modelaudit import zoo
from modelaudit.checks.attention import LOOKS_AT_OBJECT
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.explainers.layer_choice import CoarseLayerWarning
from modelaudit.measure import ideal_maps

SIZE = (32, 32)
BOXES = torch.tensor([[2, 2, 12, 12], [18, 4, 30, 14], [4, 18, 14, 30], [16, 16, 28, 28]] * 3)


def test_ideal_maps_score_one_and_pass():
    maps = ideal_maps(BOXES, SIZE, (8, 8))
    record = ma.assert_looks_at_object(maps, BOXES, grid=(8, 8))
    assert record.obtained == pytest.approx(1.0, abs=1e-5)
    assert record.details["grid"] == [8, 8]
    assert record.details["null_p"] < 0.01
    assert record.chance == 0.0  # calibrated units: a uniform map scores 0


def test_uniform_maps_score_zero_and_fail():
    with pytest.raises(AuditFailure) as failure:
        ma.assert_looks_at_object(torch.ones(12, *SIZE), BOXES, grid=(8, 8), alpha=None)
    assert failure.value.record.obtained == pytest.approx(0.0, abs=1e-6)


def test_a_corner_reader_fails_and_the_message_names_the_corner():
    maps = torch.zeros(12, *SIZE)
    maps[:, 28:, :4] = 1.0  # every map in the bottom-left corner
    with pytest.raises(AuditFailure) as failure:
        ma.assert_looks_at_object(maps, BOXES, grid=(8, 8))
    text = str(failure.value)
    assert f"calibrated_mass >= {LOOKS_AT_OBJECT}" in text
    assert "bottom-left corner" in text
    assert failure.value.record.obtained < 0  # it avoids the objects
    assert failure.value.record.overview is not None


def test_a_fixed_place_reader_fails_the_shuffled_box_test_even_above_the_bound():
    # Every object sits around the centre; the maps are one fixed central blob. The mass in
    # each box is high, but no higher than in the other images' boxes: not object-driven.
    boxes = torch.tensor([[10, 10, 22, 22], [11, 9, 23, 21], [9, 11, 21, 23], [10, 11, 22, 23]] * 3)
    blob = torch.zeros(12, *SIZE)
    blob[:, 12:20, 12:20] = 1.0
    ok = ma.assert_looks_at_object(blob, boxes, grid=(32, 32), alpha=None)  # bound alone: passes
    assert ok.obtained > LOOKS_AT_OBJECT
    with pytest.raises(AuditFailure) as failure:
        ma.assert_looks_at_object(blob, boxes, grid=(32, 32))
    assert "do NOT beat the other images' boxes" in str(failure.value)
    assert "own boxes must beat shuffled boxes" in failure.value.record.rule


def test_the_grid_comes_from_the_explanation_and_changes_the_score():
    data = zoo.audit_data(16)
    model = zoo.load_model("shapes-cnn")
    maps = ma.gradcam(model, data.images, target=data.labels, layer="features.13")
    assert maps.grid == (16, 16)
    record = ma.assert_looks_at_object(maps, data.boxes)
    full = ma.assert_looks_at_object(
        maps, data.boxes, grid=(64, 64), aggregate="mean", at_least=0.1
    )
    # the ceiling at 16x16 is below 1, so the same maps score higher against it
    assert record.details["ceiling_mean"] < full.details["ceiling_mean"] == 1.0
    assert record.obtained > full.obtained
    assert record.details["method"] == "gradcam" and record.details["layer"] == "features.13"


def test_a_layer_coarser_than_the_objects_warns_and_says_so():
    boxes = torch.tensor([[2, 2, 8, 8], [20, 20, 26, 26]] * 4)
    maps = ideal_maps(boxes, SIZE, (2, 2))
    with pytest.warns(CoarseLayerWarning, match="larger than the median object box"):
        record = ma.assert_looks_at_object(maps, boxes, grid=(2, 2), alpha=None)
    assert any("warning: the explained layer's cells (16x16 px)" in n for n in record.notes)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"alpha": 1.5}, "alpha must be in"),
        ({"at_least": float("nan")}, "at_least"),
        ({"grid": (64, 64)}, "grid"),
    ],
)
def test_bad_arguments(kwargs, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        ma.assert_looks_at_object(torch.ones(12, *SIZE), BOXES, **kwargs)


def test_too_few_samples_for_the_test_and_a_box_filling_the_image():
    with pytest.raises(InvalidInputError, match="needs at least 7 samples"):
        ma.assert_looks_at_object(torch.ones(4, *SIZE), BOXES[:4])
    whole = torch.tensor([[0, 0, 32, 32]] * 8)
    with pytest.raises(InvalidInputError, match="whole image"):
        ma.assert_looks_at_object(torch.ones(8, *SIZE), whole)


def test_the_absolute_checks_warn_about_a_coarse_layer_too():
    from modelaudit.explainers.explanation import Explanation

    boxes = torch.tensor([[2, 2, 8, 8], [20, 20, 26, 26]])
    maps = Explanation(
        ideal_maps(boxes, SIZE, (2, 2)),
        method="layercam",
        layer="deep",
        targets=None,
        inputs=torch.zeros(2, 3, *SIZE),
        grid=(2, 2),
    )
    with pytest.warns(CoarseLayerWarning):
        record = ma.assert_mass_in_box(maps, boxes, at_least=0.01)
    assert any(
        n.startswith("warning: the explained layer's cells (16x16 px)") for n in record.notes
    )
    fine = Explanation(maps, method="layercam", layer="x", targets=None,
                       inputs=torch.zeros(2, 3, *SIZE), grid=(32, 32))  # fmt: skip
    assert not ma.assert_mass_in_box(fine, boxes, at_least=0.01).notes
