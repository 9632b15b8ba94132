"""Every method against a plain-autograd reference written here, independently.

The reference runs the full model with a graph, one sample at a time, takes the layer's
output from a forward hook and its gradient with ``torch.autograd.grad``, and evaluates
each paper's formula naively with Python loops. The library's raw maps (no ReLU, no
normalisation, layer resolution) must match to float64 precision.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modelaudit.explainers import (
    ablationcam,
    cam,
    eigencam,
    eigengradcam,
    gradcam,
    gradcam_elementwise,
    gradcam_pp,
    guided_backprop,
    guided_gradcam,
    hirescam,
    input_gradients,
    iscam,
    layercam,
    scorecam,
    smooth_gradcam_pp,
    sscam,
    xgradcam,
)

RAW = {"relu": False, "normalize": False, "upsample": False}
TARGETS = [0, 2, 1]


@pytest.fixture
def batch() -> torch.Tensor:
    torch.manual_seed(5)
    return torch.rand(3, 3, 8, 8, dtype=torch.float64)


# ----------------------------------------------------------------------------- reference


def act_and_grad(model, x, layer, cls):
    """(C, h, w) activation and d out[cls] / d activation for ONE sample x (1, C, H, W)."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(out[0, cls], store["a"])
    return store["a"][0].detach(), g[0].detach()


def score_of(model, x, cls):
    with torch.no_grad():
        return float(model(x)[0, cls])


def minmax(m):
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)


def loop_gradcam(a, g):
    c, h, w = a.shape
    out = torch.zeros(h, w, dtype=a.dtype)
    for k in range(c):
        wk = sum(float(g[k, i, j]) for i in range(h) for j in range(w)) / (h * w)
        out += wk * a[k]
    return out


def loop_gradcam_pp(a, g):
    c, h, w = a.shape
    out = torch.zeros(h, w, dtype=a.dtype)
    for k in range(c):
        total = float(a[k].sum())
        wk = 0.0
        for i in range(h):
            for j in range(w):
                d1 = float(g[k, i, j])
                den = 2 * d1**2 + total * d1**3
                alpha = d1**2 / den if den != 0 else 0.0
                wk += alpha * max(d1, 0.0)
        out += wk * a[k]
    return out


def loop_xgradcam(a, g):
    c, h, w = a.shape
    out = torch.zeros(h, w, dtype=a.dtype)
    for k in range(c):
        total = float(a[k].sum())
        wk = 0.0
        if total != 0:
            wk = sum(float(g[k, i, j] * a[k, i, j]) for i in range(h) for j in range(w)) / total
        out += wk * a[k]
    return out


def loop_pixelwise(a, g, rule):
    c, h, w = a.shape
    out = torch.zeros(h, w, dtype=a.dtype)
    for i in range(h):
        for j in range(w):
            out[i, j] = sum(rule(float(g[k, i, j]), float(a[k, i, j])) for k in range(c))
    return out


def numpy_projection(values, center=True):
    """First-principal-component projection with numpy, sign by correlation with the sum."""
    c, h, w = values.shape
    x = values.reshape(c, h * w).T.numpy().copy()
    if center:
        x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[0]
    ref = values.sum(0).reshape(-1).numpy()
    corr = float(((proj - proj.mean()) * (ref - ref.mean())).sum())
    if corr < 0:
        proj = -proj
    return torch.from_numpy(proj.reshape(h, w))


def upsampled_mask(a_k, size):
    m = F.interpolate(a_k[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return minmax(m)


def loop_scorecam(model, x, a, cls, scales=(1.0,), channels=None):
    channels = range(a.shape[0]) if channels is None else channels
    scores = {}
    for k in channels:
        mask = upsampled_mask(a[k], x.shape[-2:])
        scores[k] = sum(score_of(model, x * s * mask, cls) for s in scales) / len(scales)
    top = max(scores.values())
    exps = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exps.values())
    return sum((e / total) * a[k] for k, e in exps.items())


def loop_ablationcam(model, x, layer, a, cls):
    base = score_of(model, x, cls)
    out = torch.zeros_like(a[0])
    for k in range(a.shape[0]):

        def ablate(m, i, o, k=k):
            o = o.clone()
            o[:, k] = 0
            return o

        handle = layer.register_forward_hook(ablate)
        try:
            dropped = score_of(model, x, cls)
        finally:
            handle.remove()
        out += (base - dropped) / abs(base) * a[k]
    return out


class _GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class _GuidedReLU(nn.Module):
    def forward(self, x):
        return _GuidedReLUFn.apply(x)


def guided_copy(model):
    """A deep copy of ``model`` whose ReLU modules are replaced by guided ReLUs."""
    twin = copy.deepcopy(model)
    for name, module in list(twin.named_modules()):
        if isinstance(module, nn.ReLU):
            parent = twin.get_submodule(name.rpartition(".")[0]) if "." in name else twin
            setattr(parent, name.rpartition(".")[2], _GuidedReLU())
    return twin


def input_grad(model, x, cls):
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(leaf)[0, cls], leaf)
    return g[0]


