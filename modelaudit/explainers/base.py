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
from typing import Any, Unpack

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
    tops: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    with clear_model_errors(model, inputs), explaining(model):
        layers = select_layers(model, inputs, layer)
        check_layers(layers)

        def use(part: slice, cap: LayerCapture) -> list[torch.Tensor]:
            scorers.append(cap.scorer)
            tops.append(top_class(cap.output, part.stop - part.start))
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
    maps = explanation(maps, method, list(layers), scorers, inputs, grid=grid)
    return with_predictions(maps, model, tops)


def top_class(output: Any, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(top class, its softmax probability) per row of an (n, classes) output, on the CPU;
    None for any other output.

    Example:
        >>> import torch
        >>> top_class(torch.tensor([[0.0, 0.0], [0.0, 10.0]]), 2)
        (tensor([0, 1]), tensor([0.5000, 1.0000]))
    """
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or output.shape[0] != n:
        return None
    with torch.no_grad():
        prob, cls = output.detach().float().softmax(dim=1).max(dim=1)
    return cls.cpu(), prob.cpu()


def class_names_of(model: nn.Module) -> tuple[str, ...] | None:
    """The model's class names: its ``class_names`` attribute, or a Hugging Face
    ``config.id2label`` (as a tuple indexed by class); None when it has neither.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Linear(2, 2)
        >>> net.class_names = ["cat", "dog"]
        >>> class_names_of(net), class_names_of(nn.Linear(2, 2))
        (('cat', 'dog'), None)
    """
    names = getattr(model, "class_names", None)
    if names is None:
        labels = getattr(getattr(model, "config", None), "id2label", None)
        if isinstance(labels, dict) and labels:
            try:
                names = [labels[k] for k in sorted(labels, key=int)]
            except (TypeError, ValueError):
                names = None
    if isinstance(names, list | tuple) and all(isinstance(x, str) for x in names):
        return tuple(names)
    return None


def with_predictions(
    maps: Explanation,
    model: nn.Module,
    tops: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
) -> Explanation:
    """``maps`` with the passes' top classes and probabilities and the model's class names.

    Example:
        >>> import torch, torch.nn as nn
        >>> maps = Explanation(torch.zeros(2, 1, 1), method="m", layer=None, targets=None,
        ...                    inputs=torch.zeros(2, 1, 1, 1))
        >>> top = (torch.tensor([1, 0]), torch.tensor([0.9, 0.6]))
        >>> with_predictions(maps, nn.Identity(), [top]).predicted
        tensor([1, 0])
    """
    predicted = confidence = None
    if tops and all(t is not None for t in tops):
        predicted = torch.cat([t[0] for t in tops if t is not None])
        confidence = torch.cat([t[1] for t in tops if t is not None])
    provenance = maps._provenance()
    provenance.update(predicted=predicted, confidence=confidence, class_names=class_names_of(model))
    return Explanation(maps.as_subclass(torch.Tensor), **provenance)


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
