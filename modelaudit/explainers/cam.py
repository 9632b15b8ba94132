"""CAM (Zhou et al., 2016): the classifier's own weights on the last feature map.

Defined for heads of the form ``logits = W . GAP(A) + b`` (global average pooling then one
Linear layer): the map of class c is ``sum_k W[c, k] A_k`` (the bias is left out; it is
constant over the image). The classifier is found automatically (the last ``nn.Linear`` —
or 1x1 convolution — whose input size is the layer's channel count) or given as ``fc=``.
By default the head is verified on the actual batch: if the model output is not
``W . mean_ij(A) + b``, CAM's formula does not describe the model and an error says so
(``check=False`` skips this; Grad-CAM and HiResCAM apply to any head).

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.cam import cam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    >>> cam(net, torch.rand(2, 3, 8, 8), target=[1, 7]).shape  # default layer: "1"
    torch.Size([2, 8, 8])
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from modelaudit.errors import InvalidInputError, LayerNotFoundError
from modelaudit.explainers.base import CamContext, Formula, run_cam
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.gradient_cams import weighted_sum
from modelaudit.explainers.options import CamOptions, explanation_method
from modelaudit.hooks.layers import LayerSpec, resolve_layer
from modelaudit.targets import Target

__all__ = ["cam", "find_classifier"]


def _weight(module: nn.Module) -> torch.Tensor | None:
    w = getattr(module, "weight", None)
    if isinstance(module, nn.Linear) and isinstance(w, torch.Tensor):
        return w.detach()
    if (
        isinstance(module, nn.Conv2d)
        and isinstance(w, torch.Tensor)
        and tuple(module.kernel_size) == (1, 1)
    ):
        return w.detach().flatten(1)
    return None


def find_classifier(
    model: nn.Module, channels: int, fc: str | nn.Module | None = None
) -> tuple[str, nn.Module]:
    """The CAM classifier: ``fc`` if given, else the last Linear / 1x1 conv with ``channels`` inputs.

    Raises:
        LayerNotFoundError: no such layer (or ``fc`` is not part of the model).
        InvalidInputError: ``fc`` is not a Linear / 1x1 conv taking ``channels`` inputs.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> find_classifier(net, 4)[0]
        '4'
    """
    if fc is not None:
        name, module = resolve_layer(model, fc)
        w = _weight(module)
        if w is None or w.shape[1] != channels:
            raise InvalidInputError(
                f"fc={name!r} must be an nn.Linear (or 1x1 Conv2d) taking the {channels} "
                f"channels of the explained layer; it is {module}."
            )
        return name, module
    hits = [
        (n, m)
        for n, m in model.named_modules()
        if (w := _weight(m)) is not None and w.shape[1] == channels
    ]
    if not hits:
        raise LayerNotFoundError(
            f"CAM needs a Linear classifier over the {channels} channels of the explained "
            "layer (global average pooling -> Linear) and the model has none; pass fc=, or "
            "use gradcam / hirescam, which work with any head."
        )
    return hits[-1]


@explanation_method("cam")
def cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    fc: str | nn.Module | None = None,
    check: bool = True,
    **options: Unpack[CamOptions],
) -> Explanation:
    """CAM: ``sum_k W[c, k] A_k`` with ``W`` the weights of the GAP -> Linear classifier.

    Needs class-index targets (a callable target is an error) and exactly one layer;
    ``InvalidInputError`` also when the check fails.

    Args:
        fc: the classifier (name or module); default: found as the module docstring says.
        check: verify that the output equals ``W . mean_ij(A) + b`` on this batch
            (relative tolerance 1e-3), i.e. that CAM's formula describes the model.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> from modelaudit.explainers import hirescam  # equal on a GAP -> Linear head
        >>> gap = cam(net, x, target=2, layer="1") - hirescam(net, x, target=2, layer="1")
        >>> bool(gap.abs().max() < 1e-6)  # float rounding apart
        True
    """
    return run_cam(
        model,
        inputs,
        target,
        layer,
        _cam_formula(fc, check),
        method="cam",
        gradients=False,
        **options,
    )


def _cam_formula(fc: str | nn.Module | None, check: bool) -> Formula:
    """CAM's formula: the classifier's weights of each target class on the activations."""

    def formula(ctx: CamContext) -> list[torch.Tensor]:
        if len(ctx.activations) != 1:
            raise InvalidInputError(
                f"CAM explains one layer (the one before global pooling); got {ctx.capture.names}"
            )
        acts = ctx.activations[0]
        idx = ctx.scorer.class_indices("cam")
        name, module = find_classifier(ctx.model, acts.shape[1], fc)
        weight = _weight(module)
        assert weight is not None
        if check:
            _check_head(ctx, acts, module, weight, name)
        w = weight.to(acts.dtype)[idx.to(weight.device)]  # (N, K, C)
        return [weighted_sum(w.to(acts.device), acts)]

    return formula


def _check_head(
    ctx: CamContext, acts: torch.Tensor, module: nn.Module, weight: torch.Tensor, name: str
) -> None:
    out = ctx.capture.output
    bias = getattr(module, "bias", None)
    pooled = acts.mean(dim=(-2, -1)) @ weight.to(acts.dtype).T
    if isinstance(bias, torch.Tensor):
        pooled = pooled + bias.detach().to(acts.dtype)
    ok = isinstance(out, torch.Tensor) and out.shape == pooled.shape
    if ok:
        scale = float(out.abs().max().clamp(min=1.0))
        ok = bool(torch.allclose(pooled, out.to(pooled.dtype), rtol=1e-3, atol=1e-4 * scale))
    if not ok:
        raise InvalidInputError(
            f"the model output is not {name}(global average pool of layer "
            f"{ctx.capture.names[0]!r}), so CAM's formula does not describe this model. Explain "
            "the layer right before the pooling, use gradcam / hirescam (any head), or pass "
            "check=False to compute it anyway."
        )
