"""Faithfulness: do the pixels the map ranks highest really drive the prediction?

Deletion (RISE, Petsiuk et al., 2018): replace pixels, hottest first, by a blurred copy of
the image and track the probability of the explained class; the area under that curve is
low when the map found the pixels that matter. Insertion: start from the blurred image and
restore pixels hottest first; the area is high when they matter. Chance is a random ranking of the pixels: each
test computes it on the same images and requires the map to beat it by a clear margin.

Faithful is not the same as right: a model that reads a watermark has faithful maps of the
watermark. test_localization checks *where* the model looks.
"""

import torch

import modelaudit as ma

N = 32  # images
STEPS = 16  # pixels change in 16 equal steps
MAX_DELETION = 0.45  # mean deletion AUC of Grad-CAM maps (chance: about 0.65)
MIN_INSERTION = 0.8  # mean insertion AUC of Grad-CAM maps (chance: about 0.66)
MARGIN = 0.1  # how much better than a random ranking of pixels (chance) the map must be


def _random_maps(like):
    return torch.rand(like.shape, generator=torch.Generator().manual_seed(0)).to(like)


def test_deleting_hot_pixels_destroys_the_prediction(audit_model, shapes, object_layer, audit):
    images, labels = shapes.images[:N], shapes.labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=object_layer)
    chance = ma.deletion_auc(
        audit_model, images, _random_maps(maps), target=labels, fill="blur", steps=STEPS
    )
    assert float(chance.mean()) - MARGIN >= MAX_DELETION, "the bound must beat chance"

    # The maps carry their images and targets (the true labels).
    record = ma.assert_faithful(
        audit_model,
        maps,
        metric="deletion",
        fill="blur",
        at_most=MAX_DELETION,
        aggregate="mean",
        steps=STEPS,
    )
    # Release gate, per image: a drop fails when it is beyond the tolerance *and* significant.
    audit.metric("deletion_auc", record.values, maps=maps, direction="lower", tolerance=0.1)


def test_inserting_hot_pixels_restores_the_prediction(audit_model, shapes, object_layer, audit):
    images, labels = shapes.images[:N], shapes.labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=object_layer)
    chance = ma.insertion_auc(
        audit_model, images, _random_maps(maps), target=labels, fill="blur", steps=STEPS
    )
    assert float(chance.mean()) + MARGIN <= MIN_INSERTION, "the bound must beat chance"

    # The maps carry their images and targets (the true labels).
    record = ma.assert_faithful(
        audit_model,
        maps,
        metric="insertion",
        fill="blur",
        at_least=MIN_INSERTION,
        aggregate="mean",
        steps=STEPS,
    )
    audit.metric("insertion_auc", record.values, maps=maps, tolerance=0.1)
