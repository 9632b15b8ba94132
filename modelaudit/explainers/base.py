"""The driver shared by every layer-based method: checks, engine pass, formula, post-processing.

A method supplies only its formula: a function from a :class:`CamContext` to one raw
(N, K, h, w) map per layer. :func:`run_cam` does the rest, identically for every method.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.base import run_cam
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> def channel_sum(ctx):
    ...     return [a.sum(1, keepdim=True).expand(-1, ctx.k, -1, -1) for a in ctx.activations]
    >>> run_cam(net, torch.rand(3, 1, 4, 4), None, "1", channel_sum, gradients=False).shape
    torch.Size([3, 4, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from modelaudit.explainers.engine import (
    BatchSize,
    LayerCapture,
    Reshape,
    TargetScorer,
    batch_parts,
    capture_layers,
    check_inputs,
    explaining,
)
from modelaudit.explainers.layer_choice import select_layers
from modelaudit.explainers.postprocess import finish_maps
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = ["CamContext", "run_cam"]


@dataclasses.dataclass
class CamContext:
    """Everything a method's formula may use.

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
    gradients: bool,
    reshape: Reshape | None = None,
    relu: bool = True,
    normalize: bool = True,
    upsample: bool = True,
    batch_size: BatchSize = None,
) -> torch.Tensor:
    """Explain ``inputs`` with ``formula``: (N, H, W) maps, or (N, K, H, W) for K targets.

    Model state is restored and no hook is left, whatever happens. With ``gradients``,
    ``batch_size`` splits the batch into passes (see
    :func:`~modelaudit.explainers.engine.batch_parts`), each running the engine and
    ``formula`` on its samples, so that neither the autograd graph nor the gradients are
    ever held for the whole batch.
    """
    check_inputs(inputs)
    n = inputs.shape[0]
    with explaining(model):
        layers = select_layers(model, inputs, layer)
        raws: list[torch.Tensor] = []
        single = True
        # gradient methods run the batch in parts (each sample's map depends on it alone)
        parts = batch_parts(model, n, target, batch_size if gradients else None)
        for part, part_target, graph in parts:
            part_inputs = inputs[part]
            cap = capture_layers(
                model,
                part_inputs,
                layers,
                part_target,
                gradients=gradients,
                reshape=reshape,
                first_sample=part.start,
                graph=graph,
            )
            raw = formula(CamContext(model, part_inputs, layers, cap, reshape))
            single = cap.scorer.single
            if parts.one_pass:
                raws = raw
                continue
            if not raws:  # full-size raw maps, filled part by part
                raws = [r.new_empty((n, *r.shape[1:])) for r in raw]
            for full, got in zip(raws, raw):
                full[part] = got
    maps = finish_maps(
        raws, inputs.shape[-2:], relu=relu, normalize=normalize, upsample=upsample
    ).to(inputs.device)
    return maps[:, 0] if single else maps
