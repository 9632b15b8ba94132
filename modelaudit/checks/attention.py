"""Does the model look at the object? One calibrated gate that needs no bound from the user.

:func:`assert_looks_at_object` scores each map's mass in its box (or mask) in units that
mean the same on any data: ``(mass - chance) / (ceiling - chance)``, where *chance* is
what a uniform map scores (the box's share of the image) and *ceiling* what an ideal map
scores at the explained layer's resolution (the box itself, pooled to the layer's grid and
upsampled as the explainers do; see :mod:`modelaudit.measure.calibration`). 0 is a uniform
map, 1 the best the layer can show, below 0 a map that avoids the object. It also checks
that each map scores higher on its own box than on the other images' boxes (a paired test
against the shuffled-box null), so a model that always looks at the same place cannot pass
on data whose objects happen to sit there.

The default bound was chosen on the tuning split of the calibration study and checked on a
held-out split (other cue kinds, object sizes, input sizes and an architecture never used
for tuning); README "How the bounds were chosen" has the tables.

Example:
    >>> import torch
    >>> import modelaudit as ma
    >>> boxes = torch.tensor([[4, 4, 12, 12], [16, 16, 28, 28], [2, 18, 12, 30]] * 4)
    >>> on_object = ma.measure.ideal_maps(boxes, (32, 32), (8, 8))  # the best an 8x8 layer shows
    >>> ma.assert_looks_at_object(on_object, boxes, grid=(8, 8)).obtained
    1.0
    >>> corner = torch.zeros(12, 32, 32)
    >>> corner[:, :4, 28:] = 1.0                    # every map in the top-right corner
    >>> ma.assert_looks_at_object(corner, boxes, grid=(8, 8))
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_looks_at_object: calibrated_mass >= 0.23 must hold for the mean over 12 samples, and own boxes must beat shuffled boxes (p < 0.01); 12 of 12 samples fail.
    ...
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from modelaudit.checks._maps import display_samples, provenance, where_it_looks
from modelaudit.checks.classes import ByClass, ClassesLike, classes_for
from modelaudit.checks.record import Aggregate, AuditRecord, conclude, judge
from modelaudit.checks.scanned import kept_samples, scan_overview, scan_provenance
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.layer_choice import warn_if_coarse
from modelaudit.measure._validate import RegionLike, as_region, check_maps
from modelaudit.measure.calibration import (
    calibrated_score,
    localization_ceiling,
    paired_lift,
    shuffled_null,
)
from modelaudit.measure.localization import chance_level, mass_in_box, mass_in_mask
from modelaudit.measure.scanning import Scan

__all__ = ["LOOKS_AT_OBJECT", "NULL_ALPHA", "assert_looks_at_object"]

LOOKS_AT_OBJECT = 0.23
"""Default bound on the mean calibrated mass: the midpoint of the gap between the verified
clean models (lowest 0.45) and the shortcut models (highest 0.02) on the tuning split of
the calibration study (``scripts/calibration``), LayerCAM at :func:`choose_layer`'s layer.
On the held-out and confirmation splits: 100% sensitivity and specificity (README "How the
bounds were chosen")."""

NULL_ALPHA = 0.01
"""The own boxes must beat the shuffled boxes at this one-sided significance level (fixed
beforehand, not tuned: the study's objects sit anywhere, so no model there reads a fixed
place the null test exists to catch)."""


def _grid(maps: Any, grid: tuple[int, int] | None, size: tuple[int, int]) -> tuple[int, int]:
    if grid is not None:
        return (int(grid[0]), int(grid[1]))
    found = getattr(maps, "grid", None)
    return found if found is not None else size


def _null_note(lift: Any, alpha: float) -> str:
    verdict = "beat" if lift.p_value < alpha else "do NOT beat"
    return (
        f"own boxes {verdict} the other images' boxes: mass {lift.mean:+.3g} on average "
        f"(paired effect {lift.effect:.2g}, one-sided p = {lift.p_value:.2g}, alpha {alpha:g})"
    )


def assert_looks_at_object(
    maps: torch.Tensor | Scan,
    boxes: RegionLike | None = None,
    *,
    at_least: float = LOOKS_AT_OBJECT,
    aggregate: Aggregate = "mean",
    alpha: float | None = NULL_ALPHA,
    grid: tuple[int, int] | None = None,
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
) -> AuditRecord:
    """Assert the maps put their mass on the object, in calibrated units (module doc).

    Args:
        maps: ``(N, H, W)`` heat maps; an explainer's output also carries its layer's grid,
            images, method and layer. Or a :class:`~modelaudit.measure.scanning.Scan` of a
            whole dataset (:func:`modelaudit.scan`; then no ``boxes``).
        boxes: ``(N, 4)`` XYXY boxes (exclusive x2, y2), per-sample box lists, or a bool mask.
        at_least: bound on the calibrated mass (0 uniform, 1 ideal at the layer's grid).
        aggregate: ``"mean"`` (default), ``"all"`` or a fraction of samples.
        alpha: the own boxes must score higher than the shuffled boxes (paired one-sided
            Wilcoxon test, p < alpha); None skips this condition. Needs N with
            ``2**-N < alpha`` (7 samples at the default 0.01).
        grid: ``(h, w)`` of the explained layer, if ``maps`` do not carry it (plain tensors:
            default the map size, i.e. a full-resolution method).
        images, method, layer: for the report, if ``maps`` do not carry them.
        classes: ``(N,)`` the class of each sample (default: the class each map explains);
            the record then holds the calibrated mass per class.
        per_class: every class must meet ``at_least`` as well (the shuffled-box test
            stays dataset-wide); the failure names the classes that do not.

    Returns:
        the passing :class:`~modelaudit.checks.record.AuditRecord`; ``details`` holds the
        raw mass, chance, ceiling and the shuffled-box test.

    Raises:
        AuditFailure: the bound or the shuffled-box test fails; the message says where the
            model looks instead.
        InvalidInputError: bad maps or boxes, an object covering the whole image, fewer
            than 7 samples with the default ``alpha``.

    Example:
        >>> import torch
        >>> boxes = torch.tensor([[0, 0, 8, 8], [8, 8, 16, 16]] * 4)
        >>> maps = torch.zeros(8, 16, 16)
        >>> maps[0::2, :8, :8] = maps[1::2, 8:, 8:] = 1.0
        >>> assert_looks_at_object(maps, boxes).obtained
        1.0
    """
    __tracebackhide__ = True
    by = classes_for(maps, classes, per_class, "assert_looks_at_object")
    if isinstance(maps, Scan):
        return _on_scan(maps, boxes, at_least, aggregate, alpha, by)
    return _on_maps(maps, boxes, at_least, aggregate, alpha, grid, images, method, layer, by)


def _on_maps(
    maps: torch.Tensor,
    boxes: RegionLike | None,
    at_least: float,
    aggregate: Aggregate,
    alpha: float | None,
    grid: tuple[int, int] | None,
    images: torch.Tensor | None,
    method: str | None,
    layer: str | None,
    by: ByClass | None,
) -> AuditRecord:
    """The check on in-memory maps and their boxes."""
    __tracebackhide__ = True
    if boxes is None:
        raise InvalidInputError("assert_looks_at_object needs the boxes (or masks) of the maps")
    m = check_maps(maps)
    size = (int(m.shape[1]), int(m.shape[2]))
    region = as_region(boxes, size, m.shape[0])
    _check_alpha(alpha, m.shape[0])
    g = _grid(maps, grid, size)
    coarse = warn_if_coarse(g, size, region.masks)
    mass = mass_in_mask(m, region.masks) if region.kind == "mask" else mass_in_box(m, boxes)
    chance = chance_level(region.masks)
    ceiling = localization_ceiling(region.masks, size, grid=g)
    shown = images if images is not None else getattr(maps, "inputs", None)
    line, overview = where_it_looks(m, region, shown)
    details, notes = _evidence(mass, chance, ceiling, g)
    beats = True
    if alpha is not None:
        beats = _null_test(mass, shuffled_null(m, region.masks), alpha, details, notes)
    if coarse:
        notes.append(f"warning: {coarse}")
    record = judge(
        "assert_looks_at_object",
        "calibrated_mass",
        calibrated_score(mass, chance, ceiling),
        at_least=at_least,
        aggregate=aggregate,
        chance=torch.zeros_like(mass),
        notes=notes,
        details={**details, **provenance(maps, method=method, layer=layer)},
        samples=display_samples(m, shown, region, explained=maps),
        overview=overview,
        failure_notes=(line,),
        classes=by,
    )
    if alpha is not None:
        record = _and_null(record, beats, alpha, line)
    return conclude(record)


def _on_scan(
    scan: Scan,
    boxes: Any,
    at_least: float,
    aggregate: Aggregate,
    alpha: float | None,
    by: ByClass | None,
) -> AuditRecord:
    """The check on a whole dataset's scan: the same values, bound and null test."""
    __tracebackhide__ = True
    if boxes is not None:
        raise InvalidInputError(
            "assert_looks_at_object: a scan already measured each sample against its own "
            "box or mask; call assert_looks_at_object(scan) without boxes"
        )
    _check_alpha(alpha, len(scan))
    coarse = warn_if_coarse(scan.grid, scan.size, scan.extent_boxes())
    details, notes = _evidence(scan.mass, scan.chance, scan.ceiling, scan.grid)
    line, overview = scan_overview(scan)
    beats = True
    if alpha is not None and scan.null is not None:
        beats = _null_test(scan.mass, scan.null, alpha, details, notes)
    if coarse:
        notes.append(f"warning: {coarse}")
    record = judge(
        "assert_looks_at_object",
        "calibrated_mass",
        calibrated_score(scan.mass, scan.chance, scan.ceiling),
        at_least=at_least,
        aggregate=aggregate,
        items=[str(int(i)) for i in scan.indices.tolist()],
        chance=torch.zeros_like(scan.mass),
        notes=notes,
        details={**details, **scan_provenance(scan)},
        samples=kept_samples(scan),
        overview=overview,
        failure_notes=(line,),
        classes=by,
    )
    if alpha is not None:
        record = _and_null(record, beats, alpha, line)
    return conclude(record)


def _null_test(
    mass: torch.Tensor,
    null: torch.Tensor,
    alpha: float,
    details: dict[str, Any],
    notes: list[str],
) -> bool:
    """Whether the own boxes beat the shuffled boxes; adds the test to details and notes."""
    lift = paired_lift(mass, null)
    details.update(null_mean=lift.mean, null_effect=_finite(lift.effect), null_p=lift.p_value)
    notes.append(_null_note(lift, alpha))
    return lift.p_value < alpha


def _and_null(record: AuditRecord, beats: bool, alpha: float, line: str) -> AuditRecord:
    """The record with the shuffled-box condition in its rule and its verdict."""
    failed_here = record.passed and not beats  # the bound holds, the null test does not
    return dataclasses.replace(
        record,
        rule=f"{record.rule}, and own boxes must beat shuffled boxes (p < {alpha:g})",
        passed=record.passed and beats,
        notes=(*record.notes, line) if failed_here else record.notes,
    )


def _check_alpha(alpha: float | None, n: int) -> None:
    if alpha is None:
        return
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise InvalidInputError(f"alpha must be in (0, 1) or None; got {alpha!r}")
    if 0.5**n >= alpha:  # the signed-rank test's smallest p-value is 2^-N
        need = math.floor(math.log2(1 / alpha)) + 1
        raise InvalidInputError(
            f"the shuffled-box test at alpha={alpha:g} needs at least {need} samples, got "
            f"{n}; explain more images or pass alpha=None"
        )


def _evidence(
    mass: torch.Tensor, chance: torch.Tensor, ceiling: torch.Tensor, grid: tuple[int, int]
) -> tuple[dict[str, Any], list[str]]:
    """The record's details and its first note: the raw numbers behind the calibration."""
    details: dict[str, Any] = {
        "grid": list(grid),
        "mass_in_box_mean": float(mass.mean()),
        "chance_mean": float(chance.mean()),
        "ceiling_mean": float(ceiling.mean()),
    }
    note = (
        f"raw mass in box {float(mass.mean()):.3g} (chance {float(chance.mean()):.3g}, ideal "
        f"map at the {grid[0]}x{grid[1]} grid {float(ceiling.mean()):.3g})"
    )
    return details, [note]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else math.copysign(1e9, x)
