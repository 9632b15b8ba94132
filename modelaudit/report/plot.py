"""Line plots as inline SVG: the faithfulness check's deletion / insertion curves.

SVG keeps the plot crisp at any zoom and costs a few hundred bytes, no image library.

Example:
    >>> svg = curves_svg({"x": [0.0, 0.5, 1.0], "lines": [["map order", [1.0, 0.2, 0.0], 0.35]],
    ...                   "reference": ["random order", [1.0, 0.6, 0.0], 0.55],
    ...                   "x_label": "fraction of pixels deleted", "y_label": "probability"})
    >>> svg.startswith("<svg") and "AUC 0.35" in svg and "stroke-dasharray" in svg
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from modelaudit._format import format_number

__all__ = ["curves_svg"]

WIDTH, HEIGHT = 420, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 150, 12, 40
_COLOURS = ("#d9480f", "#1c7ed6", "#2b8a3e")
_REFERENCE = "#667085"


def _points(xs: Sequence[float], ys: Sequence[float], top: float) -> str:
    """Polyline points of ``(xs, ys)`` on the plot area, y scaled to [0, top]."""
    w, h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    span = top if top > 0 else 1.0
    return " ".join(
        f"{_LEFT + w * float(x):.1f},{_TOP + h * (1 - min(max(float(y), 0.0), span) / span):.1f}"
        for x, y in zip(xs, ys, strict=False)
    )


def _axes(top: float, x_label: str, y_label: str) -> list[str]:
    w, h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    out = [f"<rect x='{_LEFT}' y='{_TOP}' width='{w}' height='{h}' fill='#fff' stroke='#d0d5dd'/>"]
    for k in range(3):
        frac = k / 2
        y = _TOP + h * (1 - frac)
        out.append(
            f"<text x='{_LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>"
            f"{format_number(top * frac)}</text>"
        )
        x = _LEFT + w * frac
        out.append(f"<text x='{x:.1f}' y='{_TOP + h + 14}' text-anchor='middle'>{frac:g}</text>")
    out.append(
        f"<text x='{_LEFT + w / 2:.1f}' y='{HEIGHT - 6}' text-anchor='middle'>"
        f"{escape(x_label)}</text>"
    )
    out.append(
        f"<text x='12' y='{_TOP + h / 2:.1f}' text-anchor='middle' "
        f"transform='rotate(-90 12 {_TOP + h / 2:.1f})'>{escape(y_label)}</text>"
    )
    return out


def curves_svg(curves: Mapping[str, Any]) -> str:
    """An inline SVG of ``curves`` (the report's plain-list form of
    :class:`~modelaudit.checks.record.Curves`): each line solid, the reference dashed,
    a legend with each curve's area (AUC) on the right."""
    xs = list(curves.get("x") or [])
    lines = [list(e) for e in curves.get("lines") or []]
    ref = curves.get("reference")
    drawn = [*lines, *([list(ref)] if ref else [])]
    top = max([1.0, *(float(y) for _, ys, _ in drawn for y in ys)])
    parts = _axes(top, str(curves.get("x_label") or ""), str(curves.get("y_label") or ""))
    legend_x = WIDTH - _RIGHT + 10
    for k, (label, ys, area) in enumerate(drawn):
        is_ref = ref is not None and k == len(drawn) - 1
        colour = _REFERENCE if is_ref else _COLOURS[k % len(_COLOURS)]
        dash = " stroke-dasharray='5 4'" if is_ref else ""
        parts.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='2'{dash} "
            f"points='{_points(xs, ys, top)}'/>"
        )
        y = _TOP + 14 + 34 * k
        parts.append(
            f"<line x1='{legend_x}' y1='{y - 4}' x2='{legend_x + 22}' y2='{y - 4}' "
            f"stroke='{colour}' stroke-width='2'{dash}/>"
            f"<text x='{legend_x + 28}' y='{y}'>{escape(str(label))}</text>"
            f"<text x='{legend_x + 28}' y='{y + 14}'>AUC {format_number(float(area))}</text>"
        )
    return (
        f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' font-size='11' "
        "font-family='system-ui, sans-serif' role='img'>" + "".join(parts) + "</svg>"
    )
