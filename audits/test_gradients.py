"""Gradients seen through hooks are the true gradients, and no hook changes them.

Every explanation method reads gradients at some layer. Two things can make them wrong:
a hook that records them at the wrong place, and a hook left on the model (say, guided
backprop's) that rewrites the gradients flowing through it. Both are checked here against
plain ``torch.autograd.grad``.
"""

import pytest
from torch import nn

import modelaudit as ma


@pytest.fixture(scope="module")
def weighted_layers(audit_model, probe):
    """Every convolution and linear layer that runs in a forward pass."""
    ran = ma.feature_map_shapes(audit_model, probe[:1])  # leaves that ran, in model order
    modules = dict(audit_model.named_modules())
    return [name for name in ran if isinstance(modules[name], nn.Conv2d | nn.Linear)]


def test_hook_gradients_match_autograd(audit_model, probe, weighted_layers):
    # Gradient of the predicted class's logit w.r.t. each layer's output: recorded by
    # modelaudit's backward hooks vs torch.autograd.grad, to within 1e-4 relative.
    ma.assert_hook_grads_match_autograd(audit_model, probe, weighted_layers, rtol=1e-4)


def test_the_models_own_hooks_leave_gradients_alone(audit_model, probe):
    # The model's forward/backward hooks on vs off: input and parameter gradients agree.
    ma.assert_hooks_preserve_gradients(audit_model, probe)


def test_recording_hooks_leave_gradients_alone(audit_model, probe, cam_layer, audit_capture):
    # The same check while modelaudit records the explained layer's output and gradient.
    with audit_capture(audit_model, cam_layer, grads=True) as recorded:
        ma.assert_hooks_preserve_gradients(audit_model, probe)
    assert recorded.grads[cam_layer] is not None, "the recording hook saw the gradient"
