"""Where the zoo's models look off the object: the shortcut model's watermark corners,
named without telling the audit where any watermark is."""

from __future__ import annotations

import pytest
import torch

import modelaudit as ma
from modelaudit import zoo
from modelaudit.measure import off_object_mass
from modelaudit.measure.offobject import AROUND

CORNERS = [
    "the top-left corner",
    "the top-right corner",
    "the bottom-right corner",
    "the bottom-left corner",
]


@pytest.fixture(scope="module")
def data() -> zoo.ShapesData:
    return zoo.audit_data(64)


def gradcam_maps(name: str, data: zoo.ShapesData) -> torch.Tensor:
    model = zoo.load_model(name)
    return ma.gradcam(model, data.images, target=data.labels, layer="features.13")


@pytest.fixture(scope="module")
def shortcut_maps(data: zoo.ShapesData) -> torch.Tensor:
    return gradcam_maps("shapes-cnn-shortcut", data)


def test_shortcut_model_looks_at_the_corners(
    data: zoo.ShapesData, shortcut_maps: torch.Tensor
) -> None:
    found = off_object_mass(shortcut_maps, data.boxes)
    assert found.off_object > 0.8
    assert found.region == "the corners"  # each class's watermark is in another corner


@pytest.mark.parametrize("label", range(4))
def test_per_class_the_watermark_corner_is_named(
    data: zoo.ShapesData, shortcut_maps: torch.Tensor, label: int
) -> None:
    chosen = data.labels == label
    found = off_object_mass(shortcut_maps[chosen], data.boxes[chosen])
    assert found.region == CORNERS[label % 4]
    assert found.share > 0.5


def test_clean_model_spills_around_the_object(data: zoo.ShapesData) -> None:
    found = off_object_mass(gradcam_maps("shapes-cnn", data), data.boxes)
    assert found.region == AROUND
    assert found.off_object < 0.6


def test_failed_audit_of_the_shortcut_model_names_the_corner(
    data: zoo.ShapesData, shortcut_maps: torch.Tensor
) -> None:
    chosen = data.labels == 2
    with pytest.raises(ma.AuditFailure, match="most of it in the bottom-right corner"):
        ma.assert_mass_in_box(
            shortcut_maps[chosen], data.boxes[chosen], at_least=0.5, aggregate="mean"
        )
