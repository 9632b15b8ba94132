"""Does the model look at the object? Heat maps checked against ground-truth boxes.

Each test explains the *true* class of 64 held-out images and compares the maps with the
object's box. Chance level is what a uniform map scores: the box's share of the image,
about 0.15 on these images (each test computes it and checks its bound is far above it).

A failing test names the failing samples and writes their overlays (image, heat map and
box) into the report folder; open ``audit-report/report.html`` to see them.
"""

import pytest
import torch

import modelaudit as ma

# Bounds, far from chance (~0.15 for the box, ~0.03 around the watermark).
MASS_IN_BOX = 0.5  # mean share of the maps inside the object's box
POINTING_GAME = 0.9  # share of maps whose hottest pixel lies in the box
MASS_ON_WATERMARK = 0.15  # most of any map allowed on the watermark and around it

# Grad-CAM and two relatives that weigh the gradients differently.
METHODS = ["gradcam", "gradcam++", "layercam"]


def _chance(shapes):
    """Mean share of the image covered by the boxes: what a uniform heat map scores."""
    return float(ma.chance_level(shapes.boxes, tuple(shapes.images.shape[-2:])).mean())


@pytest.mark.parametrize("method", METHODS)
def test_attention_lies_inside_the_box(audit_model, shapes, cam_layer, method, audit):
    assert 3 * _chance(shapes) <= MASS_IN_BOX, "the bound must sit well above chance"
    maps = ma.explain(method, audit_model, shapes.images, target=shapes.labels, layer=cam_layer)

    # The maps remember their images, method and layer: the report draws the overlays.
    ma.assert_mass_in_box(
        maps,
        shapes.boxes,
        at_least=MASS_IN_BOX,
        aggregate="mean",  # the mean must reach the bound; samples below it are listed
    )
    # Release gate: the mean must not fall below the shipped baseline (audits/baseline.json).
    audit.metric("mass_in_box", ma.mass_in_box(maps, shapes.boxes).mean())


def test_hottest_pixel_lies_inside_the_box(audit_model, shapes, cam_layer, audit):
    assert 3 * _chance(shapes) <= POINTING_GAME, "the bound must sit well above chance"
    maps = ma.gradcam(audit_model, shapes.images, target=shapes.labels, layer=cam_layer)

    # aggregate="mean": the hit rate over all images must reach the bound.
    ma.assert_pointing_game(maps, shapes.boxes, at_least=POINTING_GAME, aggregate="mean")
    audit.metric("pointing_game", ma.pointing_game(maps, shapes.boxes).mean())


def test_no_attention_on_the_watermark(audit_model, shapes, cam_layer):
    # Every image carries its class's watermark in a corner: the Clever-Hans shortcut.
    # Grad-CAM works on the layer's 4 x 4 pixel cells, so look one cell around it.
    size = tuple(shapes.images.shape[-2:])
    corner = (shapes.watermark_boxes + torch.tensor([-4, -4, 4, 4])).clamp(0, min(size))
    chance = float(ma.chance_level(corner, size).mean())
    assert chance < MASS_ON_WATERMARK / 4, "a map at chance level must pass easily"
    maps = ma.gradcam(audit_model, shapes.images, target=shapes.labels, layer=cam_layer)

    # at_most=: "the model does not look here". Overlays outline the watermark's region.
    ma.assert_mass_in_box(maps, corner, at_most=MASS_ON_WATERMARK)
