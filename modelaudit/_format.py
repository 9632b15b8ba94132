"""How modelaudit writes numbers and shapes in every message, table and report.

Example:
    >>> from modelaudit._format import format_number, format_shape
    >>> format_number(0.123456), format_number(-0.5, signed=True), format_number(None)
    ('0.1235', '-0.5', 'n/a')
    >>> format_shape((1, 64, 55, 55)), format_shape([(2, 3), (4,)])
    ('(1, 64, 55, 55)', '[(2, 3), (4)]')
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_number", "format_percent", "format_ranges", "format_shape"]


def format_number(value: float | None, *, signed: bool = False, missing: str = "n/a") -> str:
    """A number with 4 significant digits (``+`` sign on request); ``missing`` for None."""
    if value is None:
        return missing
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def format_percent(fraction: float, *, signed: bool = False) -> str:
    """A fraction as a percentage with one decimal: ``0.05 -> '5.0%'``.

    Example:
        >>> format_percent(0.05), format_percent(-0.375, signed=True)
        ('5.0%', '-37.5%')
    """
    return f"{100 * fraction:+.1f}%" if signed else f"{100 * fraction:.1f}%"


def format_shape(shape: Any) -> str:
    """A tensor shape as ``(1, 3, 8, 8)``; nested shapes of tuple/dict outputs likewise."""
    if isinstance(shape, tuple | list) and all(isinstance(s, int) for s in shape):
        return "(" + ", ".join(str(s) for s in shape) + ")"
    if isinstance(shape, tuple | list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {format_shape(v)}" for k, v in shape.items()) + "}"
    return type(shape).__name__


def format_ranges(indices: Any, *, limit: int = 12) -> str:
    """Whole numbers as sorted runs, ``"0-5, 7, 9-63"``; at most ``limit`` runs, then a count.

    Example:
        >>> format_ranges([9, 0, 1, 2, 5, 7, 8])
        '0-2, 5, 7-9'
        >>> format_ranges(range(0, 40, 2), limit=3)
        '0, 2, 4 and 17 more'
    """
    values = sorted({int(i) for i in indices})
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    rest = sum(b - a + 1 for a, b in runs[limit:])
    return ", ".join(shown) + (f" and {rest} more" if rest else "")