# ------------------------------------------------------------------------------- tests

GRADIENT_METHODS = [
    (gradcam, loop_gradcam),
    (gradcam_pp, loop_gradcam_pp),
    (xgradcam, loop_xgradcam),
    (hirescam, lambda a, g: loop_pixelwise(a, g, lambda gv, av: gv * av)),
    (gradcam_elementwise, lambda a, g: loop_pixelwise(a, g, lambda gv, av: max(gv * av, 0.0))),
    (layercam, lambda a, g: loop_pixelwise(a, g, lambda gv, av: max(gv, 0.0) * av)),
    (
        eigengradcam,
        lambda a, g: numpy_projection(g * a),
    ),
]


@pytest.mark.parametrize(("method", "reference"), GRADIENT_METHODS, ids=lambda v: v.__name__)
def test_gradient_methods_match_loops(small_net, batch, method, reference):
    got = method(small_net, batch, TARGETS, "r2", **RAW)
    assert got.shape == (3, 4, 4)
    for n, cls in enumerate(TARGETS):
        a, g = act_and_grad(small_net, batch[n : n + 1], small_net.r2, cls)
        torch.testing.assert_close(got[n], reference(a, g), rtol=1e-9, atol=1e-12)


def test_gradcam_pp_differs_from_gradcam_here(small_net, batch):
    # Guards the reference test above against a head where all formulas coincide.
    a = gradcam(small_net, batch, TARGETS, "r2")
    b = gradcam_pp(small_net, batch, TARGETS, "r2")
    assert (a - b).abs().max() > 0.05


@pytest.mark.parametrize("center", [True, False])
def test_eigencam_matches_numpy_svd(small_net, batch, center):
    got = eigencam(small_net, batch, TARGETS, "r2", center=center, **RAW)
    for n, cls in enumerate(TARGETS):
        a, _ = act_and_grad(small_net, batch[n : n + 1], small_net.r2, cls)
        torch.testing.assert_close(got[n], numpy_projection(a, center), rtol=1e-8, atol=1e-10)


def test_scorecam_matches_loop(small_net, batch):
    got = scorecam(small_net, batch, TARGETS, "r2", **RAW)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        torch.testing.assert_close(
            got[n], loop_scorecam(small_net, x, a, cls), rtol=1e-6, atol=1e-9
        )


@pytest.mark.parametrize("top_k", [1, 2])
def test_fast_scorecam_matches_loop_over_the_highest_variance_channels(small_net, batch, top_k):
    got = scorecam(small_net, batch, TARGETS, "r2", top_k=top_k, **RAW)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        variance = a.reshape(a.shape[0], -1).numpy().var(axis=1, ddof=1)
        chosen = [int(k) for k in np.argsort(-variance)[:top_k]]
        want = loop_scorecam(small_net, x, a, cls, channels=chosen)
        torch.testing.assert_close(got[n], want, rtol=1e-6, atol=1e-9)


def test_fast_scorecam_with_every_channel_is_exact(small_net, batch):
    exact = scorecam(small_net, batch, TARGETS, "r2", **RAW)
    every = scorecam(small_net, batch, TARGETS, "r2", top_k=10_000, **RAW)
    torch.testing.assert_close(every, exact, rtol=1e-12, atol=0.0)


