"""Real architectures (random weights, small inputs) against a plain-autograd Grad-CAM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import densenet121, mobilenet_v3_small, resnet18
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from modelaudit.explainers import (
    ablationcam,
    eigencam,
    gradcam,
    hirescam,
    swin_reshape,
    vit_reshape,
)
from modelaudit.explainers.layer_choice import default_layer

TARGETS = [[3, 7], [1, 3]]


def reference_gradcam(model, x, layer, targets, reshape=lambda t: t):
    """Full forward with graph; the hook returns a clone so in-place ops after it are safe."""
    store = {}

    def hook(m, i, o):
        store["a"] = o
        return o.clone()

    handle = layer.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        handle.remove()
    maps = torch.zeros(x.shape[0], len(targets[0]), *x.shape[-2:])
    for n, row in enumerate(targets):
        for k, cls in enumerate(row):
            (g,) = torch.autograd.grad(out[n, cls], store["a"], retain_graph=True)
            a, g = reshape(store["a"].detach())[n], reshape(g)[n]
            raw = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp(min=0)
            up = F.interpolate(raw[None, None], size=x.shape[-2:], mode="bilinear",
                               align_corners=False)[0, 0]  # fmt: skip
            lo, hi = up.min(), up.max()
            maps[n, k] = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)
    return maps


def make_vit() -> VisionTransformer:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=10,
    )  # fmt: skip
    nn.init.normal_(vit.heads.head.weight)  # torchvision initialises the head to zero
    return vit.eval()


def make_swin() -> SwinTransformer:
    torch.manual_seed(0)
    return SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[4, 4],
        num_classes=10,
    ).eval()  # fmt: skip


CNNS = [
    ("resnet18", resnet18, "layer4"),
    ("densenet121", densenet121, "features"),  # followed by F.relu(inplace=True)
    ("mobilenet_v3_small", mobilenet_v3_small, "features"),
]


@pytest.mark.parametrize(("name", "factory", "layer"), CNNS, ids=[c[0] for c in CNNS])
def test_cnn_gradcam_matches_reference(name, factory, layer):
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.rand(2, 3, 64, 64)
    assert default_layer(model, x) == layer
    got = gradcam(model, x, TARGETS)  # the default layer
    assert got.shape == (2, 2, 64, 64)
    want = reference_gradcam(model, x, model.get_submodule(layer), TARGETS)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    peaks = got.flatten(2).amax(-1)
    assert bool(((peaks == 0) | (peaks > 0.99)).all()) and bool((peaks > 0).any())


def test_resnet_inner_layer_and_several_methods():
    torch.manual_seed(1)
    model = resnet18().eval()
    x = torch.rand(2, 3, 64, 64)
    want = reference_gradcam(model, x, model.layer3[1].conv2, TARGETS)
    torch.testing.assert_close(gradcam(model, x, TARGETS, "layer3.1.conv2"), want,
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    maps = hirescam(model, x, [5, 9], ["layer3", "layer4"])  # fused
    assert maps.shape == (2, 64, 64) and not maps.isnan().any()


def test_tiny_vit_gradcam_with_vit_reshape():
    vit = make_vit()
    x = torch.rand(2, 3, 32, 32)
    layer = "encoder.layers.encoder_layer_1.ln_1"
    got = gradcam(vit, x, TARGETS, layer, reshape=vit_reshape)
    assert got.shape == (2, 2, 32, 32)
    want = reference_gradcam(vit, x, vit.get_submodule(layer), TARGETS, reshape=vit_reshape)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    peaks = got.flatten(2).amax(-1)
    assert bool(((peaks == 0) | (peaks > 0.99)).all()) and bool((peaks > 0).any())


def test_tiny_vit_ablationcam_matches_loop():
    # The ablated copies are made at the layer; the residual from below it broadcasts.
    vit = make_vit().double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    layer = vit.encoder.layers.encoder_layer_1.ln_1
    got = ablationcam(vit, x, [4, 2], "encoder.layers.encoder_layer_1.ln_1",
                      reshape=vit_reshape, relu=False, normalize=False, upsample=False)  # fmt: skip
    for n, cls in enumerate([4, 2]):
        xn = x[n : n + 1]
        with torch.no_grad():
            base = vit(xn)[0, cls]
            store = {}
            h = layer.register_forward_hook(lambda m, i, o, s=store: s.__setitem__("a", o))
            vit(xn)
            h.remove()
            a = vit_reshape(store["a"])[0]
            want = torch.zeros(4, 4, dtype=torch.float64)
            for d in range(32):

                def ablate(m, i, o, d=d):
                    o = o.clone()
                    o[:, 1:, d] = 0  # patch tokens only; the class token is kept
                    return o

                h = layer.register_forward_hook(ablate)
                dropped = vit(xn)[0, cls]
                h.remove()
                want += (base - dropped) / base.abs() * a[d]
        torch.testing.assert_close(got[n], want, rtol=1e-7, atol=1e-9)


def test_tiny_swin_gradcam_with_swin_reshape():
    swin = make_swin()
    x = torch.rand(2, 3, 32, 32)
    got = gradcam(swin, x, TARGETS, "features.3", reshape=swin_reshape)
    want = reference_gradcam(swin, x, swin.features[3], TARGETS, reshape=swin_reshape)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # the default layer is the channels-first permute after the last stage's norm
    assert default_layer(swin, x) == "permute"
    assert eigencam(swin, x).shape == (2, 32, 32)
