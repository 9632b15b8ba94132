"""The driver shared by every layer-based method: checks, engine passes, formula, post-processing.

A method supplies only its formula: a function from a :class:`CamContext` to one raw
(N, K, h, w) map per layer. :func:`run_cam` does the rest, identically for every method,
and returns an :class:`~modelaudit.explainers.explanation.Explanation`.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.base import run_cam
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> def channel_sum(ctx):
    ...     return [a.sum(1, keepdim=True).expand(-1, ctx.k, -1, -1) for a in ctx.activations]
    >>> maps = run_cam(net, torch.rand(3, 1, 4, 4), None, "1", channel_sum, method="demo",
    ...                gradients=False)
    >>> maps.shape, maps.method, maps.layer
    (torch.Size([3, 4, 4]), 'demo', '1')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Unpack

import torch
from torch import nn

from modelaudit.explainers.engine import (
    LayerCapture,
    Reshape,
    check_inputs,
    check_layers,
    check_model,
    clear_model_errors,
    explaining,
    run_in_passes,
)
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.layer_choice import select_layers
from modelaudit.explainers.options import CamOptions, GradientOptions, resolve_options
from modelaudit.explainers.postprocess import finish_maps
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target, TargetScorer

__all__ = ["CamContext", "Formula", "explanation", "run_cam"]


@dataclasses.dataclass
class CamContext:
    """Everything a method's formula may use (for the samples of one pass).

    Attributes:
        model: the model (in eval mode, parameters not requiring grad).
        inputs: the (N, C, H, W) inputs.
        layers: ``{name: module}`` of the explained layers, in model order.
        capture: what the engine recorded (activations, gradients, output, targets).
        reshape: the ``reshape=`` function (or None).
    """

    model: nn.Module
    inputs: torch.Tensor
    layers: dict[str, nn.Module]
    capture: LayerCapture
    reshape: Reshape | None

    @property
    def activations(self) -> list[torch.Tensor]:
        """Per layer (N, C, h, w)."""
        return self.capture.activations

    @property
    def gradients(self) -> list[torch.Tensor]:
        """Per layer (N, K, C, h, w)."""
        assert self.capture.gradients is not None, "method declared gradients=False"
        return self.capture.gradients

    @property
    def scorer(self) -> TargetScorer:
        """The resolved targets."""
        return self.capture.scorer

    @property
    def k(self) -> int:
        """Targets per sample."""
        return self.capture.scorer.k


Formula = Callable[[CamContext], list[torch.Tensor]]


def run_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target,
    layer: LayerSpec | None,
    formula: Formula,
    *,
    method: str,
    gradients: bool,
    **options: Unpack[GradientOptions],
) -> Explanation:
    """Explain ``inputs`` with ``formula``: (N, H, W) maps, or (N, K, H, W) for K targets.

    ``method`` names the method (in messages and on the result). Inputs of another
    floating dtype than the model's are cast to it, and the result holds the cast inputs
    (:func:`~modelaudit.explainers.engine.check_model`). Model state is restored and no
    hook is left, whatever happens. With ``gradients``, the batch goes through in
    passes of ``pass_size`` samples (:func:`~modelaudit.explainers.engine.run_in_passes`),
    each running the engine and ``formula`` on its samples, so that neither the autograd
    graph nor the gradients are ever held for the whole batch; without, ``pass_size`` is
    not an option.
    """
    opts = resolve_options(method, options, GradientOptions if gradients else CamOptions)
    inputs = check_model(model, check_inputs(inputs))
    scorers: list[TargetScorer] = []
    with clear_model_errors(model, inputs), explaining(model):
        layers = select_layers(model, inputs, layer)
        check_layers(layers)

        def use(part: slice, cap: LayerCapture) -> list[torch.Tensor]:
            scorers.append(cap.scorer)
            return formula(CamContext(model, inputs[part], layers, cap, opts["reshape"]))

        raws = run_in_passes(
            model,
            inputs,
            layers,
            target,
            use,
            gradients=gradients,
            reshape=opts["reshape"],
            pass_size=opts.get("pass_size"),
        )
    maps = finish_maps(
        raws,
        inputs.shape[-2:],
        relu=opts["relu"],
        normalize=opts["normalize"],
        upsample=opts["upsample"],
    ).to(inputs.device)
    grid = max((tuple(r.shape[-2:]) for r in raws), key=lambda s: s[0] * s[1])
    return explanation(maps, method, list(layers), scorers, inputs, grid=grid)


def explanation(
    maps: torch.Tensor,
    method: str,
    layers: Sequence[str],
    scorers: Sequence[TargetScorer],
    inputs: torch.Tensor,
    *,
    grid: tuple[int, ...] | None = None,
) -> Explanation:
    """(N, K, H, W) maps as an Explanation: (N, H, W) for one target per sample.

    ``scorers`` are those of the passes, in batch order; ``layers`` the explained names
    (none for a method without a layer).

    Example:
        >>> import torch
        >>> from modelaudit.targets import score_targets
        >>> scorer, _ = score_targets(torch.tensor([[0.0, 1.0]]), None)
        >>> explanation(torch.zeros(1, 1, 2, 2), "m", ["a", "b"], [scorer],
        ...             torch.zeros(1, 3, 2, 2)).layer
        ('a', 'b')
    """
    g = grid if grid is not None else inputs.shape[-2:]
    found = [c for c in (s.classes() for s in scorers) if c is not None]
    targets = None
    if found and len(found) == len(scorers):  # class targets (not a callable)
        targets = found[0] if len(found) == 1 else torch.cat(found)
    return Explanation(
        maps[:, 0] if scorers[-1].single else maps,
        method=method,
        layer=None if not layers else layers[0] if len(layers) == 1 else tuple(layers),
        targets=targets,
        inputs=inputs,
        grid=(int(g[0]), int(g[1])),
    )
