"""Sanity check (Adebayo et al., 2018): the heat map must depend on what the model learned.

The layers' weights are replaced by random ones one at a time, from the top (``fc``) down,
keeping the earlier replacements ("cascading"). After each step the new map is compared with
the original one by Spearman rank correlation: 1 means the same ranking of pixels, 0 none.
A method whose map survives randomisation (an edge detector in disguise) explains the image,
not the model, and fails here.
"""

import modelaudit as ma

N = 16  # images; each randomisation step explains all of them once
MAX_SIMILARITY = 0.4  # mean over images of the rank correlation at the most similar step


def test_map_changes_when_weights_are_randomized(audit_model, shapes, object_layer):
    images, labels = shapes.images[:N], shapes.labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=object_layer)

    # Grad-CAM runs again, same layer and targets, on randomised copies of the model.
    ma.assert_map_changes_when_randomized(
        audit_model,
        maps,
        at_most=MAX_SIMILARITY,
        mode="cascading",
        at_step="all",  # each image counts its most similar step...
        aggregate="mean",  # ...and the mean over images must stay below the bound
        seed=0,
    )
