"""Eigen-CAM and EigenGrad-CAM: maps from the first principal component of a layer.

For one map, the layer's values form a matrix ``X`` of h*w rows (positions) by C columns
(channels). With ``center=True`` (default, principal component analysis proper, as
pytorch-grad-cam does) each channel's mean over positions is subtracted first; with
``center=False`` the raw matrix is used, as written in the Eigen-CAM paper. The map is the
projection ``X v1`` on the first right singular vector ``v1``.

**Sign.** A singular vector is defined up to sign, and peers leave it to the SVD routine
(so a map can come out inverted and then be zeroed by the ReLU). Here the sign is chosen so
the map is positively correlated with the channel sum of the same values (``sum_k A_k``
for Eigen-CAM): strong activations map to high values. Exact ties keep the SVD's sign.

Example:
    >>> import torch
    >>> from modelaudit.explainers.eigen import principal_projection
    >>> a = torch.zeros(1, 2, 2, 2)
    >>> a[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # one active position
    >>> principal_projection(a, center=False)
    tensor([[[5., 0.],
             [0., 0.]]])
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from modelaudit.explainers.base import CamContext, run_cam
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.options import CamOptions, GradientOptions, explanation_method
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = ["eigencam", "eigengradcam", "principal_projection"]


def principal_projection(values: torch.Tensor, *, center: bool = True) -> torch.Tensor:
    """Project (B, C, h, w) values on their first principal direction: (B, h, w).

    The sign follows the module's convention (positive correlation with ``values.sum(1)``).

    Example:
        >>> import torch
        >>> v = torch.zeros(1, 2, 1, 2)
        >>> v[0, :, 0, 1] = torch.tensor([3.0, 4.0])
        >>> principal_projection(v, center=False) + 0.0  # (+ 0.0 turns -0. into 0.)
        tensor([[[0., 5.]]])
    """
    b, _, h, w = values.shape
    if values.dtype in (torch.float16, torch.bfloat16):  # no half SVD on every device
        return principal_projection(values.float(), center=center).to(values.dtype)
    x = values.flatten(2).transpose(1, 2)  # (B, hw, C)
    if center:
        x = x - x.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    proj = (x @ vh[:, 0, :, None])[..., 0]  # (B, hw)
    ref = values.sum(dim=1).flatten(1)
    corr = ((proj - proj.mean(1, keepdim=True)) * (ref - ref.mean(1, keepdim=True))).sum(1)
    if not center:  # a constant reference has no correlation: fall back to the plain sum
        corr = torch.where(corr == 0, (proj * ref).sum(1), corr)
    sign = torch.where(corr < 0, -1.0, 1.0).to(proj.dtype)
    return (proj * sign[:, None]).view(b, h, w)


@explanation_method("eigencam")
def eigencam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    center: bool = True,
    **options: Unpack[CamOptions],
) -> Explanation:
    """Eigen-CAM (Muhammad & Yeasin, 2020): projection of the activations on their first
    principal component (see the module docstring for centring and sign).

    Class-agnostic: the target only sets the output shape ((N, K, H, W) for K targets holds
    the same map K times) and is still checked. No gradient is computed.

    Args:
        center: subtract each channel's spatial mean before the SVD (PCA); ``False``: the
            paper's uncentred SVD.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> eigencam(net, x, layer="1").shape
        torch.Size([2, 16, 16])
    """

    def formula(ctx: CamContext) -> list[torch.Tensor]:
        return [
            principal_projection(a, center=center)[:, None].expand(-1, ctx.k, -1, -1)
            for a in ctx.activations
        ]

    return run_cam(
        model, inputs, target, layer, formula, method="eigencam", gradients=False, **options
    )


@explanation_method("eigengradcam")
def eigengradcam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    center: bool = True,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """EigenGrad-CAM (pytorch-grad-cam): first principal component of ``g * A``.

    The element-wise product of gradient and activation (class-specific) is projected as in
    :func:`eigencam`; the sign makes the map correlate positively with ``sum_k g_k A_k``.

    Args:
        center: subtract each channel's spatial mean before the SVD.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> eigengradcam(net, x, target=[[1, 2], [3, 4]], layer="1").shape
        torch.Size([2, 2, 16, 16])
    """

    def formula(ctx: CamContext) -> list[torch.Tensor]:
        out = []
        for a, g in zip(ctx.activations, ctx.gradients):
            prod = (g * a[:, None]).flatten(0, 1)  # (N*K, C, h, w)
            out.append(principal_projection(prod, center=center).unflatten(0, g.shape[:2]))
        return out

    return run_cam(
        model, inputs, target, layer, formula, method="eigengradcam", gradients=True, **options
    )
