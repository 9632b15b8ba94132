"""The report's sample tiles and the legend of what a record's pictures draw.

A tile is one sample of a heat-map check: the input, the heat map over it and the check's
extra maps side by side, and a caption that says the sample's value and verdict, the
class the map explains (the true class when the target was the labels), the model's
prediction and its probability, and the method and layer. The legend names only what the
record's pictures actually draw: the outline (object box, object mask or forbidden
region, in its colour) and the hottest-pixel marker.

Example:
    >>> from modelaudit.report.entries import RecordView, SampleRow
    >>> view = RecordView({"check": "pointing_game", "details": {"method": "layercam"}},
    ...                   samples=[SampleRow(3, 0.0, False, label=1, label_name="square",
    ...                                      predicted=2, predicted_name="triangle",
    ...                                      confidence=0.93)], outline="box", peaks=True)
    >>> html = sample_tiles(view)
    >>> "square" in html and "triangle 93%" in html and "layercam" in html
    True
    >>> "object box" in record_legend(view, "inferno")
    True
"""

from __future__ import annotations

from html import escape
from typing import Any

from modelaudit._format import format_number
from modelaudit.report.entries import RecordView, SampleRow
from modelaudit.report.overlay import OUTLINE_COLORS

__all__ = ["record_legend", "sample_tiles"]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _pic(png: str | None, caption: str, alt: str) -> str:
    if png is None:
        return ""
    return (
        f"<div><span title='{escape(caption)}'>{escape(caption)}</span><img class='px' "
        f"src='data:image/png;base64,{png}' alt='{escape(alt)}'></div>"
    )


def _class_line(row: SampleRow) -> str:
    """``class square · predicted triangle 93%`` (what is known of it)."""
    parts = []
    if row.label is not None:
        parts.append(f"class <strong>{escape(row.label_name or str(row.label))}</strong>")
    if row.predicted is not None:
        name = escape(row.predicted_name or str(row.predicted))
        wrong = row.label is not None and row.predicted != row.label
        prob = "" if row.confidence is None else f" {100 * row.confidence:.0f}%"
        parts.append(f"predicted <strong class='{'bad' if wrong else ''}'>{name}{prob}</strong>")
    return " · ".join(parts)


def _provenance(record: dict[str, Any]) -> str:
    details = record.get("details") or {}
    method, layer = details.get("method"), details.get("layer")
    if isinstance(layer, list | tuple):
        layer = ", ".join(str(x) for x in layer)
    shown = [str(x) for x in (method, layer) if x]
    return " · ".join(escape(x) for x in shown)


def _tile(row: SampleRow, view: RecordView, where: str) -> str:
    # a sample that misses the bound fails the check only when the check failed (a check
    # on the mean or on a fraction of samples can pass with some samples below the bound)
    misses = row.passed is False
    bad = misses and not view.record.get("passed")
    if row.passed is None:
        verdict = ""
    elif bad:
        verdict = "<span class='bad'>FAIL</span>"
    else:
        verdict = (
            "<span class='note'>misses the bound</span>"
            if misses
            else "<span class='ok'>pass</span>"
        )
    value = "" if row.value is None else f" · value <code>{format_number(row.value)}</code>"
    first, second = [*view.captions, "input", "heat map"][:2]
    pics = [
        _pic(row.input_png, first, f"{first} {row.index}"),
        _pic(row.overlay_png, second, f"{second} {row.index}"),
        *(_pic(png, caption, f"{caption} {row.index}") for caption, png in row.strip),
    ]
    lines = [
        (
            f"<strong>{escape(row.title)}</strong>"
            if row.title
            else f"sample <strong>{row.index}</strong>"
        )
        + value
        + (f" · {verdict}" if verdict else ""),
        _class_line(row),
        f"<span class='note'>{where}</span>" if where else "",
    ]
    caption = "<br>".join(line for line in lines if line)
    return (
        f"<figure class='sample{' bad' if bad else ''}'><div class='pair'>{''.join(pics)}"
        f"</div><figcaption>{caption}</figcaption></figure>"
    )


def sample_tiles(view: RecordView) -> str:
    """The record's drawn samples as tiles, in the view's order (worst first)."""
    if not view.samples:
        return ""
    where = _provenance(view.record)
    return "<div class='samples'>" + "".join(_tile(r, view, where) for r in view.samples) + "</div>"


def record_legend(view: RecordView, colormap: str) -> str:
    """What this record's pictures draw: the outline and its meaning, the peak marker."""
    palette = OUTLINE_COLORS.get(colormap, OUTLINE_COLORS["inferno"])
    items = []
    if view.samples and view.outline is not None:
        forbidden = view.region == "forbidden region"
        colour = palette["forbidden"] if forbidden else palette[view.outline]
        what = "forbidden region" if forbidden else f"object {view.outline}"
        items.append(
            f"<span><span class='swatch' style='border-color:{_hex(colour)}'></span>{what}</span>"
        )
    if view.samples and view.peaks:
        items.append(
            "<span><span class='peak'>+</span>hottest pixel (the pointing game's point)</span>"
        )
    if view.samples and any(r.strip for r in view.samples):
        items.append(
            "<span>after the heat map: the same method on the changed model or input "
            "(each map scaled to its own maximum)</span>"
        )
    if not items:
        return ""
    return "<div class='legend small'>" + "".join(items) + "</div>"
