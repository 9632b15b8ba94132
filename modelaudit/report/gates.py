"""One row per gate: what the terminal summary and the report's summary table show.

A *gate* is one thing that can fail a test: an audit record (a check against a bound) or a
baseline comparison (a metric against its stored value). Each row says what its value is
(the mean, the worst sample, the fraction of samples passing...), the value, the bound or
baseline it meets, the chance level when there is one, and the verdict. A record of
several numbers without one bound (background reliance) gives a row per number; a record
with per-class results gives a row per class under its own: a gate when the check was
decided per class (``per_class=True``), else information (``gating`` false). The audit
fixture's gate over metrics that already have rows is not repeated.

Example:
    >>> from modelaudit.report.entries import RecordView, TestEntry
    >>> r = RecordView({"check": "mass_in_box", "values": [0.4, 0.6], "obtained": 0.5,
    ...                 "bound": 0.6, "direction": "higher", "aggregate": "mean",
    ...                 "unit": "sample", "passed": False, "chance": 0.25})
    >>> [(g.check, g.value_is, g.value, g.limit(), g.chance, g.passed)
    ...  for g in entry_gates(TestEntry("t", records=[r]))]
    [('mass_in_box', 'mean of 2 samples', 0.5, '>= 0.6', 0.25, False)]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from modelaudit._format import format_number
from modelaudit.baseline import Comparison
from modelaudit.report.entries import TestEntry, mirrors_metrics

__all__ = ["Gate", "entry_gates", "run_gates", "value_is"]


@dataclasses.dataclass(frozen=True)
class Gate:
    """One row of the summary.

    Attributes:
        test: the test's node id.
        check: what was checked (``"calibrated_mass"``, ``"deletion_auc vs baseline"``,
            ``"per class: circle"``).
        value_is: what :attr:`value` is, in words (``"mean of 64 samples"``).
        value: the number compared (None when there is none).
        passed: the verdict.
        bound: the bound, or the baseline value for a baseline gate (None: neither).
        direction: ``"higher"`` or ``"lower"`` is better (None: unknown).
        chance: what an uninformative map scores, when defined.
        baseline: this row compares with a stored baseline (:attr:`bound` is its value).
        tolerance: the baseline's relative tolerance.
        status: the baseline comparison's status (``ok``, ``regressed``...), else ``""``.
        sub: a row under the previous one (a class of a per-class record).
        record: the index of the record in the test's ``records`` (None for a metric).
        percent: :attr:`value` and :attr:`bound` are fractions shown as percentages.
        gating: the row decides the test (False: a class's result of a check that was not
            decided per class, shown for information).
    """

    test: str
    check: str
    value_is: str
    value: float | None
    passed: bool
    bound: float | None = None
    direction: str | None = None
    chance: float | None = None
    baseline: bool = False
    tolerance: float | None = None
    status: str = ""
    sub: bool = False
    record: int | None = None
    percent: bool = False
    gating: bool = True

    def verdict(self) -> str:
        """``pass`` / ``FAIL`` (with the baseline status), or ``(holds)`` / ``(fails)`` for
        a row that does not gate.

        Example:
            >>> Gate("t", "m", "value", 0.1, False, gating=False).verdict()
            '(fails)'
        """
        if not self.gating:
            return "(holds)" if self.passed else "(fails)"
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict} ({self.status})" if self.status else verdict

    def limit(self, *, unicode: bool = False) -> str:
        """The bound or baseline in words: ``">= 0.5"``, ``"baseline 0.3 (5% slack)"``.

        Example:
            >>> Gate("t", "m", "value", 0.7, True, bound=0.5, direction="higher").limit()
            '>= 0.5'
            >>> Gate("t", "m", "value", 0.7, True, bound=0.8, direction="higher", baseline=True,
            ...      tolerance=0.05).limit(unicode=True)
            'baseline 0.8, ≥ 0.76'
        """
        if self.bound is None:
            return "-"
        ge, le = ("≥", "≤") if unicode else (">=", "<=")
        sign = {"higher": ge, "lower": le}.get(str(self.direction), "")
        if self.baseline:
            slack = (self.tolerance or 0.0) * abs(self.bound)
            edge = self.bound - slack if self.direction == "higher" else self.bound + slack
            return f"baseline {format_number(self.bound)}, {sign} {format_number(edge)}"
        shown = f"{100 * self.bound:.0f}%" if self.percent else format_number(self.bound)
        return f"{sign} {shown}".strip()

    def shown_value(self) -> str:
        """:attr:`value` as the summary prints it (``-`` when there is none)."""
        if self.value is None:
            return "-"
        return f"{100 * self.value:.0f}%" if self.percent else format_number(self.value)


def value_is(record: Mapping[str, Any]) -> str:
    """What a record's ``obtained`` is, in words.

    Example:
        >>> value_is({"values": [0.1, 0.2, 0.3], "aggregate": "all", "unit": "sample"})
        'worst of 3 samples'
        >>> value_is({"values": [0.1], "aggregate": "all"})
        'value'
        >>> value_is({"values": [1, 0, 1, 1], "aggregate": "fraction", "bound": 0.5,
        ...           "direction": "higher", "details": {"required_fraction": 0.75}})
        'fraction of 4 samples >= 0.5'
    """
    n = len(record.get("values") or [])
    unit = str(record.get("unit") or "sample")
    units = f"{n} {unit}{'s' if n != 1 else ''}"
    aggregate = record.get("aggregate")
    if n <= 1 and aggregate != "fraction":
        return "value"
    if aggregate == "mean":
        return f"mean of {units}"
    if aggregate == "fraction":
        sign = {"higher": ">=", "lower": "<="}.get(str(record.get("direction")), "vs")
        return f"fraction of {units} {sign} {format_number(record.get('bound'))}"
    return f"worst of {units}"


def _metric_gate(test: str, c: Comparison) -> Gate:
    n = len(c.samples) if c.samples else 0
    value = None if not math.isfinite(c.value) else c.value
    return Gate(
        test=test,
        check=f"{c.name} vs baseline" if c.baseline is not None else c.name,
        value_is=f"mean of {n} samples" if n > 1 else "value",
        value=value,
        passed=c.passed,
        bound=c.baseline,
        direction=c.direction,
        baseline=c.baseline is not None,
        tolerance=c.tolerance,
        status=c.status,
    )


def _record_gates(test: str, r: Mapping[str, Any], index: int) -> list[Gate]:
    values = list(r.get("values") or [])
    check = str(r.get("check", "check"))
    details = r.get("details") or {}
    if r.get("obtained") is None and r.get("unit") == "metric" and values:
        return _item_gates(test, r, index)

    fraction = r.get("aggregate") == "fraction" and "passing_fraction" in details
    main = Gate(
        test=test,
        check=check,
        value_is=value_is(r),
        value=_num(details["passing_fraction"] if fraction else r.get("obtained")),
        passed=bool(r.get("passed")),
        bound=_num(details.get("required_fraction") if fraction else r.get("bound")),
        direction="higher" if fraction else r.get("direction"),
        chance=None if fraction else _num(r.get("chance")),
        record=index,
        percent=fraction,
    )
    return [main, *_class_gates(test, r, index)]


def _item_gates(test: str, r: Mapping[str, Any], index: int) -> list[Gate]:
    """A row per number of a record that decides several, each with its own condition
    (``details["item_bounds"]``: ``[bound, direction]`` per item, when the check gives it).

    Example:
        >>> r = {"check": "bg", "items": ["a", "b"], "values": [1.0, 0.0], "failing": [0],
        ...      "details": {"item_bounds": [[0.6, "lower"], [0.5, "higher"]]}}
        >>> [(g.check, g.value, g.limit(), g.passed) for g in _item_gates("t", r, 0)]
        [('bg: a', 1.0, '<= 0.6', False), ('bg: b', 0.0, '>= 0.5', True)]
    """
    values = list(r.get("values") or [])
    failing = {int(i) for i in r.get("failing") or []}
    items = [str(i) for i in r.get("items") or range(len(values))]
    limits = list((r.get("details") or {}).get("item_bounds") or [])
    rows = []
    for i, (item, v) in enumerate(zip(items, values, strict=False)):
        bound, direction = (limits[i] if i < len(limits) else (None, None))[:2]
        rows.append(
            Gate(
                test,
                f"{r.get('check', 'check')}: {item}",
                "value",
                _num(v),
                i not in failing,
                bound=_num(bound),
                direction=direction,
                record=index,
            )
        )
    return rows


def _class_gates(test: str, r: Mapping[str, Any], index: int) -> list[Gate]:
    """A row per class of a record's ``per_class`` results (none without them); for a
    fraction rule, the class's fraction of samples passing against the fraction needed.

    Example:
        >>> r = {"check": "iou", "values": [0.9, 0.2, 0.8, 0.7], "classes": [0, 0, 1, 1],
        ...      "bound": 0.5, "direction": "higher", "aggregate": "fraction",
        ...      "details": {"required_fraction": 0.75},
        ...      "per_class": [{"label": 0, "name": "a", "count": 2, "obtained": 0.2,
        ...                     "passed": False},
        ...                    {"label": 1, "name": "b", "count": 2, "obtained": 0.7,
        ...                     "passed": True}]}
        >>> [(g.check, g.shown_value(), g.limit()) for g in _class_gates("t", r, 0)]
        [('per class: a', '50%', '>= 75%'), ('per class: b', '100%', '>= 75%')]
    """
    rows = []
    details = r.get("details") or {}
    gating = bool(details.get("gated_per_class"))
    fraction = r.get("aggregate") == "fraction" and "required_fraction" in details
    for c in r.get("per_class") or []:
        name = c.get("name") if c.get("name") is not None else c.get("label")
        value, bound = _num(c.get("obtained")), _num(r.get("bound"))
        if fraction:
            value, bound = _passing_fraction(r, c.get("label")), _num(details["required_fraction"])
        rows.append(
            Gate(
                test=test,
                check=f"per class: {name}",
                value_is=f"{value_is({**r, 'values': [0] * int(c.get('count') or 0)})}",
                value=value,
                passed=bool(c.get("passed")),
                bound=bound,
                direction="higher" if fraction else r.get("direction"),
                sub=True,
                record=index,
                gating=gating,
                percent=fraction,
            )
        )
    return rows


def _passing_fraction(r: Mapping[str, Any], label: Any) -> float | None:
    """The share of the class's samples whose own value meets the record's bound."""
    values, classes = list(r.get("values") or []), list(r.get("classes") or [])
    bound, higher = _num(r.get("bound")), r.get("direction") != "lower"
    mine = [v for v, c in zip(values, classes, strict=False) if c == label and _num(v) is not None]
    if bound is None or not mine:
        return None
    return sum((v >= bound) if higher else (v <= bound) for v in mine) / len(mine)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def entry_gates(entry: TestEntry) -> list[Gate]:
    """The gates of one test: its baseline metrics, then its records, in order.

    Example:
        >>> from modelaudit.report.entries import TestEntry
        >>> c = Comparison("t::m", "m", 0.5, "higher", 0.05, 0.8, "regressed")
        >>> [(g.check, g.passed, g.status) for g in entry_gates(TestEntry("t", metrics=[c]))]
        [('m vs baseline', False, 'regressed')]
    """
    gates = [_metric_gate(entry.nodeid, c) for c in entry.metrics]
    for i, view in enumerate(entry.records):
        if mirrors_metrics(view, entry.metrics):
            continue
        gates.extend(_record_gates(entry.nodeid, view.record, i))
    return gates


def run_gates(entries: Iterable[TestEntry]) -> list[Gate]:
    """Every gate of a run, test by test (tests in the given order).

    Example:
        >>> from modelaudit.report.entries import RecordView, TestEntry
        >>> view = RecordView({"check": "pointing_game", "obtained": 1.0, "values": [1.0],
        ...                    "passed": True})
        >>> [(g.test, g.check) for g in run_gates([TestEntry("t", records=[view])])]
        [('t', 'pointing_game')]
    """
    return [g for e in entries for g in entry_gates(e)]
