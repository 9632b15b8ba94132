"""Sanity check (Adebayo et al., 2018): the map must change when the weights are randomised.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.checks.sanity import assert_map_changes_when_randomized
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    >>> edge = lambda m, x: x[:, 0].diff(dim=-1, prepend=x[:, 0, :, :1]).abs()
    >>> assert_map_changes_when_randomized(net, torch.rand(2, 1, 4, 4), edge, at_most=0.5)
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_map_changes_when_randomized: spearman_after_randomization <= 0.5 must hold for every sample; 2 of 2 samples fail.
    ...
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from modelaudit._format import format_number
from modelaudit.checks._maps import display_samples, explainer_from, images_of, provenance
from modelaudit.checks.classes import ClassesLike, classes_for
from modelaudit.checks.record import (
    MAX_LISTED,
    Aggregate,
    AuditRecord,
    Range,
    SampleViews,
    check_bound,
    decide,
)
from modelaudit.errors import InvalidInputError
from modelaudit.hooks.layers import LayerSpec
from modelaudit.measure._explainer import Explainer
from modelaudit.measure.sanity import RandomizationResult, randomization_similarity
from modelaudit.measure.similarity import Similarity

__all__ = ["assert_map_changes_when_randomized"]

STRIP_STEPS = 4
"""Randomisation steps whose maps the report shows beside each sample's original map."""

SIMILARITY_RANGE: dict[str, Range] = {"spearman": (-1.0, 1.0), "ssim": (-1.0, 1.0)}
"""Each similarity's range: Spearman's rho and SSIM both lie in [-1, 1]."""


def assert_map_changes_when_randomized(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer | None = None,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    mode: Literal["cascading", "independent"] = "cascading",
    layers: LayerSpec | None = None,
    similarity: Similarity = "spearman",
    seed: int = 0,
    at_step: Literal["all", "last"] = "all",
    aggregate: Aggregate = "all",
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
) -> AuditRecord:
    """Assert the maps change when the model's weights are randomised.

    Runs :func:`modelaudit.randomization_similarity` (on a copy of the model) and bounds the
    similarity of each sample's map to its original map, typically with ``at_most=``. With
    ``at_step="all"`` a sample's value is its worst (most similar) step; with ``"last"``,
    the last step (all layers randomised, in cascading mode).

    Args:
        model: the model (never modified: the randomised models are copies).
        images: ``(N, C, H, W)`` images, or maps returned by a modelaudit explainer: their
            images are explained again with the same method, layer and targets.
        explainer: ``explainer(model, images) -> maps``; not needed when ``images`` are maps
            from an explainer.
        at_most: upper bound on the similarity (exactly one of the two bounds), in
            [-1, 1): ``at_most=1`` would always pass.
        at_least: lower bound, in (-1, 1]: ``at_least=-1`` would always pass.
        mode: ``"cascading"`` (top layer first, keeping earlier randomisations) or
            ``"independent"`` (one layer at a time).
        layers: which layers to randomise (default: every layer with parameters).
        similarity: ``"spearman"`` or ``"ssim"``.
        seed: seed of the random weights.
        at_step: ``"all"`` (worst step per sample) or ``"last"``.
        aggregate: ``"all"``, ``"mean"`` or a fraction of samples that must pass.
        method: recorded; default the maps'.
        layer: recorded; default the maps'.
        classes: ``(N,)`` the class of each sample (default: the class each map explains,
            when the maps carry it); the record then also holds per-class results.
        per_class: every class must pass the bound as well; the failure names the
            classes that do not.

    Raises:
        AuditFailure: the bound does not hold; ``.record`` has the details.
        InvalidInputError: a bad option, or a bound that always or never passes (checked
            before any model is randomised).
    """
    __tracebackhide__ = True
    assertion = "assert_map_changes_when_randomized"
    check, bounds = _checked_options(at_step, similarity, at_least=at_least, at_most=at_most)
    if explainer is None:
        explainer = explainer_from(images, "assert_map_changes_when_randomized")
    x, where = images_of(images), provenance(images, method=method, layer=layer)
    res = _randomized(model, x, explainer, mode, layers, similarity, seed)
    values, step_of = _values_at_step(res.similarity, at_step, worst_is_max=at_most is not None)
    return decide(
        assertion,
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        bounds=bounds,
        aggregate=aggregate,
        notes=_notes(res.steps, res.mean, step_of, mode, similarity),
        details={**_details(res, step_of, at_step=at_step, seed=seed), **where},
        classes=classes_for(images, classes, per_class, assertion),
        samples=_samples(res, x, images),
    )


