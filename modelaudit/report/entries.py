"""The report's data: one :class:`TestEntry` per audited test, in plain JSON-able fields.

Entries hold numbers, strings and base64 PNGs only, so they travel unchanged from
pytest-xdist workers to the controller (``workeroutput``) and into the HTML and JSON files.
:func:`record_view` turns an :class:`~modelaudit.checks.record.AuditRecord` (with its
tensors) into rows of input | overlay | value | pass/fail, rendered with
:func:`~modelaudit.report.overlay.overlay`, failing samples first.

Example:
    >>> import torch
    >>> from modelaudit.checks.record import AuditRecord, SampleViews
    >>> rec = AuditRecord("pointing_game", "assert_pointing_game", False, (1.0, 0.0),
    ...                   failing=(1,), direction="higher",
    ...                   samples=SampleViews(images=torch.rand(2, 3, 8, 8),
    ...                                       maps=torch.rand(2, 8, 8)))
    >>> view = record_view(rec)
    >>> [(row.index, row.value, row.passed) for row in view.samples]  # failing first
    [(1, 0.0, False), (0, 1.0, True)]
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelaudit.baseline import Comparison
from modelaudit.report.overlay import image_to_rgb, overlay, overview_picture, png_bytes
from modelaudit.report.picking import sample_order

if TYPE_CHECKING:
    from modelaudit.checks.record import AuditRecord, Curves, SampleViews

__all__ = [
    "OUTCOME_ORDER",
    "Attachment",
    "RecordView",
    "SampleRow",
    "TestEntry",
    "encode_png",
    "mirrors_metrics",
    "record_view",
    "section_id",
    "sort_entries",
]

OUTCOME_ORDER = ("error", "failed", "xpassed", "passed", "xfailed", "skipped")
"""Report order of outcomes: failing tests first."""


def encode_png(array: Any) -> str:
    """Encode an image as a base64 PNG string (what ``data:image/png;base64,`` needs).

    Example:
        >>> import numpy as np
        >>> encode_png(np.zeros((1, 1), dtype=np.uint8))[:8]
        'iVBORw0K'
    """
    return base64.b64encode(png_bytes(array)).decode("ascii")


@dataclasses.dataclass
class SampleRow:
    """One sample of a record: images as base64 PNGs, its metric value, verdict and classes.

    Attributes:
        index: the sample's position in the checked batch.
        value: the check's value for the sample (None when the record has no per-sample
            values).
        passed: the sample's verdict (None likewise).
        input_png: the input image; overlay_png: the heat map over it, with the outlines.
        label: the class the map explains (the true class when the target was the labels);
            predicted: the model's top class; confidence: its probability; each None when
            unknown.
        label_name, predicted_name: their names, when the model has class names.
        strip: ``[caption, png]`` pairs drawn after the overlay (randomised, noisy maps).
        title: the tile's heading when it is not "sample <index>".
    """

    index: int
    value: float | None = None
    passed: bool | None = None
    input_png: str | None = None
    overlay_png: str | None = None
    label: int | None = None
    predicted: int | None = None
    confidence: float | None = None
    label_name: str | None = None
    predicted_name: str | None = None
    strip: list[list[str]] = dataclasses.field(default_factory=list)
    title: str | None = None


@dataclasses.dataclass
class RecordView:
    """An audit record ready for the report.

    Attributes:
        record: ``AuditRecord.to_json()`` (no tensors; includes ``message``).
        samples: the drawn samples, failing ones first (worst first), then the rest.
        hidden: how many samples were not drawn because of the cap.
        error: why the samples could not be drawn, if they could not.
        files: overlay PNGs of failing samples written next to the report, relative to
            the report's folder.
        overview_png: a heat-map check's dataset-level picture (mean heat map, mean
            object, off-object mass; :func:`~modelaudit.report.overlay.overview_picture`),
            base64.
        overview_caption: where the off-object mass lies, in words.
        overview_file: the overview PNG written next to the report (relative), if any.
        region: what the outlines show: ``"object"`` or ``"forbidden region"``.
        outline: how the region is drawn: ``"box"``, ``"mask"`` or None (no outline).
        peaks: the overlays mark each map's hottest pixel.
        curves: a record-level plot (:class:`~modelaudit.checks.record.Curves` as plain
            lists: ``x``, ``lines`` of ``[label, ys, area]``, ``reference``, labels), or None.
        captions: what a tile's two pictures are (``["input", "heat map"]``).
    """

    record: dict[str, Any]
    samples: list[SampleRow] = dataclasses.field(default_factory=list)
    hidden: int = 0
    error: str | None = None
    files: list[str] = dataclasses.field(default_factory=list)
    overview_png: str | None = None
    overview_caption: str | None = None
    overview_file: str | None = None
    region: str = "object"
    outline: str | None = None
    peaks: bool = False
    curves: dict[str, Any] | None = None
    captions: list[str] = dataclasses.field(default_factory=lambda: ["input", "heat map"])


@dataclasses.dataclass
class Attachment:
    """An image a test attached through the ``audit`` fixture."""

    name: str
    png: str
    path: str | None = None


@dataclasses.dataclass
class TestEntry:
    """Everything the report shows about one test.

    Attributes:
        nodeid: the pytest node id.
        outcome: ``passed``, ``failed``, ``error``, ``skipped``, ``xfailed`` or ``xpassed``.
        duration: seconds spent in setup, call and teardown.
        message: the failure text (empty when it passed).
        metrics: baseline comparisons recorded through the ``audit`` fixture.
        records: views of the audit records the test emitted.
        attachments: images attached by the test.
        omitted_records: records dropped by the per-test cap (hypothesis tests emit many).
        audited: the test asked for modelaudit (an ``audit*`` fixture or marker) rather than
            only calling assertions; the terminal summary lists audited or failed tests.
    """

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str = "passed"
    duration: float = 0.0
    message: str = ""
    metrics: list[Comparison] = dataclasses.field(default_factory=list)
    records: list[RecordView] = dataclasses.field(default_factory=list)
    attachments: list[Attachment] = dataclasses.field(default_factory=list)
    omitted_records: int = 0
    audited: bool = True

    @property
    def failed(self) -> bool:
        """Whether the test counts as failing (failed, error, or an unexpected pass)."""
        return self.outcome in ("failed", "error", "xpassed")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse of :meth:`from_dict`)."""
        out = dataclasses.asdict(dataclasses.replace(self, metrics=[]))
        out["metrics"] = [m.to_dict() for m in self.metrics]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestEntry:
        """Rebuild an entry from :meth:`to_dict` output."""
        return cls(
            nodeid=str(data["nodeid"]),
            outcome=str(data.get("outcome", "passed")),
            duration=float(data.get("duration", 0.0)),
            message=str(data.get("message", "")),
            metrics=[Comparison.from_dict(m) for m in data.get("metrics", [])],
            records=[
                RecordView(
                    record=dict(r["record"]),
                    samples=[SampleRow(**s) for s in r.get("samples", [])],
                    hidden=int(r.get("hidden", 0)),
                    error=r.get("error"),
                    files=[str(f) for f in r.get("files", [])],
                    overview_png=r.get("overview_png"),
                    overview_caption=r.get("overview_caption"),
                    overview_file=r.get("overview_file"),
                    region=str(r.get("region", "object")),
                    outline=r.get("outline"),
                    peaks=bool(r.get("peaks", False)),
                    curves=r.get("curves"),
                    captions=[str(c) for c in r.get("captions", ["input", "heat map"])],
                )
                for r in data.get("records", [])
            ],
            attachments=[Attachment(**a) for a in data.get("attachments", [])],
            omitted_records=int(data.get("omitted_records", 0)),
            audited=bool(data.get("audited", True)),
        )


