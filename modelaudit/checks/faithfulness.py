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

from modelaudit.checks._maps import display_samples, provenance
from modelaudit.checks.record import Aggregate, AuditRecord, Range, check_bound, decide
from modelaudit.errors import InvalidInputError
from modelaudit.measure._validate import check_maps
from modelaudit.measure.faithfulness import Fill, deletion_auc, insertion_auc
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
) -> AuditRecord:
    """Assert deletion AUC (typically ``at_most=``) or insertion AUC (``at_least=``).

    See :func:`modelaudit.deletion_auc` / :func:`modelaudit.insertion_auc`.

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
        fill: what replaces deleted pixels / starts insertion: ``"zeros"``, ``"blur"``,
            ``"mean"`` or a tensor; default ``"zeros"`` for deletion, ``"blur"`` for
            insertion.
        steps: pixels change in this many equal steps.
        forward_batch: perturbed images per forward pass.
        aggregate: ``"all"``, ``"mean"`` or a fraction of samples that must pass.
        method: recorded; default the maps'.
        layer: recorded; default the maps'.

    Raises:
        AuditFailure: the bound does not hold; ``.record`` has the details.
        InvalidInputError: a bad option, missing images, or (class targets) a bound that
            always or never passes, checked before any forward pass.
    """
    __tracebackhide__ = True
    images = _checked_images(metric, maps, images)
    if target is None:
        target = getattr(maps, "targets", None)
    bounds = None if callable(target) else PROBABILITY_AUC_RANGE
    check = f"{metric}_auc"
    check_bound("assert_faithful", check, at_least=at_least, at_most=at_most, bounds=bounds)
    chosen: Fill = fill if fill is not None else ("zeros" if metric == "deletion" else "blur")
    auc = deletion_auc if metric == "deletion" else insertion_auc
    values = auc(
        model, images, maps, target=target, fill=chosen, steps=steps, forward_batch=forward_batch
    )
    fill_name = chosen if isinstance(chosen, str) else "tensor"
    return decide(
        "assert_faithful",
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        bounds=bounds,
        aggregate=aggregate,
        notes=[
            f"{metric} AUC of the target's softmax probability over {steps} steps, fill {fill_name}"
        ],
        details={
            "metric": metric,
            "fill": fill_name,
            "steps": steps,
            **provenance(maps, method=method, layer=layer),
        },
        samples=display_samples(check_maps(maps), images, None),
    )


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
