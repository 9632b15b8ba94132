"""Auditing leaves the model exactly as it was: no hooks, same weights, mode and .grad.

An audit that leaves a hook behind changes every later forward or backward pass of the
model (in the next test, or in production code sharing the model object).
"""

import pytest
import torch

import modelaudit as ma


def test_explaining_leaves_no_trace(audit_model, probe, cam_layer, reshape):
    hooks_before = ma.hooks_by_module(audit_model)
    weights_before = {k: v.clone() for k, v in audit_model.state_dict().items()}

    for method in ("gradcam", "gradcam++", "layercam"):
        ma.explain(method, audit_model, probe, layer=cam_layer, reshape=reshape)
    # An error inside a capture block still removes its hooks.
    with pytest.raises(RuntimeError, match="boom"), ma.capture(audit_model, cam_layer, grads=True):
        raise RuntimeError("boom")

    ma.assert_no_hooks_left(audit_model, baseline=hooks_before)
    assert not audit_model.training, "eval mode was restored"
    assert all(p.grad is None for p in audit_model.parameters()), "no .grad was written"
    after = audit_model.state_dict()
    assert all(torch.equal(weights_before[k], after[k]) for k in weights_before)