def _randomized(
    model: nn.Module,
    x: torch.Tensor,
    explainer: Explainer,
    mode: Literal["cascading", "independent"],
    layers: LayerSpec | None,
    similarity: Similarity,
    seed: int,
) -> RandomizationResult:
    """:func:`~modelaudit.measure.randomization_similarity`, keeping :data:`STRIP_STEPS` maps."""
    return randomization_similarity(
        model,
        x,
        explainer,
        mode=mode,
        layers=layers,
        similarity=similarity,
        seed=seed,
        keep_maps=STRIP_STEPS,
    )


def _samples(res: RandomizationResult, x: torch.Tensor, explained: Any) -> SampleViews | None:
    """The original maps, with the maps at the kept randomisation steps as each one's strip."""
    strip = [(f"{name} randomised", maps) for name, maps in res.kept]
    return display_samples(res.original, x, None, explained=explained, strip=strip)


def _details(
    res: RandomizationResult, step_of: torch.Tensor, *, at_step: str, seed: int
) -> dict[str, Any]:
    """What the record keeps of the randomisation: steps, per-step values, worst steps."""
    return {
        "mode": res.mode,
        "steps": res.steps,
        "at_step": at_step,
        "similarity": res.measure,
        "per_step": res.similarity.tolist(),
        "worst_step": [res.steps[int(s)] for s in step_of],
        "seed": seed,
    }


def _checked_options(
    at_step: str, similarity: Similarity, *, at_least: float | None, at_most: float | None
) -> tuple[str, Range | None]:
    """Validate ``at_step`` and the bound; return the check's name and the metric's range.

    Raises:
        InvalidInputError: a bad ``at_step``, or a bound that always or never passes.
    """
    __tracebackhide__ = True
    if at_step not in ("all", "last"):
        raise InvalidInputError(f"at_step must be 'all' or 'last'; got {at_step!r}")
    assertion, check = "assert_map_changes_when_randomized", f"{similarity}_after_randomization"
    bounds = SIMILARITY_RANGE.get(similarity)
    check_bound(assertion, check, at_least=at_least, at_most=at_most, bounds=bounds)
    return check, bounds


def _values_at_step(
    sim: torch.Tensor, at_step: str, *, worst_is_max: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's similarity and the step it comes from (``sim`` is ``(steps, N)``).

    ``at_step="last"`` takes the last step; otherwise the worst step: the most similar
    (``worst_is_max``, for an ``at_most`` bound) or the least similar.
    """
    if at_step == "last":
        return sim[-1], torch.full((sim.shape[1],), sim.shape[0] - 1)
    if worst_is_max:
        values, step_of = sim.max(dim=0)
    else:
        values, step_of = sim.min(dim=0)
    return values, step_of


def _notes(
    steps: list[str], means: Any, step_of: torch.Tensor, mode: str, similarity: str
) -> list[str]:
    per_step = ", ".join(
        f"{name!r}: {format_number(float(v))}" for name, v in zip(steps, means, strict=True)
    )
    worst = ", ".join(f"{i}: {steps[int(s)]!r}" for i, s in enumerate(step_of[:MAX_LISTED]))
    more = " ..." if len(step_of) > MAX_LISTED else ""
    return [
        f"mode: {mode}; steps top layer first; mean {similarity} per step: {per_step}",
        f"worst step per sample: {worst}{more}",
    ]
