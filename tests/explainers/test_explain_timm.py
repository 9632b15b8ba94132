"""timm models, random init: default layer, choose_layer, channels-last and token layouts.

Small models (5 classes, 64 px inputs, shallow ViT/Swin/ConvNeXt through timm's kwargs),
nothing downloaded. Expected layers and grids come from each model's strides (32 for the
CNNs and Swin, 16 for the ViT patches); the reshape is checked against a Grad-CAM computed
by hand with a hook, ``torch.autograd.grad`` and a manual permute or token slice.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import modelaudit as ma
from modelaudit.explainers.gradient_cams import hirescam
from modelaudit.explainers.layer_choice import feature_grids
from modelaudit.explainers.reshape import infer_layout

SIZE = 64

# name -> (create_model kwargs, default layer, the stride-8 layer (or ViT: its only grid))
MODELS = {
    "resnet50": ({}, "layer4", "layer2"),
    "convnext_tiny": ({"depths": (1, 1, 1, 1)}, "norm_pre", "stages.1"),
    "efficientnet_b0": ({}, "bn2", "blocks.2"),
    "regnety_002": ({}, "final_conv", "s2"),
    "mobilenetv3_small_100": ({}, "blocks", "blocks.1.1.se"),
    "deit_tiny_patch16_224": ({"img_size": SIZE, "depth": 2}, "blocks.1.norm1", "blocks.1.norm1"),
    "swin_tiny_patch4_window7_224": (
        {"img_size": SIZE, "window_size": 4, "depths": (1, 1, 1, 1)},
        "norm",
        "layers.1",
    ),
}

IMAGES = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
TARGET = [0, 3]


def _create(name: str, **kwargs: object) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {name: _create(name, **kwargs) for name, (kwargs, _, _) in MODELS.items()}


def _check_normalised(maps: torch.Tensor) -> None:
    assert maps.shape == (2, SIZE, SIZE)
    assert bool(maps.isfinite().all()) and float(maps.min()) >= 0.0
    peaks = maps.amax(dim=(1, 2))
    assert all(p in (0.0, 1.0) for p in peaks.tolist())  # min-max scaled, or all zero
    assert float(peaks.max()) == 1.0


@pytest.mark.parametrize("name", list(MODELS))
def test_default_layer_without_user_code(models, name):
    maps = ma.gradcam(models[name], IMAGES, target=TARGET)
    _, default, _ = MODELS[name]
    assert maps.layer == default
    # the last feature map: stride 32 (2x2 at 64 px), the ViT's 16 px patches (4x4)
    assert maps.grid == ((4, 4) if name.startswith("deit") else (2, 2))
    _check_normalised(maps)


@pytest.mark.parametrize("name", list(MODELS))
def test_choose_layer_follows_the_strides(models, name):
    # median box 24 px; at least 2 cells a side needs cells <= 12 px: stride 8 (8x8 cells of
    # 8 px: 3 cells) fits, stride 16 (1.5 cells) does not. The ViT has only 16 px patches:
    # nothing fits, so its finest grid, 4x4
    boxes = torch.tensor([[4, 4, 28, 28], [30, 36, 54, 60]])
    choice = ma.choose_layer(models[name], IMAGES, boxes)
    vit = name.startswith("deit")
    assert choice.grid == ((4, 4) if vit else (8, 8))
    assert choice.cell == ((16.0, 16.0) if vit else (8.0, 8.0))
    assert choice.name == MODELS[name][2]
    assert choice.layout == {"deit": "tokens", "swin": "nhwc"}.get(name[:4], "nchw")
    _check_normalised(ma.gradcam(models[name], IMAGES, target=TARGET, layer=choice.name))


def _hand_gradcam(model: nn.Module, layer: nn.Module, to_grid) -> torch.Tensor:
    """Grad-CAM (no ReLU, no upsampling, no normalisation) with a hook and autograd."""
    kept: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _a, out: kept.append(out))
    try:
        logits = model(IMAGES)
    finally:
        handle.remove()
    score = logits[torch.arange(2), torch.tensor(TARGET)].sum()
    (grad,) = torch.autograd.grad(score, kept[0])
    acts, grads = to_grid(kept[0].detach()), to_grid(grad)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return (weights * acts).sum(dim=1)


def test_a_channels_last_layer_is_permuted_like_by_hand(models):
    swin = models["swin_tiny_patch4_window7_224"]
    stage = swin.get_submodule("layers.1")
    want = _hand_gradcam(swin, stage, lambda t: t.permute(0, 3, 1, 2))
    got = ma.gradcam(swin, IMAGES, TARGET, "layers.1", relu=False, normalize=False, upsample=False)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    out = torch.rand(2, 8, 8, 192)  # the stage's (N, H, W, C) output at 64 px
    layout = infer_layout(out.shape, (SIZE, SIZE))
    assert (layout.kind, layout.grid) == ("nhwc", (8, 8))
    assert torch.equal(layout.reshape()(out), out.permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("name", "kwargs", "prefix"),
    [
        ("deit_tiny_distilled_patch16_224", {}, 2),  # class + distillation token
        ("vit_tiny_patch16_224", {"reg_tokens": 4, "no_embed_class": True}, 5),  # + 4 registers
    ],
)
def test_token_layers_drop_exactly_the_prefix_tokens(name, kwargs, prefix):
    vit = _create(name, img_size=SIZE, depth=2, **kwargs)
    assert vit.num_prefix_tokens == prefix
    tokens = 4 * 4  # 64 px / 16 px patches
    # from the shape alone (without the model's attribute) the same prefix is found
    layout = infer_layout((2, prefix + tokens, 192), (SIZE, SIZE))
    assert (layout.kind, layout.grid, layout.prefix) == ("tokens", (4, 4), prefix)

    def to_grid(t: torch.Tensor) -> torch.Tensor:
        return t[:, prefix:].reshape(t.shape[0], 4, 4, t.shape[-1]).permute(0, 3, 1, 2)

    norm1 = vit.get_submodule("blocks.1.norm1")
    want = _hand_gradcam(vit, norm1, to_grid)
    got = ma.gradcam(vit, IMAGES, TARGET, relu=False, normalize=False, upsample=False)
    assert got.layer == "blocks.1.norm1"  # after the last block only the class token counts
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


class RegionScore(nn.Module):
    """A score that reads only cells ``rows`` x ``cols`` of a feature map: sum of squares."""

    def __init__(self, features: nn.Module, rows: slice, cols: slice, layout: str) -> None:
        super().__init__()
        self.features, self.rows, self.cols, self.layout = features, rows, cols, layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.layout == "tokens":  # (N, 1 + 16, D): the class token, then a 4x4 grid
            f = f[:, 1:].unflatten(1, (4, 4))
        region = f[:, self.rows, self.cols]  # (N, h, w, C) in both layouts
        return (region**2).sum(dim=(1, 2, 3))[:, None]


@pytest.mark.parametrize("kind", ["nhwc", "tokens"])
def test_a_score_read_from_one_region_is_mapped_there(models, kind):
    # HiResCAM is sum_c dS/dA * A per cell: 2 A^2 inside the region, exactly 0 outside; a
    # wrong permute or a token off by one would move or scramble the region
    if kind == "nhwc":
        swin = models["swin_tiny_patch4_window7_224"]
        net = nn.Sequential(swin.patch_embed, swin.layers[0], swin.layers[1])
        model, layer, grid = RegionScore(net, slice(2, 4), slice(5, 7), kind), "features.2", 8
    else:
        vit = models["deit_tiny_patch16_224"]
        model = RegionScore(vit.forward_features, slice(1, 2), slice(2, 4), kind)
        model.vit = vit  # register the ViT's modules under "vit."
        layer, grid = "vit.norm", 4
    maps = hirescam(model, IMAGES, 0, layer, upsample=False, normalize=False)
    inside = torch.zeros(grid, grid, dtype=torch.bool)
    inside[model.rows, model.cols] = True
    assert maps.shape == (2, grid, grid)
    assert bool((maps[:, ~inside] == 0).all()) and bool((maps[:, inside] > 0).all())
    up = hirescam(model, IMAGES, 0, layer)  # upsampled to the image: the peak is in the region
    cell = SIZE // grid
    peak_rows = up.flatten(1).argmax(1) // SIZE // cell
    peak_cols = up.flatten(1).argmax(1) % SIZE // cell
    assert all(bool(inside[r, c]) for r, c in zip(peak_rows.tolist(), peak_cols.tolist()))


def test_upsampling_matches_the_documented_convention(models):
    swin = models["swin_tiny_patch4_window7_224"]
    raw = ma.gradcam(swin, IMAGES, TARGET, "layers.1", normalize=False, upsample=False)
    up = ma.gradcam(swin, IMAGES, TARGET, "layers.1", normalize=False)
    want = F.interpolate(raw[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, want[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "size", "kwargs", "want"),
    [
        ((2, 96, 16, 16), (64, 64), {}, ("nchw", (16, 16), 0)),
        ((2, 16, 16, 96), (64, 64), {}, ("nhwc", (16, 16), 0)),  # ConvNeXt block internals
        ((2, 8, 8, 8), (64, 64), {}, ("nchw", (8, 8), 0)),  # ambiguous: channels first ...
        ((2, 8, 8, 8), (64, 64), {"module": nn.Linear(8, 8)}, ("nhwc", (8, 8), 0)),  # ... or
        ((2, 3, 17, 64), (64, 64), {}, None),  # a ViT's per-head queries: no grid either way
        ((2, 17, 192), (64, 64), {}, ("tokens", (4, 4), 1)),
        ((2, 21, 192), (64, 64), {}, ("tokens", (4, 4), 5)),  # not 1 + 4 x 5: one patch size
        ((2, 21, 192), (64, 64), {"prefix_tokens": 5}, ("tokens", (4, 4), 5)),
        ((2, 1 + 4 * 6, 32), (64, 96), {}, ("tokens", (4, 6), 1)),  # a non-square input
        ((2, 3, 192), (64, 64), {}, None),  # too few tokens for a grid
        ((2, 192), (64, 64), {}, None),
    ],
)
def test_layouts_are_read_from_shapes(shape, size, kwargs, want):
    layout = infer_layout(shape, size, **kwargs)
    assert (None if layout is None else (layout.kind, layout.grid, layout.prefix)) == want


def test_attention_matrices_and_window_outputs_are_no_feature_maps(models):
    # at 64 px Swin's last stage is one 2x2 window: its attention (N, heads, 4, 4) looks like
    # a 4x4 map; earlier stages' window attention has one row per window, not per image
    names = [n for n, _ in feature_grids(models["swin_tiny_patch4_window7_224"], IMAGES)]
    assert not any(n.endswith(("softmax", "attn_drop")) for n in names)
    assert "layers.0.blocks.0.attn.qkv" not in names  # (16 windows x 1 image, 16, 288)
    assert {"layers.0", "layers.1", "layers.2", "layers.3", "norm"} <= set(names)
