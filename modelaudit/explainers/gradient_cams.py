"""Gradient-weighted CAMs: Grad-CAM and its family.

Notation for one sample, one target score ``S`` and one layer: ``A_k`` is channel ``k``
of the activation (h x w), ``g_k = dS / dA_k`` its gradient (both as the model computes
them, after ``reshape``), sums ``sum_ij`` run over the h x w positions. Every raw map is
then ReLU'd, upsampled and normalised by :mod:`modelaudit.explainers.postprocess`.

Scores are the model's outputs as they are (logits for a classifier; no softmax).
Where the peers (pytorch-grad-cam 1.5, TorchCAM 0.5, Captum 0.9) differ, each docstring says
so. No formula adds an epsilon: divisions by zero give a zero weight, exactly.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.gradient_cams import gradcam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    >>> gradcam(net, torch.rand(2, 3, 16, 16), target=[[0, 1, 2], [2, 3, 4]], layer="1").shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

from typing import Unpack

import torch

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.base import CamContext, Formula, run_cam
from modelaudit.explainers.engine import PassSize, capture_layers
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.options import GradientOptions, explanation_method, resolve_options
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = [
    "gradcam",
    "gradcam_elementwise",
    "gradcam_pp",
    "hirescam",
    "layercam",
    "smooth_gradcam_pp",
    "xgradcam",
]

_SPATIAL = (-2, -1)


def weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A_k: (N, K, C) weights and (N, C, h, w) activations -> (N, K, h, w)."""
    return torch.einsum("nkc,nchw->nkhw", weights, acts)


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den != 0, else 0 (no epsilon bias, no NaN)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), 0.0)


def _gradcam(ctx: CamContext) -> list[torch.Tensor]:
    return [weighted_sum(g.mean(dim=_SPATIAL), a) for a, g in zip(ctx.activations, ctx.gradients)]


