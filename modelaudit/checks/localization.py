"""Localization checks: is each map's mass, its maximum, its hot region on the object?

Each ``assert_*`` takes maps and per-sample boxes (or boolean masks), a bound given as a
keyword (``at_least=`` or ``at_most=``, exactly one) and an ``aggregate=`` rule (``"all"``,
``"mean"`` or a fraction of samples), and decides through
:func:`~modelaudit.checks.record.decide`. The chance level (what a uniform map scores) is
reported next to the value. Maps from a modelaudit explainer carry their images, method and
layer, so the report can draw overlays without being told.

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

from typing import Any, Literal

import torch

from modelaudit.checks._maps import display_samples, provenance, where_it_looks
from modelaudit.checks.classes import ByClass, ClassesLike, classes_for
from modelaudit.checks.record import Aggregate, AuditRecord, Range, decide
from modelaudit.checks.scanned import decide_scan
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.layer_choice import warn_if_coarse
from modelaudit.measure._validate import Region, RegionLike, as_region, check_maps
from modelaudit.measure.localization import (
    chance_level,
    iou,
    mass_in_box,
    mass_in_mask,
    pointing_game,
)
from modelaudit.measure.scanning import Scan

__all__ = ["assert_iou", "assert_mass_in_box", "assert_pointing_game"]

UNIT_RANGE: Range = (0.0, 1.0)
"""Mass in box, pointing game and IoU all lie in [0, 1]: ``at_least`` must be in (0, 1],
``at_most`` in [0, 1) (anything else always or never passes; see
:func:`~modelaudit.checks.record.check_bound`)."""


def _decide_on_region(
    assertion: str,
    check: str,
    values: torch.Tensor,
    maps: Any,
    region: Region,
    *,
    at_least: float | None,
    at_most: float | None,
    aggregate: Aggregate,
    images: torch.Tensor | None,
    method: str | None,
    layer: Any,
    chance: torch.Tensor,
    details: dict[str, Any] | None = None,
    classes: ByClass | None = None,
) -> AuditRecord:
    """Decide a localization check; with ``at_least=``, also say where the mass goes.

    ``at_least=`` checks get the dataset-level overview (the mean map next to the mean
    object, see :func:`~modelaudit.checks._maps.where_it_looks`) and, when they fail, the
    line "Where the model looks instead: ...". ``at_most=`` checks get neither: their
    region is usually the cue itself (a watermark), so "off the object" would mean "off
    the cue", and the failure already says how much mass lies on it.
    """
    __tracebackhide__ = True
    where = provenance(maps, method=method, layer=layer)
    shown = images if images is not None else getattr(maps, "inputs", None)
    m = check_maps(maps)
    samples = display_samples(
        m,
        shown,
        region,
        explained=maps,
        region_kind="object" if at_most is None else "forbidden region",
        peaks=check == "pointing_game",
    )
    line, overview = where_it_looks(m, region, shown) if at_most is None else ("", None)
    coarse = None
    if at_most is None:  # the region is the object: can the layer's grid resolve it?
        size = (int(m.shape[1]), int(m.shape[2]))
        coarse = warn_if_coarse(getattr(maps, "grid", None), size, region.masks)
    return decide(
        assertion,
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        bounds=UNIT_RANGE,
        aggregate=aggregate,
        chance=chance,
        details={**(details or {}), **where},
        samples=samples,
        overview=overview,
        failure_notes=(line,) if line else (),
        notes=(f"warning: {coarse}",) if coarse else (),
        classes=classes,
    )


def _inputs(maps: torch.Tensor, boxes: RegionLike | None) -> tuple[torch.Tensor, Region]:
    if boxes is None:
        raise InvalidInputError(
            "boxes are missing: pass the (N, 4) XYXY boxes or the bool (N, H, W) masks the "
            "maps are checked against (only a scan, modelaudit.scan(...), carries its own)"
        )
    m = check_maps(maps)
    return m, as_region(boxes, (m.shape[1], m.shape[2]), m.shape[0])


def assert_mass_in_box(
    maps: torch.Tensor | Scan,
    boxes: RegionLike | None = None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
) -> AuditRecord:
    """Assert the share of each map's mass inside its box (or bool mask).

    ``at_most=`` expresses "the model does not look here" (a watermark, a border).
    See :func:`modelaudit.mass_in_box`; the chance level is the box's area fraction.

    Args:
        maps: ``(N, H, W)`` heat maps (an explainer's output carries images, method, layer),
            or a :class:`~modelaudit.measure.scanning.Scan` of a whole dataset
            (:func:`modelaudit.scan`; then no ``boxes``).
        boxes: ``(N, 4)`` XYXY boxes (exclusive x2, y2), per-sample box lists, or a bool mask.
        at_least: lower bound on the metric (exactly one of the two bounds).
        at_most: upper bound on the metric.
        aggregate: ``"all"``, ``"mean"`` or a fraction of samples that must pass.
        images: the ``(N, C, H, W)`` inputs for the report's overlays (default: the maps').
        method: the explanation method, recorded (default: the maps').
        layer: the explained layer, recorded (default: the maps').
        classes: ``(N,)`` the class of each sample (default: the class each map explains,
            when the maps carry it); the record then also holds per-class results.
        per_class: every class must pass the bound as well; the failure names the
            classes that do not.

    Returns:
        the passing :class:`~modelaudit.checks.record.AuditRecord`.

    Raises:
        AuditFailure: the bound does not hold; ``.record`` has the details.
        InvalidInputError: bad maps or boxes, or a bound that always or never passes
            (``at_least`` must be in (0, 1], ``at_most`` in [0, 1)).

    Example:
        >>> import torch
        >>> maps = torch.ones(1, 4, 4)
        >>> assert_mass_in_box(maps, torch.tensor([[0, 0, 2, 4]]), at_least=0.5).obtained
        0.5
    """
    __tracebackhide__ = True
    by = classes_for(maps, classes, per_class, "assert_mass_in_box")
    if isinstance(maps, Scan):
        bound = (at_least, at_most, aggregate)
        return decide_scan("assert_mass_in_box", maps, boxes, "mass", bound, by)
    m, region = _inputs(maps, boxes)
    if region.kind == "mask":
        check, values = "mass_in_mask", mass_in_mask(m, region.masks)
    else:
        assert boxes is not None  # _inputs checked it
        check, values = "mass_in_box", mass_in_box(m, boxes)
    return _decide_on_region(
        "assert_mass_in_box",
        check,
        values,
        maps,
        region,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        images=images,
        method=method,
        layer=layer,
        chance=chance_level(region.masks),
        classes=by,
    )


def assert_pointing_game(
    maps: torch.Tensor | Scan,
    boxes: RegionLike | None = None,
    *,
    tolerance: float = 0,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
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
        (0.75, (3,))
    """
    __tracebackhide__ = True
    by = classes_for(maps, classes, per_class, "assert_pointing_game")
    if isinstance(maps, Scan):
        _same_option("assert_pointing_game", "tolerance", tolerance, maps.tolerance, 0)
        bound = (at_least, at_most, aggregate)
        return decide_scan(
            "assert_pointing_game",
            maps,
            boxes,
            "pointing",
            bound,
            by,
            {"tolerance": maps.tolerance},
        )
    m, region = _inputs(maps, boxes)
    given = region.masks if region.boxes is None else region.boxes
    return _decide_on_region(
        "assert_pointing_game",
        "pointing_game",
        pointing_game(m, given, tolerance=tolerance),
        maps,
        region,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        images=images,
        method=method,
        layer=layer,
        chance=chance_level(region.masks, tolerance=tolerance),
        details={"tolerance": float(tolerance)},
        classes=by,
    )


def assert_iou(
    maps: torch.Tensor | Scan,
    boxes: RegionLike | None = None,
    *,
    threshold: float | Literal["otsu"] | None = None,
    top_k: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    aggregate: Aggregate = "all",
    images: torch.Tensor | None = None,
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
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
    by = classes_for(maps, classes, per_class, "assert_iou")
    if isinstance(maps, Scan):
        _same_option("assert_iou", "top_k", top_k, None, None, fixed=True)
        _same_option("assert_iou", "threshold", threshold, 0.5, None, fixed=True)
        bound = (at_least, at_most, aggregate)
        return decide_scan("assert_iou", maps, boxes, "iou", bound, by, {"threshold": 0.5})
    m, region = _inputs(maps, boxes)
    given = region.masks if region.boxes is None else region.boxes
    binarise: dict[str, Any] = (
        {"top_k": top_k}
        if top_k is not None
        else {"threshold": 0.5 if threshold is None else threshold}
    )
    return _decide_on_region(
        "assert_iou",
        "iou",
        iou(m, given, threshold=threshold, top_k=top_k),
        maps,
        region,
        at_least=at_least,
        at_most=at_most,
        aggregate=aggregate,
        images=images,
        method=method,
        layer=layer,
        chance=chance_level(region.masks),
        details=binarise,
        classes=by,
    )


def _same_option(
    assertion: str, name: str, given: Any, scanned: Any, default: Any, *, fixed: bool = False
) -> None:
    """Raise unless an option given with a scan matches what the scan measured (``fixed``:
    a scan always measures with ``scanned``; it has no such option)."""
    if given is not None and given != default and given != scanned:
        fix = (
            f"a scan measures IoU with {name}={scanned!r} only; for another {name}, explain "
            f"the images in memory and call {assertion}(maps, boxes, {name}=...)"
            if fixed
            else f"pass {name}= to modelaudit.scan(...) instead"
        )
        raise InvalidInputError(
            f"{assertion}: {name}={given!r}, but the scan measured with {name}={scanned!r}; " + fix
        )
