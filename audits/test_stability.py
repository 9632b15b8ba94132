"""Stability: a little noise on the image must not move the heat map much.

Noise of standard deviation 0.02 (2% of the pixel range, invisible to a person) is added
four times; the change of a map is 1 - Spearman rank correlation with the original map
(0: same ranking of pixels; 1: unrelated). Each image counts its largest change.
"""

import modelaudit as ma

N = 32  # images
MAX_CHANGE = 0.2  # largest change over the noise draws, for every image


def test_map_is_stable_under_small_noise(audit_model, shapes, object_layer, audit):
    images, labels = shapes.images[:N], shapes.labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=object_layer)

    # Grad-CAM runs again, same layer and targets, on noisy copies of the images.
    record = ma.assert_stable(
        audit_model, maps, perturbation="noise", sigma=0.02, repeats=4, at_most=MAX_CHANGE
    )
    # Per image: the baseline gate pairs each image with its own baseline value.
    audit.metric("map_change_noise", record.values, maps=maps, direction="lower", tolerance=0.5)