@explanation_method("gradcam")
def gradcam(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """Grad-CAM (Selvaraju et al., 2017): ``ReLU(sum_k w_k A_k)``, ``w_k = mean_ij g_k``.

    The weights are the spatial *mean* of the gradient (TorchCAM and pytorch-grad-cam agree;
    Captum's LayerGradCam also, but it skips the ReLU and upsamples nearest by default).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> maps = gradcam(net, x, target=[1, 4], layer="1")  # one class per image
        >>> maps.shape, maps.amax(dim=(1, 2)).tolist()  # each map spans [0, 1]
        (torch.Size([2, 16, 16]), [1.0, 1.0])
        >>> gradcam(net, x, target=[[0, 1, 2], [2, 3, 4]], layer="1").shape  # 3 classes each
        torch.Size([2, 3, 16, 16])
        >>> gradcam(net, x, layer="1", upsample=False, normalize=False).shape  # raw, 14 x 14
        torch.Size([2, 14, 14])
    """
    return run_cam(
        model, inputs, target, layer, _gradcam, method="gradcam", gradients=True, **options
    )


def plusplus_weights(
    acts: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM++ channel weights from derivatives of order 1, 2, 3: (N, K, C, h, w) -> (N, K, C).

    ``alpha_ij = d2_ij / (2 d2_ij + (sum_ab A_ab) d3_ij)`` (0 where the denominator is 0),
    ``w = sum_ij alpha_ij ReLU(d1_ij)``.
    """
    total = acts.sum(dim=_SPATIAL)[:, None, :, None, None]
    alpha = safe_div(d2, 2 * d2 + total * d3)
    return (alpha * d1.clamp(min=0)).sum(dim=_SPATIAL)


def plusplus_weights_from_gradient(acts: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """:func:`plusplus_weights` with ``d2 = g^2``, ``d3 = g^3``, in two temporaries.

    Where ``g > 0``, ``alpha ReLU(g) = g^3 / (2 g^2 + S g^3) = g / (2 + S g)`` (``S`` the
    channel's activation sum); where ``g <= 0`` the term is 0, and a zero denominator gives
    0, as in :func:`plusplus_weights`. No (N, K, C, h, w) power tensors are built.
    """
    total = acts.sum(dim=_SPATIAL)[:, None, :, None, None]
    den = (g * total).add_(2)
    den.masked_fill_(den == 0, float("inf"))  # alpha = 0 where the denominator vanishes
    return g.clamp(min=0).div_(den).sum(dim=_SPATIAL)


def _gradcam_pp(ctx: CamContext) -> list[torch.Tensor]:
    return [
        weighted_sum(plusplus_weights_from_gradient(a, g), a)
        for a, g in zip(ctx.activations, ctx.gradients)
    ]


@explanation_method("gradcam_pp")
def gradcam_pp(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """Grad-CAM++ (Chattopadhyay et al., 2018), eq. 19 with the exponential-score trick.

    ``w_k = sum_ij alpha_kij ReLU(g_kij)``, ``alpha_kij = g_kij^2 / (2 g_kij^2 +
    (sum_ab A_kab) g_kij^3)``: with ``Y = exp(S)`` the higher derivatives are powers of
    ``g`` and ``exp(S)`` cancels in ``alpha``; the remaining factor ``exp(S)`` in ``w`` is a
    per-map constant and is dropped, as pytorch-grad-cam and TorchCAM do (only
    ``normalize=False`` maps differ from the paper, by that factor). TorchCAM puts
    ``sum_ab A_kab g_kab^3`` in the denominator instead of ``(sum_ab A_kab) g_kij^3``, and
    both peers add an epsilon (1e-6 / 1e-8) to it; here a zero denominator gives ``alpha = 0``.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> gradcam_pp(net, x, target=3, layer="1").shape
        torch.Size([2, 16, 16])
    """
    return run_cam(
        model, inputs, target, layer, _gradcam_pp, method="gradcam_pp", gradients=True, **options
    )


def _smooth_plusplus(
    num_samples: int, noise_level: float, seed: int | None, pass_size: PassSize
) -> Formula:
    """The Smooth Grad-CAM++ formula: Grad-CAM++ weights from noise-averaged derivatives."""

    def formula(ctx: CamContext) -> list[torch.Tensor]:
        x = ctx.inputs
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        span = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))).view(-1, 1, 1, 1)
        sums: list[list[torch.Tensor]] | None = None
        for _ in range(num_samples):
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            cap = capture_layers(
                ctx.model,
                x + noise * noise_level * span,
                ctx.layers,
                ctx.scorer.fixed_target(),
                gradients=True,
                reshape=ctx.reshape,
                pass_size=pass_size,
            )
            assert cap.gradients is not None
            powers = [[g, g.pow(2), g.pow(3)] for g in cap.gradients]
            if sums is None:
                sums = powers
            else:
                sums = [[s + p for s, p in zip(ss, ps)] for ss, ps in zip(sums, powers)]
        assert sums is not None
        return [
            weighted_sum(plusplus_weights(a, *(s / num_samples for s in ss)), a)
            for a, ss in zip(ctx.activations, sums)
        ]

    return formula


@explanation_method("smooth_gradcam_pp")
def smooth_gradcam_pp(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    num_samples: int = 8,
    noise_level: float = 0.15,
    seed: int | None = 0,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """Smooth Grad-CAM++ (Omeiza et al., 2019): Grad-CAM++ with SmoothGrad derivatives.

    For ``n = num_samples`` noisy copies ``x + e``, ``e ~ N(0, s^2)`` with
    ``s = noise_level * (max(x) - min(x))`` per sample (SmoothGrad's convention), the
    derivatives are averaged: ``D1 = mean g``, ``D2 = mean g^2``, ``D3 = mean g^3``, and
    ``w_k = sum_ij alpha_kij ReLU(D1_kij)``, ``alpha = D2 / (2 D2 + (sum_ab A_kab) D3)``,
    with ``A`` the activation of the clean input; the targets are those of the clean input.
    TorchCAM uses an absolute noise std (0.3, 4 samples) and the last sample's gradient in
    the ReLU. ``pass_size`` applies to the noisy copies (the clean input takes one pass
    without gradients).

    Args:
        num_samples: noisy copies (each costs one lean forward and backward).
        noise_level: noise std as a fraction of each input's value range.
        seed: seed of the noise (``None``: torch's global generator).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> maps = smooth_gradcam_pp(net, x, target=3, layer="1", num_samples=2)
        >>> torch.equal(maps, smooth_gradcam_pp(net, x, target=3, layer="1", num_samples=2))
        True
    """
    if num_samples < 1 or noise_level < 0:
        raise InvalidInputError(
            f"smooth_gradcam_pp needs num_samples >= 1 and noise_level >= 0; got "
            f"num_samples={num_samples}, noise_level={noise_level}"
        )
    opts = resolve_options("smooth_gradcam_pp", options, GradientOptions)
    formula = _smooth_plusplus(num_samples, noise_level, seed, opts.pop("pass_size"))
    return run_cam(
        model, inputs, target, layer, formula, method="smooth_gradcam_pp", gradients=False, **opts
    )


def _xgradcam(ctx: CamContext) -> list[torch.Tensor]:
    out = []
    for a, g in zip(ctx.activations, ctx.gradients):
        share = safe_div(a, a.sum(dim=_SPATIAL, keepdim=True))  # A_kij / sum_ab A_kab
        out.append(weighted_sum((g * share[:, None]).sum(dim=_SPATIAL), a))
    return out


@explanation_method("xgradcam")
def xgradcam(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """XGrad-CAM (Fu et al., 2020): ``w_k = sum_ij g_kij A_kij / sum_ab A_kab``.

    A channel whose activations sum to zero gets weight 0 (pytorch-grad-cam adds 1e-7 to
    the sum instead).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> xgradcam(net, x, target=3, layer="1").shape
        torch.Size([2, 16, 16])
    """
    return run_cam(
        model, inputs, target, layer, _xgradcam, method="xgradcam", gradients=True, **options
    )


def _hirescam(ctx: CamContext) -> list[torch.Tensor]:
    return [(g * a[:, None]).sum(dim=2) for a, g in zip(ctx.activations, ctx.gradients)]


@explanation_method("hirescam")
def hirescam(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """HiResCAM (Draelos & Carin, 2020): ``ReLU(sum_k g_k * A_k)``, element-wise product.

    For a GAP -> Linear head it is CAM divided by h * w (the same normalised map); unlike
    Grad-CAM it does not average the gradient over space.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> hirescam(net, x, target=3, layer="1").shape
        torch.Size([2, 16, 16])
    """
    return run_cam(
        model, inputs, target, layer, _hirescam, method="hirescam", gradients=True, **options
    )


def _elementwise(ctx: CamContext) -> list[torch.Tensor]:
    return [
        (g * a[:, None]).clamp(min=0).sum(dim=2) for a, g in zip(ctx.activations, ctx.gradients)
    ]


@explanation_method("gradcam_elementwise")
def gradcam_elementwise(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``): ``sum_k ReLU(g_k * A_k)``.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> gradcam_elementwise(net, x, target=3, layer="1").shape
        torch.Size([2, 16, 16])
    """
    return run_cam(
        model,
        inputs,
        target,
        layer,
        _elementwise,
        method="gradcam_elementwise",
        gradients=True,
        **options,
    )


def _layercam(ctx: CamContext) -> list[torch.Tensor]:
    return [
        (g.clamp(min=0) * a[:, None]).sum(dim=2) for a, g in zip(ctx.activations, ctx.gradients)
    ]


@explanation_method("layercam")
def layercam(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """LayerCAM (Jiang et al., 2021): ``ReLU(sum_k ReLU(g_k) * A_k)``.

    Several layers are fused by this package's rule (mean of normalised maps), not by the
    paper's ``tanh(2 M / max M)`` rescaling of shallow layers followed by a maximum.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> layercam(net, x, target=3, layer=["0", "1"]).shape  # two layers, fused
        torch.Size([2, 16, 16])
    """
    return run_cam(
        model, inputs, target, layer, _layercam, method="layercam", gradients=True, **options
    )
