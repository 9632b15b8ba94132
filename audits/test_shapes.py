"""Feature-map shapes follow the input size, for input sizes Hypothesis chooses.

Laws checked for every drawn batch of images of height H and width W:

- the logits are (N, classes) and the explained layer keeps its channel count;
- transposing the input transposes the feature map (square kernels and strides);
- Grad-CAM returns one map of the input's own size per image.

A model that accepts one input size only (vit-tiny) is skipped. Hypothesis rejects function-scoped
fixtures in ``@given`` tests: ``audit_model`` and the fixtures used here are not.
"""

import pytest
import torch
from hypothesis import given, settings

import modelaudit as ma
from modelaudit import strategies as mst

SIZES = mst.sizes(64, 112)  # side lengths in pixels (AlexNet needs at least 63)


@pytest.fixture(scope="module")
def reference(audit_model, cam_layer, probe):
    """Shapes of the logits and of the explained layer at the reference input."""
    with torch.no_grad():
        logits = audit_model(probe)
        try:  # a model built for one input size (a ViT) has nothing to check here
            audit_model(probe[..., :-8])
        except Exception as exc:
            pytest.skip(f"the model accepts only {tuple(probe.shape[1:])} inputs ({exc})")
    layer = ma.feature_map_shapes(audit_model, probe, layers=cam_layer)[cam_layer]
    return logits.shape, layer


@settings(max_examples=6, deadline=None)
@given(images=mst.images(batch=2, channels=3, height=SIZES, width=SIZES))
def test_feature_maps_follow_the_input_size(audit_model, cam_layer, reference, images):
    images = images.to(next(audit_model.parameters()).device)
    logits_shape, ref = reference
    upright = ma.feature_map_shapes(audit_model, images, layers=cam_layer)[cam_layer]
    flipped = ma.feature_map_shapes(audit_model, images.transpose(2, 3), layers=cam_layer)
    flipped = flipped[cam_layer]

    assert upright[:2] == (2, ref[1]), f"batch and channels of {cam_layer}: {upright}"
    assert flipped[2:] == upright[2:][::-1], f"{cam_layer}: {upright} vs transposed {flipped}"
    with torch.no_grad():
        assert audit_model(images).shape == (2, logits_shape[1])
    maps = ma.gradcam(audit_model, images, layer=cam_layer)
    assert maps.shape == (2, *images.shape[-2:])
