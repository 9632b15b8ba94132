"""Picking methods by name and adding new ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import InvalidInputError
from modelaudit.explainers import __all__ as explain_all
from modelaudit.explainers import (
    available_methods,
    explain,
    get_method,
    gradcam,
    gradcam_pp,
    register_method,
    unregister_method,
)


@pytest.mark.parametrize("alias", ["Grad-CAM++", "gradcam++", "GradCAMpp", "gradcam_pp"])
def test_names_ignore_case_dashes_and_plus(alias):
    assert get_method(alias) is gradcam_pp


def test_explain_dispatches_with_options(gap_net):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(
        explain("Grad-CAM", gap_net, x, [1, 2], "r2", upsample=False),
        gradcam(gap_net, x, [1, 2], "r2", upsample=False),
    )


def test_unknown_method_suggests_close_names():
    with pytest.raises(InvalidInputError, match="Did you mean 'gradcam'"):
        explain("gradcan", nn.Identity(), torch.zeros(1, 1, 2, 2))


def test_users_can_register_and_remove_a_method(gap_net):
    @register_method("channel_mean")
    def channel_mean(model, inputs, target=None, layer=None, **kw):
        return inputs.mean(1)

    try:
        assert "channel_mean" in available_methods()
        x = torch.rand(2, 3, 4, 4)
        torch.testing.assert_close(explain("Channel-Mean", gap_net, x), x.mean(1))
        with pytest.raises(InvalidInputError, match="already registered"):
            register_method("channel_mean")(channel_mean)
        register_method("channel_mean", replace=True)(lambda *a, **k: torch.zeros(1))
        assert explain("channel_mean", gap_net, x).shape == (1,)
    finally:
        unregister_method("channel_mean")
    assert "channel_mean" not in available_methods()


def test_empty_name_is_rejected():
    with pytest.raises(InvalidInputError, match="letters or digits"):
        register_method("--")


def test_top_level_package_exports_the_methods():
    import modelaudit.explainers as explainers

    assert ma.gradcam is gradcam
    assert ma.explain is explain
    assert ma.Explanation is explainers.Explanation
    for name in set(explain_all) & set(ma.__all__):  # ma's curated share of explainers
        assert getattr(ma, name) is getattr(explainers, name), name
    assert "scorecam" in ma.__all__ and "vit_reshape" in ma.__all__
