"""Input-gradient maps: vanilla gradients, guided backpropagation, Guided Grad-CAM.

These differentiate the target score with respect to the *input*, so the whole model runs
with a graph (only the input requires grad; parameters do not, and their ``.grad`` is never
touched). The (N, K, C, H, W) gradient is reduced over the colour channels to one map per
image with ``reduce=``: ``"abs_max"`` (Simonyan et al., 2014: ``max_c |g_c|``, default),
``"abs_sum"``, ``"sum"`` or ``"max"``; then ReLU'd and normalised like every map. Maps are
at input resolution already, so ``upsample`` has no effect. ``layer``/``reshape`` do not
apply (except Guided Grad-CAM's ``layer``, used for its Grad-CAM factor).

Guided backpropagation (Springenberg et al., 2015) changes the backward pass of every
``nn.ReLU`` module to pass only positive gradients (``ReLU(grad) * (x > 0)``), through
forward hooks that are removed in a ``finally``; the model itself is never modified.
Functional ``F.relu`` calls and other activations keep their ordinary gradient, as in
Captum and pytorch-grad-cam.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.backprop import input_gradients
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    >>> maps = input_gradients(net, torch.zeros(1, 1, 2, 2), target=0, normalize=False)
    >>> maps
    Explanation([[[1., 2.],
                  [0., 4.]]], method='input_gradients', layer=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Unpack

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.base import explanation, top_class, with_predictions
from modelaudit.explainers.engine import (
    _as_leaf,
    check_inputs,
    check_model,
    clear_model_errors,
    explaining,
    gradients_of,
)
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.gradient_cams import gradcam
from modelaudit.explainers.options import CamOptions, explanation_method, resolve_options
from modelaudit.explainers.postprocess import finish_maps
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target, TargetScorer, score_targets

__all__ = ["guided_backprop", "guided_gradcam", "input_gradients", "reduce_channels"]

Reduce = Literal["abs_max", "abs_sum", "sum", "max"]


class _PositiveGrad(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def _guided_hook(_m: nn.Module, _a: Any, out: torch.Tensor) -> torch.Tensor:
    return _PositiveGrad.apply(out)


def reduce_channels(grads: torch.Tensor, how: Reduce) -> torch.Tensor:
    """(..., C, H, W) -> (..., H, W) by ``how`` (see the module docstring).

    Example:
        >>> import torch
        >>> reduce_channels(torch.tensor([[[1.0]], [[-3.0]]]), "abs_max")
        tensor([[3.]])
    """
    if how == "abs_max":
        return grads.abs().amax(dim=-3)
    if how == "abs_sum":
        return grads.abs().sum(dim=-3)
    if how == "sum":
        return grads.sum(dim=-3)
    if how == "max":
        return grads.amax(dim=-3)
    raise InvalidInputError(f"reduce must be 'abs_max', 'abs_sum', 'sum' or 'max'; got {how!r}")


def _input_grads(
    model: nn.Module, inputs: torch.Tensor, target: Target, guided: bool
) -> tuple[torch.Tensor, TargetScorer, tuple[torch.Tensor, torch.Tensor] | None]:
    """(N, K, C, H, W) d score / d input, the scorer and the output's top classes with their
    probabilities (:func:`~modelaudit.explainers.base.top_class`); call inside
    :func:`explaining`."""
    leaf = _as_leaf(inputs)
    handles = []
    if guided:
        handles = [
            m.register_forward_hook(_guided_hook) for m in model.modules() if isinstance(m, nn.ReLU)
        ]
    try:
        with torch.enable_grad():
            out = model(leaf)
            scorer, scores = score_targets(out, target, inputs.shape[0])
    finally:
        for h in handles:
            h.remove()
    return gradients_of(scores, [leaf])[0], scorer, top_class(out, inputs.shape[0])


def _input_map(
    method: str,
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target,
    layer: LayerSpec | None,
    options: Mapping[str, Any],
    *,
    reduce: Reduce,
    guided: bool,
    cam: bool = False,
) -> Explanation:
    """The driver of the three methods: input gradient (times Grad-CAM), reduced, finished."""
    opts = resolve_options(method, options, CamOptions)
    if not cam and (layer is not None or opts["reshape"] is not None):
        raise InvalidInputError(
            f"{method} explains the input pixels: layer= and reshape= do not apply."
        )
    inputs = check_model(model, check_inputs(inputs))
    with clear_model_errors(model, inputs), explaining(model):
        grads, scorer, top = _input_grads(model, inputs, target, guided=guided)
    layers: list[str] = []
    if cam:
        cams = gradcam(model, inputs, scorer.fixed_target(), layer, reshape=opts["reshape"])
        layers = [cams.layer] if isinstance(cams.layer, str) else list(cams.layer or ())
        grads = grads * (cams if not scorer.single else cams[:, None])[:, :, None]
    maps = reduce_channels(grads, reduce)
    maps = finish_maps(
        [maps], maps.shape[-2:], relu=opts["relu"], normalize=opts["normalize"], upsample=False
    )
    return with_predictions(explanation(maps, method, layers, [scorer], inputs), model, [top])


@explanation_method("input_gradients")
def input_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    reduce: Reduce = "abs_max",
    **options: Unpack[CamOptions],
) -> Explanation:
    """Vanilla gradient saliency: ``reduce_c(dS / dx_c)`` (Simonyan et al., 2014).

    Maps are at input resolution, so ``upsample`` has no effect.

    Args:
        layer: must be None (the input pixels are explained).
        reshape: must be None.
        reduce: how colour channels become one map (module docstring).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> input_gradients(net, x, target=1).shape
        torch.Size([2, 16, 16])
    """
    return _input_map(
        "input_gradients", model, inputs, target, layer, options, reduce=reduce, guided=False
    )


@explanation_method("guided_backprop")
def guided_backprop(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    reduce: Reduce = "abs_max",
    **options: Unpack[CamOptions],
) -> Explanation:
    """Guided backpropagation (Springenberg et al., 2015), reduced over colour channels.

    Maps are at input resolution, so ``upsample`` has no effect.

    Args:
        layer: must be None (the input pixels are explained).
        reshape: must be None.
        reduce: how colour channels become one map (module docstring).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> guided_backprop(net, x, target=1, reduce="abs_sum").shape
        torch.Size([2, 16, 16])
    """
    return _input_map(
        "guided_backprop", model, inputs, target, layer, options, reduce=reduce, guided=True
    )


@explanation_method("guided_gradcam")
def guided_gradcam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    reduce: Reduce = "abs_max",
    **options: Unpack[CamOptions],
) -> Explanation:
    """Guided Grad-CAM (Selvaraju et al., 2017): guided backprop times the Grad-CAM map.

    ``reduce_c(G_c * L)`` with ``G`` the guided-backprop gradient (N, K, C, H, W) and ``L``
    the Grad-CAM map at ``layer`` (ReLU'd, upsampled, normalised as :func:`gradcam`, with
    ``reshape``). Maps are at input resolution, so ``upsample`` has no effect.

    Args:
        reduce: how colour channels become one map (module docstring).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> maps = guided_gradcam(net, x, target=1, layer="1")
        >>> maps.shape, maps.method, maps.layer
        (torch.Size([2, 16, 16]), 'guided_gradcam', '1')
    """
    return _input_map(
        "guided_gradcam",
        model,
        inputs,
        target,
        layer,
        options,
        reduce=reduce,
        guided=True,
        cam=True,
    )
