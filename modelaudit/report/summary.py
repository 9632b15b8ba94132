"""The terminal summary: one table of metrics and checks per audited or failing test.

Each test gets a title row (its node id) followed by one row per baseline metric
(value | baseline | delta | verdict and status) and per audit record (obtained | bound
with its direction | obtained - bound | verdict). A baseline-gate record over metrics that
already have rows (the ``audit`` fixture's) is not repeated. Passing tests that only
called checks, without asking for modelaudit, stay out of the table (they are in the HTML
report). Numbers show 4 significant digits; deltas carry a sign; a missing value is ``-``.
Below the table, one line per kind of fingerprint change says how many baseline
comparisons ran against a different model, method, layer, data or library versions
(:func:`fingerprint_lines`).

Example:
    >>> from modelaudit.baseline import Comparison
    >>> from modelaudit.report.entries import RecordView, TestEntry
    >>> c = Comparison("t::iou", "iou", 0.71, "higher", 0.05, 0.7, "ok")
    >>> r = RecordView({"check": "mass_in_box", "obtained": 0.4, "bound": 0.5,
    ...                 "direction": "higher", "passed": False})
    >>> print("\\n".join(summary_lines([TestEntry("t", metrics=[c], records=[r])])))
    metric         value  baseline  delta  pass/fail
    t
      iou           0.71       0.7  +0.01  pass (ok)
      mass_in_box    0.4    >= 0.5   -0.1  FAIL
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelaudit._format import format_number
from modelaudit.report.entries import TestEntry, mirrors_metrics

__all__ = ["HEADER", "fingerprint_lines", "summary_lines", "summary_rows"]

HEADER = ("metric", "value", "baseline", "delta", "pass/fail")
"""Column titles of the table; a row has either all five cells or one (a test's id)."""

_SIGNS = {"higher": ">= ", "lower": "<= "}
_CHANGES = {
    "model": "against a different model",
    "method": "with a different method",
    "layer": "at a different layer",
    "data": "on different data",
    "versions": "under different library versions",
}


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or isinstance(value, int | float):
        return format_number(value, signed=signed, missing="-")
    return str(value)


def _entry_rows(entry: TestEntry) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for c in entry.metrics:
        verdict = "pass" if c.passed else "FAIL"
        rows.append(
            (
                f"  {c.name}",
                _fmt(c.value),
                _fmt(c.baseline),
                _fmt(c.delta, signed=True),
                f"{verdict} ({c.status})",
            )
        )
    for view in entry.records:
        if mirrors_metrics(view, entry.metrics):
            continue
        r = view.record
        if r.get("obtained") is None and r.get("unit") == "metric" and r.get("values"):
            rows.extend(_item_rows(r))  # several numbers, each with its own condition
            continue
        bound, obtained = r.get("bound"), r.get("obtained")
        sign = _SIGNS.get(str(r.get("direction")), "")
        delta = (
            obtained - bound
            if isinstance(obtained, int | float) and isinstance(bound, int | float)
            else None
        )
        rows.append(
            (
                f"  {r.get('check')}",
                _fmt(obtained),
                f"{sign}{_fmt(bound)}" if bound is not None else "-",
                _fmt(delta, signed=True),
                "pass" if r.get("passed") else "FAIL",
            )
        )
    return rows


def _item_rows(record: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per item of a record that decides several conditions without one bound.

    Example:
        >>> _item_rows({"check": "bg", "items": ["a", "b"], "values": [0.25, 1.0],
        ...             "unit": "metric", "failing": [1]})
        [('  bg: a', '0.25', '-', '-', 'pass'), ('  bg: b', '1', '-', '-', 'FAIL')]
    """
    failing = set(record.get("failing") or ())
    return [
        (f"  {record.get('check')}: {item}", _fmt(value), "-", "-",
         "FAIL" if i in failing else "pass")
        for i, (item, value) in enumerate(zip(record["items"], record["values"], strict=False))
    ]  # fmt: skip


def summary_rows(entries: Iterable[TestEntry]) -> list[tuple[str, ...]]:
    """Rows of the summary table: ``(nodeid,)`` then the test's 5-cell metric/check rows.

    Tests with neither metrics nor records, and passing tests that were not audited
    (``entry.audited`` false), give no rows.

    Example:
        >>> from modelaudit.report.entries import RecordView, TestEntry
        >>> view = RecordView({"check": "pointing_game", "obtained": 1.0, "passed": True})
        >>> summary_rows([TestEntry("t", records=[view]), TestEntry("quiet")])
        [('t',), ('  pointing_game', '1', '-', '-', 'pass')]
    """
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        if not (entry.audited or entry.failed):
            continue  # a passing plain test that called assertions: in the report only
        lines = _entry_rows(entry)
        if lines:
            rows.append((entry.nodeid,))
            rows.extend(lines)
    return rows


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    cells = [r for r in rows if len(r) == len(HEADER)]
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *cells)]

    def fmt(r: tuple[str, ...]) -> str:
        first = r[0].ljust(widths[0])
        middle = [r[i].rjust(widths[i]) for i in (1, 2, 3)]
        return "  ".join([first, *middle, r[4]])

    return [fmt(HEADER)] + [fmt(r) if len(r) == len(HEADER) else r[0] for r in rows]


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
