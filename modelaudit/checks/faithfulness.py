"""Faithfulness check: deleting the map's hottest pixels destroys the prediction (RISE).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.checks.faithfulness import assert_faithful
    >>> class Bright(nn.Module):             # logit of class 0 = 8 * mean brightness
    ...     def forward(self, x):
    ...         s = 8 * x.mean(dim=(1, 2, 3))
    ...         return torch.stack([s, torch.zeros_like(s)], 1)
    >>> images = torch.zeros(1, 1, 4, 4)
    >>> images[0, 0, :2] = 1.0                # the bright top half
    >>> maps = images[:, 0].clone()            # points at it
    >>> rec = assert_faithful(Bright(), maps, images=images, target=0, at_most=0.7, steps=8)
    >>> round(rec.obtained, 3)
    0.663
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from modelaudit._format import format_number
from modelaudit.checks._maps import display_samples, provenance
from modelaudit.checks.classes import ClassesLike, classes_for
from modelaudit.checks.record import (
    Aggregate,
    AuditRecord,
    Curves,
    Range,
    SampleViews,
    check_bound,
    decide,
)
from modelaudit.errors import InvalidInputError
from modelaudit.measure._validate import check_maps
from modelaudit.measure.faithfulness import Fill, curve_auc, perturbation_curve
from modelaudit.targets import Target

__all__ = ["assert_faithful"]

PROBABILITY_AUC_RANGE: Range = (0.0, 1.0)
"""Deletion and insertion AUCs of a softmax probability lie in [0, 1] (the trapezoidal
rule over fractions 0..1 of a curve in [0, 1]). A callable target's raw scores are
unbounded, so its AUCs are too."""


def assert_faithful(
    model: nn.Module,
    maps: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    metric: Literal["deletion", "insertion"] = "deletion",
    at_most: float | None = None,
    at_least: float | None = None,
    target: Target = None,
    fill: Fill | None = None,
    steps: int = 20,
    forward_batch: int = 64,
    aggregate: Aggregate = "all",
    method: str | None = None,
    layer: str | None = None,
    random_reference: bool = True,
    classes: ClassesLike | None = None,
    per_class: bool = False,
) -> AuditRecord:
    """Assert deletion AUC (typically ``at_most=``) or insertion AUC (``at_least=``).

    See :func:`modelaudit.deletion_auc` / :func:`modelaudit.insertion_auc`. The record
    keeps the mean curve for the report's plot and, with ``random_reference``, the curve
    of the same images with pixels taken in a random order (seeded, one more set of
    forward passes): the AUC a map must beat to say anything. It is reported, not gated.

    Args:
        model: the model.
        maps: ``(N, H, W)`` maps; an explainer's maps also bring their images and targets.
        images: the ``(N, C, H, W)`` images the maps explain (default: the maps').
        metric: ``"deletion"`` or ``"insertion"``.
        at_most: upper bound on the AUC (exactly one of the two bounds); in [0, 1) for
            class targets (their AUC lies in [0, 1], so ``at_most=1`` always passes).
        at_least: lower bound; in (0, 1] for class targets.
        target: the class whose probability is tracked (default: the maps' targets, else
            the predicted class).
        fill: what replaces deleted pixels / starts insertion: ``"zeros"`` (deletion's
            default), ``"blur"`` (insertion's), ``"mean"`` or a tensor.
        steps: pixels change in this many equal steps.
        forward_batch: perturbed images per forward pass.
        aggregate: ``"all"``, ``"mean"`` or a fraction of samples that must pass.
        method, layer: recorded; default the maps'.
        random_reference: also compute the random-order curve (doubles the forwards).
        classes: ``(N,)`` the class of each sample (default: the maps' targets): per-class
            results; per_class: every class must pass the bound as well.

    Raises:
        AuditFailure: the bound does not hold; ``.record`` has the details.
        InvalidInputError: a bad option, missing images, or (class targets) a bound that
            always or never passes, checked before any forward pass.
    """
    __tracebackhide__ = True
    images = _checked_images(metric, maps, images)
    target = getattr(maps, "targets", None) if target is None else target
    bounds = None if callable(target) else PROBABILITY_AUC_RANGE
    check = f"{metric}_auc"
    check_bound("assert_faithful", check, at_least=at_least, at_most=at_most, bounds=bounds)
    where = provenance(maps, method=method, layer=layer)
    chosen: Fill = fill if fill is not None else ("zeros" if metric == "deletion" else "blur")
    curves, reference = _curves(
        model, images, maps, metric, target, chosen, steps, forward_batch, random_reference
    )
    fill_name = chosen if isinstance(chosen, str) else "tensor"
    return decide(
        "assert_faithful",
        check,
        curve_auc(curves),
        at_least=at_least,
        at_most=at_most,
        bounds=bounds,
        aggregate=aggregate,
        notes=_notes(metric, steps, fill_name, reference),
        details={"metric": metric, "fill": fill_name, "steps": steps, **where},
        classes=classes_for(maps, classes, per_class, "assert_faithful"),
        samples=_samples(maps, images, _plot(metric, curves, reference)),
    )


def _samples(maps: torch.Tensor, images: torch.Tensor, plot: Curves) -> SampleViews | None:
    return display_samples(check_maps(maps), images, None, explained=maps, curves=plot)


def _curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    metric: str,
    target: Target,
    fill: Fill,
    steps: int,
    forward_batch: int,
    random_reference: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (N, steps + 1) curves in the maps' order and, if asked, in a random order."""
    mode: Literal["deletion", "insertion"] = "deletion" if metric == "deletion" else "insertion"

    def curve(order: torch.Tensor) -> torch.Tensor:
        return perturbation_curve(
            model,
            images,
            order,
            mode=mode,
            target=target,
            fill=fill,
            steps=steps,
            forward_batch=forward_batch,
        )

    reference = curve(_random_order(check_maps(maps))) if random_reference else None
    return curve(maps), reference


def _notes(metric: str, steps: int, fill: str, reference: torch.Tensor | None) -> list[str]:
    """What was measured, and the random-order AUC when there is one."""
    notes = [f"{metric} AUC of the target's softmax probability over {steps} steps, fill {fill}"]
    if reference is not None:
        mean_ref = float(curve_auc(reference).mean())
        notes.append(f"random pixel order (seed 0): mean AUC {format_number(mean_ref)}")
    return notes


def _random_order(maps: torch.Tensor) -> torch.Tensor:
    """Maps whose pixel order is random (seed 0, the global RNG untouched)."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(maps.shape, generator=gen).to(maps.device)


def _plot(metric: str, curves: torch.Tensor, reference: torch.Tensor | None) -> Curves:
    """The mean curve (and the random-order one) with their mean AUCs, for the report.

    Example:
        >>> plot = _plot("deletion", torch.tensor([[1.0, 0.0, 0.0]]), None)
        >>> plot.x.tolist(), plot.lines[0][0], plot.lines[0][2]
        ([0.0, 0.5, 1.0], 'map order', 0.25)
    """
    c = curves.detach().float().cpu()
    x = torch.linspace(0.0, 1.0, c.shape[1])
    lines = (("map order", c.mean(dim=0), float(curve_auc(c).mean())),)
    ref = None
    if reference is not None:
        r = reference.detach().float().cpu()
        ref = ("random order", r.mean(dim=0), float(curve_auc(r).mean()))
    done = "deleted" if metric == "deletion" else "inserted"
    return Curves(x, lines, ref, x_label=f"fraction of pixels {done}", y_label="probability")


def _checked_images(metric: str, maps: torch.Tensor, images: torch.Tensor | None) -> torch.Tensor:
    """Validate ``metric`` and return the images the maps explain (``images`` or the maps').

    Raises:
        InvalidInputError: an unknown metric, or no images given or carried by the maps.
    """
    __tracebackhide__ = True
    if metric not in ("deletion", "insertion"):
        raise InvalidInputError(f"metric must be 'deletion' or 'insertion'; got {metric!r}")
    images = images if images is not None else getattr(maps, "inputs", None)
    if images is None:
        raise InvalidInputError(
            "assert_faithful needs the images the maps explain: pass images=, or maps "
            "returned by a modelaudit explainer (they carry their images)"
        )
    return images