def section_id(nodeid: str) -> str:
    """The HTML id of a test's section in ``report.html`` (safe in a URL fragment).

    Example:
        >>> section_id("tests/test_a.py::test_x[<b>]")
        't-41170eedb8'
    """
    import hashlib

    return "t-" + hashlib.sha1(nodeid.encode("utf-8")).hexdigest()[:10]


def sort_entries(entries: Iterable[TestEntry]) -> list[TestEntry]:
    """Failing tests first (errors, failures, unexpected passes), then the rest, stably.

    Example:
        >>> names = [e.nodeid for e in sort_entries(
        ...     [TestEntry("a", "passed"), TestEntry("b", "failed"), TestEntry("c", "error")])]
        >>> names
        ['c', 'b', 'a']
    """

    def rank(entry: TestEntry) -> int:
        order = OUTCOME_ORDER
        return order.index(entry.outcome) if entry.outcome in order else len(order)

    return sorted(entries, key=rank)


def mirrors_metrics(view: RecordView, metrics: Sequence[Comparison]) -> bool:
    """Whether ``view`` is a baseline-gate record whose every metric is in ``metrics``.

    The ``audit`` fixture's gate emits such records; the metrics table already shows their
    comparisons (with status and tolerance), so the summary does not repeat them.

    Example:
        >>> c = Comparison("t::iou", "iou", 0.7, "higher", 0.05, None, "recorded")
        >>> view = RecordView({"assertion": "assert_within_baseline",
        ...                    "details": {"comparisons": [c.to_dict()]}})
        >>> mirrors_metrics(view, [c]), mirrors_metrics(view, [])
        (True, False)
    """
    details = view.record.get("details") or {}
    compared = details.get("comparisons") if isinstance(details, Mapping) else None
    if view.record.get("assertion") != "assert_within_baseline" or not compared:
        return False
    keys = {m.key for m in metrics}
    return all(isinstance(c, Mapping) and c.get("key") in keys for c in compared)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def record_view(
    record: AuditRecord,
    *,
    max_samples: int = 8,
    alpha: float = 0.5,
    colormap: str = "inferno",
    overview: bool = True,
) -> RecordView:
    """Render a record's samples (input and overlay PNGs) for the report.

    A sample's ``value`` is ``record.values[i]`` when there is one value per sample, and
    its verdict is "not in ``record.failing``" then (None otherwise). At most
    ``max_samples`` samples are drawn, failing ones first, worst first
    (:func:`~modelaudit.report.picking.sample_order`); drawing problems are reported in
    ``error`` instead of raised, so a report is always written. A record without
    ``samples`` (hook, shape and baseline checks) gives a view without rows: the report
    lists its items from ``view.record``. The record's ``overview`` is drawn too
    (``overview=False``: not), and its curves kept as plain lists.
    """
    view = RecordView(record=record.to_json())
    if overview:
        _draw_overview(view, record, alpha=alpha, colormap=colormap)
    samples = record.samples
    if samples is None:
        return view
    view.region, view.peaks = samples.region, samples.peaks
    view.outline = (
        "box" if samples.boxes is not None else "mask" if samples.masks is not None else None
    )
    view.curves = None if samples.curves is None else _curves_json(samples.curves)
    view.captions = [str(c) for c in samples.captions]
    if samples.maps is None:
        return view
    try:
        count = len(samples.maps)
        items = list(samples.rows) if samples.rows is not None else list(range(count))
        total = len(record.values) if samples.rows is not None else count
        row_of = {item: row for row, item in enumerate(items)}
        order = [i for i in sample_order(record, max(total, count)) if i in row_of]
        chosen = order[: max(0, int(max_samples))]
        view.hidden = max(total, count) - len(chosen)
        view.samples = [_row(record, samples, row_of[i], i, alpha, colormap) for i in chosen]
    except (ValueError, TypeError, IndexError) as exc:
        view.samples, view.hidden = [], 0
        view.error = f"could not draw the samples: {exc}"
    return view