def test_iscam_matches_loop(small_net, batch):
    got = iscam(small_net, batch, TARGETS, "r2", num_samples=4, **RAW)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        want = loop_scorecam(small_net, x, a, cls, scales=(0.25, 0.5, 0.75, 1.0))
        torch.testing.assert_close(got[n], want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("noise", ["mask", "input"])
def test_sscam_without_noise_is_scorecam(small_net, batch, noise):
    plain = scorecam(small_net, batch, TARGETS, "r2", **RAW)
    smooth = sscam(small_net, batch, TARGETS, "r2", std=0.0, num_samples=3, noise=noise, **RAW)
    torch.testing.assert_close(smooth, plain, rtol=1e-9, atol=1e-12)


def test_sscam_noise_is_seeded(small_net, batch):
    a = sscam(small_net, batch, TARGETS, "r2", num_samples=2, std=0.5, seed=3, **RAW)
    b = sscam(small_net, batch, TARGETS, "r2", num_samples=2, std=0.5, seed=3, **RAW)
    c = sscam(small_net, batch, TARGETS, "r2", num_samples=2, std=0.5, seed=4, **RAW)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-6


def test_scorecam_probability_weights_match_loop(small_net, batch):
    got = scorecam(small_net, batch, TARGETS, "r2", weights="probability", **RAW)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        want = torch.zeros_like(a[0])
        for k in range(a.shape[0]):
            with torch.no_grad():
                probs = torch.softmax(small_net(x * upsampled_mask(a[k], (8, 8))), dim=1)
            want += float(probs[0, cls]) * a[k]
        torch.testing.assert_close(got[n], want, rtol=1e-6, atol=1e-9)


def test_ablationcam_matches_loop(small_net, batch):
    got = ablationcam(small_net, batch, TARGETS, "r2", forward_batch=2, **RAW)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        want = loop_ablationcam(small_net, x, small_net.r2, a, cls)
        torch.testing.assert_close(got[n], want, rtol=1e-8, atol=1e-10)


def test_cam_uses_classifier_weights(gap_net, batch):
    got = cam(gap_net, batch, [3, 0, 1], "r2", **RAW)
    for n, cls in enumerate([3, 0, 1]):
        a, _ = act_and_grad(gap_net, batch[n : n + 1], gap_net.r2, cls)
        want = sum(float(gap_net.fc.weight[cls, k].detach()) * a[k] for k in range(a.shape[0]))
        torch.testing.assert_close(got[n], want, rtol=1e-9, atol=1e-12)


def test_cam_equals_hirescam_and_scaled_gradcam_on_gap_head(gap_net, batch):
    # dS/dA_k = W[c, k] / (h w) everywhere for a GAP -> Linear head.
    c = cam(gap_net, batch, 2, "r2", **RAW)
    torch.testing.assert_close(hirescam(gap_net, batch, 2, "r2", **RAW) * 64, c)
    torch.testing.assert_close(gradcam(gap_net, batch, 2, "r2", **RAW) * 64, c)


def test_input_gradients_match_autograd(small_net, batch):
    got = input_gradients(small_net, batch, TARGETS, **RAW)
    for n, cls in enumerate(TARGETS):
        g = input_grad(small_net, batch[n : n + 1], cls)
        torch.testing.assert_close(got[n], g.abs().amax(0), rtol=1e-10, atol=1e-14)
    summed = input_gradients(small_net, batch, TARGETS, reduce="sum", **RAW)
    g0 = input_grad(small_net, batch[:1], TARGETS[0])
    torch.testing.assert_close(summed[0], g0.sum(0), rtol=1e-10, atol=1e-14)


def test_guided_backprop_matches_module_swap(small_net, batch):
    got = guided_backprop(small_net, batch, TARGETS, reduce="sum", **RAW)
    twin = guided_copy(small_net)
    for n, cls in enumerate(TARGETS):
        g = input_grad(twin, batch[n : n + 1], cls)
        torch.testing.assert_close(got[n], g.sum(0), rtol=1e-10, atol=1e-14)
    plain = input_gradients(small_net, batch, TARGETS, reduce="sum", **RAW)
    assert (got - plain).abs().max() > 1e-6  # the guided rule changed something


def test_guided_gradcam_is_guided_times_gradcam(small_net, batch):
    got = guided_gradcam(small_net, batch, TARGETS, "r2", relu=False, normalize=False)
    twin = guided_copy(small_net)
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        a, g = act_and_grad(small_net, x, small_net.r2, cls)
        up = F.interpolate(
            loop_gradcam(a, g).clamp(min=0)[None, None], size=(8, 8), mode="bilinear",
            align_corners=False,
        )[0, 0]  # fmt: skip
        want = (input_grad(twin, x, cls) * minmax(up)).abs().amax(0)
        torch.testing.assert_close(got[n], want, rtol=1e-7, atol=1e-12)


def test_smooth_gradcam_pp_matches_loop(small_net, batch):
    got = smooth_gradcam_pp(
        small_net, batch, TARGETS, "r2", num_samples=3, noise_level=0.2, seed=11, **RAW
    )
    gen = torch.Generator().manual_seed(11)
    noises = [torch.randn(batch.shape, generator=gen, dtype=batch.dtype) for _ in range(3)]
    for n, cls in enumerate(TARGETS):
        x = batch[n : n + 1]
        span = float(x.max() - x.min())
        a, _ = act_and_grad(small_net, x, small_net.r2, cls)
        grads = [
            act_and_grad(small_net, x + 0.2 * span * noise[n : n + 1], small_net.r2, cls)[1]
            for noise in noises
        ]
        c, h, w = a.shape
        want = torch.zeros(h, w, dtype=a.dtype)
        for k in range(c):
            total = float(a[k].sum())
            wk = 0.0
            for i in range(h):
                for j in range(w):
                    d1 = sum(float(g[k, i, j]) for g in grads) / 3
                    d2 = sum(float(g[k, i, j]) ** 2 for g in grads) / 3
                    d3 = sum(float(g[k, i, j]) ** 3 for g in grads) / 3
                    den = 2 * d2 + total * d3
                    wk += (d2 / den if den != 0 else 0.0) * max(d1, 0.0)
            want += wk * a[k]
        torch.testing.assert_close(got[n], want, rtol=1e-8, atol=1e-11)


def test_full_pipeline_relu_upsample_normalize(small_net, batch):
    got = gradcam(small_net, batch, TARGETS, "r2")
    assert got.shape == (3, 8, 8)
    for n, cls in enumerate(TARGETS):
        a, g = act_and_grad(small_net, batch[n : n + 1], small_net.r2, cls)
        raw = loop_gradcam(a, g).clamp(min=0)
        up = F.interpolate(raw[None, None], size=(8, 8), mode="bilinear", align_corners=False)
        torch.testing.assert_close(got[n], minmax(up[0, 0]), rtol=1e-6, atol=1e-7)
