"""Assertions: turn a metric into a pass or a structured, readable failure.

Each ``assert_*`` computes one metric per sample, compares it with a bound given as a keyword
(``at_least=`` or ``at_most=``, exactly one) under an aggregation rule, builds an
:class:`~modelaudit.records.AuditRecord`, emits it (pass or fail) to any open
:func:`~modelaudit.records.collect_records` block, returns it on success and raises
:class:`~modelaudit.errors.AuditFailure` (an ``AssertionError``) carrying it on failure.

Aggregation (``aggregate=``):

- ``"all"`` (default): every sample must satisfy the bound; *obtained* is the worst sample;
- ``"mean"``: the mean over samples must satisfy it; *obtained* is the mean;
- a float ``q`` in ``(0, 1]``: at least a fraction ``q`` of the samples must satisfy it;
  *obtained* is the value of the ``ceil(q * N)``-th best sample (it satisfies the bound
  exactly when enough samples do).

``failing`` always lists the samples whose own value breaks the bound. When the check fails
and ``current_settings().report_dir`` is set, overlays of the samples are written there by
:func:`modelaudit.report.overlay.write_overlays` and their paths end the message.

Example:
    >>> import torch
    >>> import modelaudit as ma
    >>> maps = torch.zeros(2, 8, 8)
    >>> maps[0, 1:3, 1:3] = 1.0                    # inside the box
    >>> maps[1, 6:8, 6:8] = 1.0                    # in the opposite corner
    >>> boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4]])
    >>> ma.assert_mass_in_box(maps[:1], boxes[:1], at_least=0.6).passed
    True
    >>> ma.assert_mass_in_box(maps, boxes, at_least=0.6)
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_mass_in_box: mass_in_box >= 0.6 must hold for every sample; 1 of 2 samples fail.
    ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.hooks.layers import LayerSpec
from modelaudit.measure._explainer import Explainer
from modelaudit.measure._validate import Region, RegionLike, as_region, check_images, check_maps
from modelaudit.measure.faithfulness import Baseline, deletion_auc, insertion_auc
from modelaudit.measure.localization import (
    chance_level,
    iou,
    mass_in_box,
    mass_in_mask,
    pointing_game,
)
from modelaudit.measure.sanity import randomization_similarity
from modelaudit.measure.similarity import Similarity
from modelaudit.measure.stability import ChangeMeasure, flip_equivariance, noise_stability
from modelaudit.records import AuditRecord, Direction, SampleViews, emit
from modelaudit.settings import current_settings
from modelaudit.targets import Target

__all__ = [
    "Aggregate",
    "assert_faithful",
    "assert_iou",
    "assert_map_changes_when_randomized",
    "assert_mass_in_box",
    "assert_pointing_game",
    "assert_stable",
]

Aggregate = Literal["all", "mean"] | float

MAX_LISTED = 10  # failing samples spelled out in a message; the record keeps them all


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _bound(at_least: float | None, at_most: float | None) -> tuple[float, Direction]:
    if (at_least is None) == (at_most is None):
        raise InvalidInputError(
            "give exactly one bound as a keyword: at_least=... (higher is better) or "
            "at_most=... (lower is better)"
        )
    value, direction = (at_least, "at_least") if at_least is not None else (at_most, "at_most")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInputError(f"{direction} must be a number; got {value!r}")
    return float(value), direction  # type: ignore[return-value]


def _check_aggregate(aggregate: Aggregate) -> None:
    if aggregate in ("all", "mean"):
        return
    if (
        isinstance(aggregate, bool)
        or not isinstance(aggregate, int | float)
        or not 0 < aggregate <= 1
    ):
        raise InvalidInputError(
            f"aggregate must be 'all', 'mean' or a fraction of samples in (0, 1]; got {aggregate!r}"
        )


def _ok(v: float, bound: float, direction: Direction) -> bool:
    return v >= bound if direction == "at_least" else v <= bound


def _badness(v: float, direction: Direction) -> float:
    """Sort key, worst first."""
    if math.isnan(v):
        return -math.inf
    return v if direction == "at_least" else -v


def _display_samples(
    maps: torch.Tensor | None,
    images: torch.Tensor | None,
    region: Region | None,
) -> SampleViews | None:
    if maps is None and images is None:
        return None
    shown_maps = None
    if maps is not None:
        flat = maps.detach().float().cpu().clamp(min=0).flatten(1)
        top = flat.amax(dim=1, keepdim=True)
        shown_maps = torch.where(top > 0, flat / top.clamp(min=1e-30), 0.0).view(maps.shape)
    shown_images = None
    if images is not None:
        x = images.detach().float().cpu()
        if x.numel() and (x.min() < 0 or x.max() > 1):
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
            x = torch.where(span > 0, (x - lo) / span.clamp(min=1e-30), 0.0)
        shown_images = x
    boxes = masks = None
    if region is not None:
        if region.boxes is not None:
            boxes = region.boxes.cpu()
        else:
            masks = region.masks.cpu()
    return SampleViews(images=shown_images, maps=shown_maps, boxes=boxes, masks=masks)


def _write_overlays(record: AuditRecord) -> None:
    directory = current_settings().report_dir
    if directory is None or record.samples is None:
        return
    try:
        from modelaudit.report.overlay import write_overlays

        record.overlays = list(write_overlays(record, directory))
    except Exception as exc:  # the audit failure matters more than its pictures
        record.details["overlay_error"] = f"{type(exc).__name__}: {exc}"


def _conclude(
    fn: str,
    check: str,
    values: torch.Tensor,
    *,
    at_least: float | None,
    at_most: float | None,
    aggregate: Aggregate,
    chance: torch.Tensor | None = None,
    details: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    samples: SampleViews | None = None,
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Compare ``values`` (N,) with the bound, build and emit the record, raise on failure."""
    __tracebackhide__ = True
    bound, direction = _bound(at_least, at_most)
    _check_aggregate(aggregate)
    vals = [float(v) for v in values.detach().double().cpu().reshape(-1).tolist()]
    n = len(vals)
    op = ">=" if direction == "at_least" else "<="
    passing = [_ok(v, bound, direction) for v in vals]
    failing = [i for i, ok in enumerate(passing) if not ok]
    best_first = sorted(vals, key=lambda v: -_badness(v, direction))
    if aggregate == "all":
        obtained = best_first[-1]
        label, rule = "all", "must hold for every sample"
        worst = min(range(n), key=lambda i: _badness(vals[i], direction))
        how = f"worst sample, index {worst}" if n > 1 else "the only sample"
    elif aggregate == "mean":
        obtained = sum(vals) / n
        label, rule, how = "mean", f"must hold for the mean over {n} samples", "mean"
    else:
        need = max(1, math.ceil(float(aggregate) * n - 1e-9))
        obtained = best_first[need - 1]
        label = "fraction"
        rule = f"must hold for at least {float(aggregate):.0%} of samples ({need} of {n})"
        how = f"the {_ordinal(need)} best of {n} samples"
    passed = _ok(obtained, bound, direction)

    info: dict[str, Any] = dict(details or {})
    info["failing_values"] = [vals[i] for i in failing]
    if label == "fraction":
        info["required_fraction"] = float(aggregate)
        info["passing_fraction"] = (n - len(failing)) / n
    if method is not None:
        info["method"] = method
    if layer is not None:
        info["layer"] = layer
    chance_mean = None
    if chance is not None:
        per = [float(c) for c in chance.detach().double().cpu().reshape(-1).tolist()]
        info["chance_per_sample"] = per
        chance_mean = sum(per) / len(per)

    record = AuditRecord(
        check=check,
        passed=passed,
        values=vals,
        bound=bound,
        direction=direction,
        obtained=obtained,
        failing=failing,
        aggregate=label,
        chance=chance_mean,
        details=info,
        samples=samples,
    )
    if passed:
        record.message = (
            f"{fn}: {check} {op} {bound:g} held ({label}): obtained {_fmt(obtained)}"
            + (f", chance {_fmt(chance_mean)}" if chance_mean is not None else "")
        )
        emit(record)
        return record

    _write_overlays(record)
    if label == "fraction":
        count = f"{n - len(failing)} of {n} samples ({(n - len(failing)) / n:.0%}) satisfy it."
    else:
        count = f"{len(failing)} of {n} sample{'s' if n != 1 else ''} fail."
    lines = [
        f"{fn}: {check} {op} {bound:g} {rule}; {count}",
        f"  obtained: {_fmt(obtained)} ({how}); mean {_fmt(sum(vals) / n)}",
        f"  expected: {op} {bound:g}",
    ]
    if chance_mean is not None:
        lines.append(
            f"  chance:   {_fmt(chance_mean)} (what a uniform map scores; mean over samples)"
        )
    if failing:
        ordered = sorted(failing, key=lambda i: _badness(vals[i], direction))
        lines.append("  failing samples (index: value), worst first:")
        lines += [f"    {i}: {_fmt(vals[i])}" for i in ordered[:MAX_LISTED]]
        if len(ordered) > MAX_LISTED:
            lines.append(
                f"    ... and {len(ordered) - MAX_LISTED} more (all in the record's .failing)"
            )
    lines += [f"  {note}" for note in notes]
    where = ", ".join(f"{k}: {info[k]}" for k in ("method", "layer") if k in info)
    if where:
        lines.append(f"  {where}")
    if record.overlays:
        lines.append(f"  overlays written to {current_settings().report_dir}:")
        lines += [f"    {p}" for p in record.overlays[:MAX_LISTED]]
        if len(record.overlays) > MAX_LISTED:
            lines.append(f"    ... and {len(record.overlays) - MAX_LISTED} more")
    elif "overlay_error" in info:
        lines.append(f"  overlays could not be written: {info['overlay_error']}")
    record.message = "\n".join(lines)
    emit(record)
    raise AuditFailure(record.message, record)