def _row(
    record: AuditRecord, views: SampleViews, i: int, item: int, alpha: float, colormap: str
) -> SampleRow:
    """Row ``i`` of ``views`` (the record's item ``item``) drawn: input, overlay (outline,
    peak), strip, classes."""
    shown = len(views.maps if views.maps is not None else ())
    per_sample = len(record.values) == shown or (
        views.rows is not None and item < len(record.values)
    )
    image = None if views.images is None else views.images[i]

    def drawn(heat: Any) -> str:
        return encode_png(
            overlay(
                image,
                heat,
                box=None if views.boxes is None else views.boxes[i],
                mask=None if views.masks is None else views.masks[i],
                alpha=alpha,
                colormap=colormap,
                region=views.region,
                peak=views.peaks,
            )
        )

    if views.maps is None:  # record_view draws only views with maps
        raise ValueError("no maps to draw")
    label, predicted = _item(views.labels, i), _item(views.predicted, i)
    confidence = _item(views.confidence, i, float)
    return SampleRow(
        index=item,
        value=_finite(float(record.values[item])) if per_sample else None,
        passed=(item not in set(record.failing)) if per_sample else None,
        input_png=None if image is None else encode_png(image_to_rgb(image)),
        overlay_png=drawn(views.maps[i]),
        label=label,
        predicted=predicted,
        confidence=confidence,
        label_name=_name(views.class_names, label),
        predicted_name=_name(views.class_names, predicted),
        strip=[[caption, drawn(maps[i])] for caption, maps in views.strip],
        title=None if views.titles is None or i >= len(views.titles) else views.titles[i],
    )


