"""Does the model look at the object? Heat maps checked against ground-truth boxes.

Each test explains the *true* class of 64 held-out images and compares the maps with the
object's box, in calibrated units that mean the same on any data (no bound to choose):

- 0 is what a uniform map scores (the box's share of the image, its *chance level*),
- 1 is what an ideal map scores at the explained layer's resolution (the box itself, pooled
  to the layer's grid and upsampled the way the explainers do),

and each map must score higher on its own box than on the other images' boxes. The bounds
(``modelaudit.checks.attention.LOOKS_AT_OBJECT`` and the pointing game's 0.55) were chosen
on the tuning split of the calibration study and held at 100% sensitivity and specificity
on two splits not used to choose them (README, "How the bounds were chosen"): LayerCAM at
the layer ``ma.choose_layer`` picks. Grad-CAM missed one clean architecture there (its
channel-mean weights blur at the shallower layers small objects need), so it is not a gate
here; it still drives the sanity, faithfulness and stability audits.

A failing test says where the model looks instead and writes the mean heat map and the
failing samples' overlays into the report folder: open ``audit-report/report.html``.
"""

import torch

import modelaudit as ma

POINTING_GAME = 0.55  # hit rate of the maps' maxima (the study's tuned bound, LayerCAM)


def test_attention_lies_on_the_object(audit_model, shapes, object_layer, audit):
    maps = ma.layercam(audit_model, shapes.images, target=shapes.labels, layer=object_layer)

    # The maps remember their images, method, layer and grid: the calibration and the
    # report's pictures need nothing else.
    ma.assert_looks_at_object(maps, shapes.boxes)

    # Release gate on the raw mass, image by image, against audits/baseline.json.
    audit.metric("mass_in_box", ma.mass_in_box(maps, shapes.boxes), maps=maps)


def test_hottest_pixel_lies_inside_the_box(audit_model, shapes, object_layer, audit):
    maps = ma.layercam(audit_model, shapes.images, target=shapes.labels, layer=object_layer)

    # The hit rate of the maps' maxima, far above its chance level (the boxes' share).
    record = ma.assert_pointing_game(maps, shapes.boxes, at_least=POINTING_GAME, aggregate="mean")
    assert record.chance is not None and record.chance < 0.3, "the bound must beat chance"
    audit.metric("pointing_game", ma.pointing_game(maps, shapes.boxes), maps=maps)


def test_no_attention_on_the_watermark(audit_model, shapes, object_layer):
    # A custom assertion for a cue we know: every image carries its class's watermark in
    # a corner (the Clever-Hans shortcut). The general audits above need not be told where
    # a cue is; this one shows how to check a known region with at_most=.
    size = tuple(shapes.images.shape[-2:])
    corner = (shapes.watermark_boxes + torch.tensor([-4, -4, 4, 4])).clamp(0, min(size))
    maps = ma.gradcam(audit_model, shapes.images, target=shapes.labels, layer=object_layer)
    ma.assert_mass_in_box(maps, corner, at_most=0.15)
