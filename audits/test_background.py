"""Does the model use the object or the background? Counterfactual images, no heat maps.

From each image's object mask (Xiao et al. 2020, "Noise or Signal"):

- Only-BG: the object removed (filled with the background's mean colour);
- Only-FG: the background neutralised, the object kept;
- Mixed-Rand: the object pasted on the background of an image of another class.

A model that reads the object classifies Only-BG images at chance and keeps its answer on
Mixed-Rand; a model that reads the background (a watermark, a tint, a texture) does the
opposite. This checks what the model *uses*, free of any heat map's resolution. The margins
(``ma.checks.background``) come from the calibration study (README, "How the bounds were
chosen").
"""

import modelaudit as ma


def test_the_background_alone_does_not_give_the_answer(audit_model, shapes):
    # Only-BG accuracy must stay near chance, Mixed-Rand accuracy near the original's; the
    # message lists all five accuracies and the BG-gap (Mixed-Same minus Mixed-Rand).
    ma.assert_background_reliance(audit_model, shapes.images, shapes.labels, masks=shapes.masks)