def _item(values: Any, i: int, kind: type = int) -> Any:
    """``kind(values[i])`` or None (no values, or fewer than ``i + 1``)."""
    if values is None or i >= len(values):
        return None
    value = kind(values[i])
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _name(names: Sequence[str] | None, cls: int | None) -> str | None:
    return None if names is None or cls is None or not 0 <= cls < len(names) else str(names[cls])


def _curves_json(curves: Curves) -> dict[str, Any]:
    """A :class:`~modelaudit.checks.record.Curves` as plain lists (JSON, the HTML plot).

    Example:
        >>> import torch
        >>> from modelaudit.checks.record import Curves
        >>> plot = Curves(torch.tensor([0.0, 1.0]), (("map", torch.tensor([1.0, 0.0]), 0.5),))
        >>> _curves_json(plot)["lines"]
        [['map', [1.0, 0.0], 0.5]]
    """

    def line(entry: tuple[str, Any, float]) -> list[Any]:
        label, ys, area = entry
        return [str(label), [float(y) for y in ys], float(area)]

    return {
        "x": [float(v) for v in curves.x],
        "lines": [line(e) for e in curves.lines],
        "reference": None if curves.reference is None else line(curves.reference),
        "x_label": curves.x_label,
        "y_label": curves.y_label,
    }


def _draw_overview(view: RecordView, record: AuditRecord, *, alpha: float, colormap: str) -> None:
    """Put ``record.overview``'s picture and caption on ``view`` (a problem goes to ``error``).

    Example:
        >>> import torch
        >>> from modelaudit.checks.record import AuditRecord, Overview
        >>> rec = AuditRecord("iou", "assert_iou", False, (0.1,), overview=Overview(
        ...     torch.rand(8, 8), torch.zeros(8, 8), torch.rand(8, 8), caption="where"))
        >>> view = RecordView(record={})
        >>> _draw_overview(view, rec, alpha=0.5, colormap="inferno")
        >>> view.overview_caption, view.overview_png[:8]
        ('where', 'iVBORw0K')
    """
    if record.overview is None:
        return
    try:
        picture = overview_picture(record.overview, alpha=alpha, colormap=colormap)
    except (ValueError, TypeError, IndexError) as exc:
        view.error = f"could not draw the overview: {exc}"
        return
    view.overview_png = encode_png(picture)
    view.overview_caption = record.overview.caption
