"""The terminal summary: one row per gate of every audited or failing test.

Each test gets a title row (its node id) followed by one row per gate
(:mod:`modelaudit.report.gates`): a baseline metric (``<name> vs baseline``) or an audit
record. The columns say what the value is (mean, worst sample, fraction of samples
passing...), the value, the bound or the baseline with the edge it allows, the chance
level, and the verdict (with the baseline status). Passing tests that only called checks,
without asking for modelaudit, stay out of the table (they are in the HTML report).
Numbers show 4 significant digits; a missing value is ``-``. Below the table, one line per
kind of fingerprint change says how many baseline comparisons ran against a different
model, method, layer, data or library versions (:func:`fingerprint_lines`).

Example:
    >>> from modelaudit.baseline import Comparison
    >>> from modelaudit.report.entries import RecordView, TestEntry
    >>> c = Comparison("t::iou", "iou", 0.71, "higher", 0.05, 0.7, "ok")
    >>> r = RecordView({"check": "mass_in_box", "obtained": 0.4, "bound": 0.5, "values": [0.4],
    ...                 "direction": "higher", "passed": False})
    >>> print("\\n".join(summary_lines([TestEntry("t", metrics=[c], records=[r])])))
    gate               value is  value  bound or baseline       chance  verdict
    t
      iou vs baseline  value      0.71  baseline 0.7, >= 0.665  -       pass (ok)
      mass_in_box      value       0.4  >= 0.5                  -       FAIL
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from modelaudit._format import format_number
from modelaudit.report.entries import TestEntry
from modelaudit.report.gates import Gate, entry_gates

__all__ = ["HEADER", "fingerprint_lines", "summary_lines", "summary_rows"]

HEADER = ("gate", "value is", "value", "bound or baseline", "chance", "verdict")
"""Column titles of the table; a row has either all six cells or one (a test's id)."""

MAX_CLASSES = 6
"""Classes listed on a check's "by class" line (worst first); the report lists them all."""

_CHANGES = {
    "model": "against a different model",
    "method": "with a different method",
    "layer": "at a different layer",
    "data": "on different data",
    "versions": "under different library versions",
}


def _row(gate: Gate) -> tuple[str, ...]:
    return (
        f"{'    ' if gate.sub else '  '}{gate.check}",
        gate.value_is,
        gate.shown_value(),
        gate.limit(),
        format_number(gate.chance, missing="-"),
        gate.verdict(),
    )


def summary_rows(entries: Iterable[TestEntry]) -> list[tuple[str, ...]]:
    """Rows of the summary table: ``(nodeid,)`` then the test's 6-cell gate rows.

    Tests without gates, and passing tests that were not audited (``entry.audited``
    false), give no rows.

    Example:
        >>> from modelaudit.report.entries import RecordView, TestEntry
        >>> view = RecordView({"check": "pointing_game", "obtained": 1.0, "values": [1.0] * 8,
        ...                    "aggregate": "mean", "passed": True})
        >>> summary_rows([TestEntry("t", records=[view]), TestEntry("quiet")])
        [('t',), ('  pointing_game', 'mean of 8 samples', '1', '-', '-', 'pass')]
    """
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        if not (entry.audited or entry.failed):
            continue  # a passing plain test that called assertions: in the report only
        gates = entry_gates(entry)
        if gates:
            rows.append((entry.nodeid,))
            rows.extend(_rows(gates))
    return rows


def _rows(gates: Sequence[Gate]) -> list[tuple[str, ...]]:
    """A row per gate; the classes of a check not decided per class share one line."""
    out: list[tuple[str, ...]] = []
    info: list[Gate] = []
    for g in [*gates, None]:
        if g is not None and not g.gating:
            info.append(g)
            continue
        if info:
            out.append((_by_class(info),))
            info = []
        if g is not None:
            out.append(_row(g))
    return out


def _by_class(rows: Sequence[Gate], limit: int = MAX_CLASSES) -> str:
    """``    by class (not gated): triangle 0.1 fails, circle 0.9 ...`` worst first.

    Example:
        >>> gates = [Gate("t", f"per class: {n}", "v", v, v >= 0.5, bound=0.5, direction="higher",
        ...               sub=True, gating=False) for n, v in (("a", 0.9), ("b", 0.2))]
        >>> _by_class(gates)
        '    by class (not gated): b 0.2 fails, a 0.9'
    """
    sign = -1.0 if rows[0].direction == "lower" else 1.0
    ordered = sorted(rows, key=lambda g: sign * (g.value if g.value is not None else -math.inf))
    parts = [
        f"{g.check.removeprefix('per class: ')} {g.shown_value()}{'' if g.passed else ' fails'}"
        for g in ordered[:limit]
    ]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"    by class (not gated): {', '.join(parts)}{more}"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    cells = [r for r in rows if len(r) == len(HEADER)]
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *cells)]

    def fmt(r: tuple[str, ...]) -> str:
        parts = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2])]
        parts += [r[3].ljust(widths[3]), r[4].ljust(widths[4]), r[5]]
        return "  ".join(parts)

    return [fmt(HEADER).rstrip()] + [
        fmt(r).rstrip() if len(r) == len(HEADER) else r[0] for r in rows
    ]


def fingerprint_lines(entries: Iterable[TestEntry]) -> list[str]:
    """Lines counting the baseline comparisons whose fingerprint differs, per kind of change.

    Example:
        >>> from modelaudit.baseline import Comparison
        >>> from modelaudit.report.entries import TestEntry
        >>> c = Comparison("t::m", "m", 0.7, "higher", 0.05, 0.7, "ok", changed=("model",))
        >>> fingerprint_lines([TestEntry("t", metrics=[c, c])])
        ['baseline comparisons against a different model: 2 metrics (see report)']
    """
    counts = dict.fromkeys(_CHANGES, 0)
    for entry in entries:
        for c in entry.metrics:
            for part in c.changed:
                if part in counts:
                    counts[part] += 1
    return [
        f"baseline comparisons {_CHANGES[part]}: {n} metric{'s' if n != 1 else ''} (see report)"
        for part, n in counts.items()
        if n
    ]


def summary_lines(entries: Iterable[TestEntry]) -> list[str]:
    """The summary table as text lines (header first), then :func:`fingerprint_lines`;
    empty when there is nothing to show.

    Example:
        >>> from modelaudit.report.entries import TestEntry, mirrors_metrics
        >>> summary_lines([TestEntry("t")])
        []
    """
    entries = list(entries)
    rows = summary_rows(entries)
    return [*_table(rows), *fingerprint_lines(entries)] if rows else []