def _region_inputs(maps: torch.Tensor, boxes: RegionLike) -> tuple[torch.Tensor, Region]:
    m = check_maps(maps)
    return m, as_region(boxes, (m.shape[1], m.shape[2]), m.shape[0])


def _images(images: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if images is None else check_images(images, n=n)


def assert_mass_in_box(
    maps: torch.Tensor,
    boxes: RegionLike,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Assert the share of each map's mass inside its box (or bool mask).

    ``at_most=`` expresses "the model does not look here" (a watermark, a border).
    See :func:`modelaudit.mass_in_box`; the chance level is the box's area fraction.

    Args:
        maps: ``(N, H, W)`` heat maps.
        boxes: ``(N, 4)`` XYXY boxes (exclusive x2, y2), per-sample box lists, or a bool mask.
        at_least: lower bound on the metric (exactly one of the two bounds).
        at_most: upper bound on the metric.
        aggregate: ``"all"``, ``"mean"`` or a fraction of samples that must pass.
        images: the ``(N, C, H, W)`` inputs, so a report can draw overlays.
        method: the explanation method, recorded (e.g. ``"gradcam"``).
        layer: the explained layer, recorded.

    Returns:
        the passing :class:`~modelaudit.records.AuditRecord`.

    Raises:
        AuditFailure: the bound does not hold; ``.record`` has the details.

    Example:
        >>> import torch
        >>> maps = torch.ones(1, 4, 4)
        >>> assert_mass_in_box(maps, torch.tensor([[0, 0, 2, 4]]), at_least=0.5).obtained
        0.5
    """
    __tracebackhide__ = True
    m, region = _region_inputs(maps, boxes)
    if region.kind == "mask":
        check, values = "mass_in_mask", mass_in_mask(m, region.masks)
    else:
        check, values = "mass_in_box", mass_in_box(m, boxes)
    return _conclude(
        "assert_mass_in_box",
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        chance=chance_level(region.masks),
        samples=_display_samples(m, _images(images, m.shape[0]), region),
        method=method,
        layer=layer,
    )


def assert_pointing_game(
    maps: torch.Tensor,
    boxes: RegionLike,
    *,
    tolerance: float = 0,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Assert the pointing game: each map's maximum falls in its box (or mask).

    Per-sample values are 1.0 (hit) or 0.0 (miss), fractional only for tied maxima (see
    :func:`modelaudit.pointing_game`). For a hit *rate*, use ``aggregate="mean"``. Other
    arguments as in :func:`assert_mass_in_box`.

    Example:
        >>> import torch
        >>> maps = torch.zeros(4, 8, 8)
        >>> maps[:3, 1, 1] = 1.0                           # three hits, one zero map (a miss)
        >>> rec = assert_pointing_game(maps, torch.tensor([[0, 0, 3, 3]] * 4),
        ...                            at_least=0.75, aggregate="mean")
        >>> rec.obtained, rec.failing
        (0.75, [3])
    """
    __tracebackhide__ = True
    m, region = _region_inputs(maps, boxes)
    values = pointing_game(
        m, region.masks if region.boxes is None else region.boxes, tolerance=tolerance
    )
    return _conclude(
        "assert_pointing_game",
        "pointing_game",
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        chance=chance_level(region.masks, tolerance=tolerance),
        details={"tolerance": float(tolerance)},
        samples=_display_samples(m, _images(images, m.shape[0]), region),
        method=method,
        layer=layer,
    )


def assert_iou(
    maps: torch.Tensor,
    boxes: RegionLike,
    *,
    threshold: float | Literal["otsu"] | None = None,
    top_k: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Assert the IoU of each thresholded map with its box (or mask).

    ``threshold`` / ``top_k`` as in :func:`modelaudit.iou` (default: 0.5 of the maximum).
    Other arguments as in :func:`assert_mass_in_box`.

    Example:
        >>> import torch
        >>> maps = torch.zeros(1, 4, 4)
        >>> maps[0, :2, :2] = 1.0
        >>> assert_iou(maps, torch.tensor([[0, 0, 2, 2]]), at_least=0.9).obtained
        1.0
    """
    __tracebackhide__ = True
    m, region = _region_inputs(maps, boxes)
    given = region.masks if region.boxes is None else region.boxes
    values = iou(m, given, threshold=threshold, top_k=top_k)
    binarise: dict[str, Any] = (
        {"top_k": top_k}
        if top_k is not None
        else {"threshold": 0.5 if threshold is None else threshold}
    )
    return _conclude(
        "assert_iou",
        "iou",
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        chance=chance_level(region.masks),
        details=binarise,
        samples=_display_samples(m, _images(images, m.shape[0]), region),
        method=method,
        layer=layer,
    )


def assert_map_changes_when_randomized(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer,
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
) -> AuditRecord:
    """Assert the maps change when the model's weights are randomised (Adebayo et al.).

    Runs :func:`modelaudit.randomization_similarity` (on a copy of the model) and bounds the
    similarity of each sample's map to its original map, typically with ``at_most=``. With
    ``at_step="all"`` a sample's value is its worst (most similar) step; with ``"last"``,
    the last step (all layers randomised, in cascading mode).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> edge = lambda m, x: x[:, 0].diff(dim=-1, prepend=x[:, 0, :, :1]).abs()
        >>> assert_map_changes_when_randomized(net, torch.rand(2, 1, 4, 4), edge, at_most=0.5)
        Traceback (most recent call last):
        ...
        modelaudit.errors.AuditFailure: assert_map_changes_when_randomized: spearman_after_randomization <= 0.5 must hold for every sample; 2 of 2 samples fail.
        ...
    """
    __tracebackhide__ = True
    if at_step not in ("all", "last"):
        raise InvalidInputError(f"at_step must be 'all' or 'last'; got {at_step!r}")
    res = randomization_similarity(
        model, images, explainer, mode=mode, layers=layers, similarity=similarity, seed=seed
    )
    sim = res.similarity
    if at_step == "last":
        values, step_of = sim[-1], torch.full((sim.shape[1],), sim.shape[0] - 1)
    elif at_most is not None:
        values, step_of = sim.max(dim=0)
    else:
        values, step_of = sim.min(dim=0)
    means = ", ".join(
        f"{name!r}: {_fmt(float(v))}" for name, v in zip(res.steps, res.mean, strict=True)
    )
    notes = [
        f"mode: {mode}; steps top layer first; mean {similarity} per step: {means}",
        "worst step per sample: "
        + ", ".join(f"{i}: {res.steps[int(s)]!r}" for i, s in enumerate(step_of[:MAX_LISTED]))
        + (" ..." if len(step_of) > MAX_LISTED else ""),
    ]
    return _conclude(
        "assert_map_changes_when_randomized",
        f"{similarity}_after_randomization",
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        details={
            "mode": mode,
            "steps": res.steps,
            "at_step": at_step,
            "similarity": similarity,
            "per_step": sim.tolist(),
            "worst_step": [res.steps[int(s)] for s in step_of],
            "seed": seed,
        },
        notes=notes,
        samples=_display_samples(res.original, images, None),
        method=method,
        layer=layer,
    )


def assert_faithful(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    metric: Literal["deletion", "insertion"] = "deletion",
    at_most: float | None = None,
    at_least: float | None = None,
    target: Target = None,
    baseline: Baseline | None = None,
    steps: int = 20,
    batch_size: int = 64,
    aggregate: Aggregate = "all",
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Assert deletion AUC (typically ``at_most=``) or insertion AUC (``at_least=``).

    See :func:`modelaudit.deletion_auc` / :func:`modelaudit.insertion_auc`; the default
    baseline is ``"zeros"`` for deletion and ``"blur"`` for insertion.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Bright(nn.Module):             # logit of class 0 = 8 * mean brightness
        ...     def forward(self, x):
        ...         s = 8 * x.mean(dim=(1, 2, 3))
        ...         return torch.stack([s, torch.zeros_like(s)], 1)
        >>> images = torch.zeros(1, 1, 4, 4)
        >>> images[0, 0, :2] = 1.0                # the bright top half
        >>> maps = images[:, 0].clone()            # points at it
        >>> rec = assert_faithful(Bright(), images, maps, target=0, at_most=0.7, steps=8)
        >>> round(rec.obtained, 3)
        0.663
    """
    __tracebackhide__ = True
    if metric not in ("deletion", "insertion"):
        raise InvalidInputError(f"metric must be 'deletion' or 'insertion'; got {metric!r}")
    fn = deletion_auc if metric == "deletion" else insertion_auc
    base: Baseline = (
        baseline if baseline is not None else ("zeros" if metric == "deletion" else "blur")
    )
    values = fn(
        model, images, maps, target=target, baseline=base, steps=steps, batch_size=batch_size
    )
    return _conclude(
        "assert_faithful",
        f"{metric}_auc",
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        details={
            "metric": metric,
            "baseline": base if isinstance(base, str) else "tensor",
            "steps": steps,
        },
        notes=[
            f"{metric} AUC of the target's softmax probability over {steps} steps, "
            f"baseline {base if isinstance(base, str) else 'tensor'!s}"
        ],
        samples=_display_samples(check_maps(maps), images, None),
        method=method,
        layer=layer,
    )


def assert_stable(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    perturbation: Literal["noise", "hflip", "vflip"] = "noise",
    sigma: float = 0.02,
    repeats: int = 4,
    seed: int = 0,
    measure: ChangeMeasure = "spearman",
    aggregate: Aggregate = "all",
    method: str | None = None,
    layer: str | None = None,
) -> AuditRecord:
    """Assert the map changes little under input noise, or follows a flip of the image.

    ``perturbation="noise"``: a sample's value is its largest change over ``repeats``
    Gaussian noise draws of std ``sigma`` (:func:`modelaudit.noise_stability`);
    ``"hflip"`` / ``"vflip"``: the change between the flipped image's map and the flipped map
    (:func:`modelaudit.flip_equivariance`). ``measure`` is ``"spearman"`` (1 - rank
    correlation) or ``"mean_abs"``; bound it with ``at_most=``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> square = lambda m, x: x[:, 0] ** 2
        >>> rec = assert_stable(nn.Identity(), torch.rand(2, 1, 6, 6), square, at_most=0.5)
        >>> rec.passed
        True
    """
    __tracebackhide__ = True
    details: dict[str, Any] = {"perturbation": perturbation, "measure": measure}
    if perturbation == "noise":
        res = noise_stability(
            model, images, explainer, sigma=sigma, repeats=repeats, seed=seed, measure=measure
        )
        values, original = res.per_sample, res.original
        details.update(sigma=sigma, repeats=repeats, seed=seed, per_draw=res.changes.tolist())
        note = f"largest change over {repeats} noise draws of std {sigma:g} (seed {seed})"
    elif perturbation in ("hflip", "vflip"):
        direction: Literal["horizontal", "vertical"] = (
            "horizontal" if perturbation == "hflip" else "vertical"
        )
        values, original = flip_equivariance(
            model, images, explainer, direction=direction, measure=measure
        )
        note = f"change between the {direction}ly flipped image's map and the flipped map"
    else:
        raise InvalidInputError(
            f"perturbation must be 'noise', 'hflip' or 'vflip'; got {perturbation!r}"
        )
    what = "1 - spearman" if measure == "spearman" else "mean |difference|"
    return _conclude(
        "assert_stable",
        f"map_change_{perturbation}",
        values,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        details=details,
        notes=[f"{note}; change = {what}"],
        samples=_display_samples(original, images, None),
        method=method,
        layer=layer,
    )
