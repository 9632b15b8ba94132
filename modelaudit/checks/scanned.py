"""The localization checks on a :class:`~modelaudit.measure.scanning.Scan`: a whole dataset's values.

``assert_mass_in_box(scan, at_least=...)``, ``assert_pointing_game(scan, ...)`` and
``assert_iou(scan, ...)`` come here: the per-sample values were measured batch by batch by
:func:`modelaudit.scan`, and are decided exactly as the in-memory maps' values would be.
The report draws the samples the scan kept (the least mass on their object);
``details["shown_items"]`` says which items they are.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchvision import tv_tensors
    >>> import modelaudit as ma
    >>> from modelaudit.data import Batch
    >>> from modelaudit.measure.scanning import scan
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> _ = nn.init.ones_(net[0].weight)           # each channel: the image's brightness
    >>> images = torch.zeros(4, 3, 8, 8)
    >>> images[:, :, :4] = 1.0                     # bright top half
    >>> box = tv_tensors.BoundingBoxes([[0, 0, 8, 4]] * 2, format="XYXY", canvas_size=(8, 8))
    >>> data = [Batch(images[:2], torch.tensor([0, 1]), boxes=box)] * 2
    >>> found = scan(net, data, method="gradcam", layer="0")
    >>> record = ma.assert_mass_in_box(found, at_least=0.9)
    >>> record.obtained, record.chance, [(c.label, c.count) for c in record.per_class]
    (1.0, 0.5, [(0, 2), (1, 2)])
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from modelaudit.checks._maps import display_samples, looks_instead
from modelaudit.checks.classes import ByClass
from modelaudit.checks.record import (
    Aggregate,
    AuditRecord,
    Overview,
    Range,
    SampleViews,
    decide,
)
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.layer_choice import warn_if_coarse
from modelaudit.measure._validate import as_region
from modelaudit.measure.scanning import Scan

__all__ = ["decide_scan", "kept_samples", "scan_overview", "scan_provenance"]

Metric = Literal["mass", "pointing", "iou"]

UNIT_RANGE: Range = (0.0, 1.0)
"""Mass in box, pointing game and IoU lie in [0, 1]."""


def scan_provenance(scan: Scan) -> dict[str, Any]:
    """The record details every check on a scan carries: method, layer, and what was kept."""
    found = {"method": scan.method or None, "layer": scan.layer}
    return {
        **{k: v for k, v in found.items() if v is not None},
        "scanned": len(scan),
        "shown_items": [int(i) for i in scan.kept.rows.tolist()],
    }


def kept_samples(
    scan: Scan, *, region_kind: str = "object", peaks: bool = False
) -> SampleViews | None:
    """The scan's kept samples as the report's :class:`SampleViews` (rows: ``shown_items``)."""
    kept = scan.kept
    if kept.maps.numel() == 0:
        return None
    given = kept.boxes if kept.boxes is not None else kept.masks
    region = as_region(given, scan.size, int(kept.maps.shape[0])) if given is not None else None
    views = display_samples(
        kept.maps, kept.images, region, explained=kept, region_kind=region_kind, peaks=peaks
    )
    rows = tuple(int(i) for i in kept.rows.tolist())
    return None if views is None else dataclasses.replace(views, rows=rows)


def scan_overview(scan: Scan) -> tuple[str, Overview]:
    """The failure line "Where the model looks instead: ..." and the report's overview,
    over the whole dataset (as :func:`~modelaudit.checks._maps.where_it_looks` gives them
    for in-memory maps)."""
    found = scan.off_object
    image = scan.mean_image
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 1:  # show inputs outside [0, 1] (normalised ones) scaled to it
        image = (image - lo) / (hi - lo) if hi > lo else image.clamp(0, 1) * 0
    return looks_instead(found, image)


def decide_scan(
    assertion: str,
    scan: Scan,
    boxes: Any,
    metric: Metric,
    bound: tuple[float | None, float | None, Aggregate],
    classes: ByClass | None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Decide a localization check on the scan's per-sample ``metric``.

    ``bound`` is ``(at_least, at_most, aggregate)``; the values lie in [0, 1].

    Raises:
        InvalidInputError: ``boxes`` given with a scan (it measured its own).
    """
    __tracebackhide__ = True
    if boxes is not None:
        raise InvalidInputError(
            f"{assertion}: a scan already measured each sample against its own box or mask; "
            f"call {assertion}(scan, ...) without boxes"
        )
    values, chance = {
        "mass": (scan.mass, scan.chance),
        "pointing": (scan.pointing, scan.pointing_chance),
        "iou": (scan.iou, scan.chance),
    }[metric]
    check = {"mass": f"mass_in_{scan.kind}", "pointing": "pointing_game", "iou": "iou"}[metric]
    at_least, at_most, aggregate = bound
    coarse, line, overview = None, "", None
    if at_most is None:  # the region is the object: the overview and the grid's limit
        coarse = warn_if_coarse(scan.grid, scan.size, scan.extent_boxes())
        line, overview = scan_overview(scan)
    region_kind = "object" if at_most is None else "forbidden region"
    return decide(
        assertion,
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        bounds=UNIT_RANGE,
        aggregate=aggregate,
        items=[str(int(i)) for i in scan.indices.tolist()],
        chance=chance,
        details={**(details or {}), **scan_provenance(scan)},
        samples=kept_samples(scan, region_kind=region_kind, peaks=metric == "pointing"),
        notes=(f"warning: {coarse}",) if coarse else (),
        overview=overview,
        failure_notes=(line,) if line else (),
        classes=classes,
    )
