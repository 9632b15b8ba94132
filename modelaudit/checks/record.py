"""The verdict: one immutable record per check, built by one function, printed by one formatter.

Every ``assert_*`` in modelaudit computes its values, hands them to :func:`decide`, and gets
back a frozen :class:`AuditRecord`. :func:`decide` emits the record to every open
:func:`collect_records` block (the pytest plugin's collector, a notebook) and raises
:class:`~modelaudit.errors.AuditFailure` when the check failed; the failure text is
:func:`format_record`'s, the same block layout for heat-map, hook, shape and baseline checks::

    assert_mass_in_box: mass_in_box >= 0.5 must hold for every sample; 1 of 2 samples fail.
      obtained: 0.1 (worst sample, index 1); mean 0.55
      expected: >= 0.5
      chance:   0.25 (what a uniform map scores; mean over samples)
      failing samples, worst first:
        1: 0.1

Nothing here touches the disk: the report draws a record's samples (:class:`SampleViews`).

Example:
    >>> from modelaudit.checks.record import collect_records, decide
    >>> with collect_records() as got:
    ...     rec = decide("assert_demo", "score", [0.9, 0.8], at_least=0.5)
    >>> rec.passed, rec.obtained, [r.check for r in got]
    (True, 0.8, ['score'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Literal

import torch

from modelaudit._format import format_number
from modelaudit.checks.classes import ByClass, ClassResult, class_line, worst_first
from modelaudit.errors import AuditFailure, InvalidInputError

__all__ = [
    "Aggregate",
    "AuditRecord",
    "ByClass",
    "ClassResult",
    "Curves",
    "Direction",
    "Overview",
    "Range",
    "SampleViews",
    "check_bound",
    "collect_records",
    "decide",
    "emit",
    "format_record",
    "judge",
]

Direction = Literal["higher", "lower"]
"""Which way a value is better: ``"higher"`` (a bound given as ``at_least=``) or ``"lower"``."""

Aggregate = Literal["all", "mean"] | float
"""How per-item values meet a bound: every item, their mean, or a fraction of items."""

Range = tuple[float, float]
"""A metric's closed range ``(lo, hi)``: every value it can take lies in ``[lo, hi]``."""

MAX_LISTED = 10
"""Failing items spelled out in a failure message; the record keeps them all."""


@dataclasses.dataclass(frozen=True)
class Curves:
    """A record-level plot: mean curves over the samples, each with its area (faithfulness).

    Attributes:
        x: (S,) the curves' abscissae, e.g. the fraction of pixels deleted, 0 to 1.
        lines: ``(label, (S,) mean curve, area)`` per drawn curve, e.g. the map's order.
        reference: the same for what the curves are compared with (a random pixel
            order), drawn dashed; None without one.
        x_label: what ``x`` is; y_label: what the curves are.
    """

    x: torch.Tensor
    lines: tuple[tuple[str, torch.Tensor, float], ...]
    reference: tuple[str, torch.Tensor, float] | None = None
    x_label: str = ""
    y_label: str = ""


@dataclasses.dataclass(frozen=True)
class SampleViews:
    """What the report needs to draw each sample: CPU tensors, detached.

    Attributes:
        images: (N, C, H, W) inputs scaled to [0, 1], or None.
        maps: (N, H, W) heat maps scaled to [0, 1] per map, or None.
        boxes: (N, 4) XYXY pixel boxes, or None.
        masks: (N, H, W) boolean masks, or None.
        region: what the boxes or masks outline: ``"object"`` or ``"forbidden region"``
            (a check that mass stays *off* it, such as a watermark).
        peaks: mark each map's hottest pixel (the pointing game's point).
        labels: (N,) the class each map explains (the true class when the target was the
            labels), or None.
        predicted: (N,) the model's top class on each image, or None.
        confidence: (N,) its softmax probability, or None.
        class_names: names of the classes, indexed by class, or None.
        strip: ``(caption, (N, H, W) maps)`` drawn after each sample's own map: the map
            at each randomisation step (sanity), under noise (stability).
        curves: a record-level plot (faithfulness), or None.
        titles: one heading per sample instead of "sample i" (e.g. which counterfactual
            of which image), or None.
        captions: what the two pictures of a sample are (``("input", "heat map")``).
        rows: the item (sample index) each row shows, when the views hold only some
            samples (a scan keeps its worst); None: row i is sample i.
    """

    images: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    region: str = "object"
    peaks: bool = False
    labels: torch.Tensor | None = None
    predicted: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None
    strip: tuple[tuple[str, torch.Tensor], ...] = ()
    curves: Curves | None = None
    titles: tuple[str, ...] | None = None
    captions: tuple[str, str] = ("input", "heat map")
    rows: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Overview:
    """The dataset-level picture of a heat-map check: where the maps look on average.

    Built by :func:`modelaudit.checks._maps.where_it_looks` from
    :func:`modelaudit.measure.off_object_mass`; the report draws it (for failed records)
    as the mean heat map with the mean object outlined, the mean object, and the mean
    off-object mass with the named region outlined. CPU tensors, detached.

    Attributes:
        mean_map: (H, W) the mean of the maps, each scaled to sum 1.
        mean_region: (H, W) the fraction of samples whose object covers each pixel.
        off_map: (H, W) the mean of each map's mass outside its object.
        image: (C, H, W) the mean input scaled to [0, 1], or None.
        region_mask: (H, W) bool pixels of the region the caption names, or None.
        caption: one line saying where the off-object mass lies.
    """

    mean_map: torch.Tensor
    mean_region: torch.Tensor
    off_map: torch.Tensor
    image: torch.Tensor | None = None
    region_mask: torch.Tensor | None = None
    caption: str = ""


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """The result of one check, pass or fail. Immutable; build it with :func:`decide`.

    Attributes:
        check: what was measured, e.g. ``"mass_in_box"``.
        assertion: the function that decided, e.g. ``"assert_mass_in_box"``.
        passed: whether the check held.
        values: one value per item (sample, layer, metric...).
        items: the items' labels (sample indices ``"0"``, ``"1"``... by default).
        unit: what an item is, singular (``"sample"``, ``"layer"``, ``"metric"``).
        bound: the threshold compared with (None for checks without one).
        direction: ``"higher"`` (``at_least=``) or ``"lower"`` (``at_most=``) is better.
        aggregate: ``"all"``, ``"mean"`` or ``"fraction"``.
        obtained: the aggregated value compared with ``bound``.
        failing: indices of the items whose own value breaks the bound.
        chance: the value an uninformative (uniform) map scores, when defined.
        rule: what must hold, in words (the failure's first line).
        reasons: one text per item, shown instead of its value when given.
        notes: extra lines of the failure text.
        hint: the failure text's last line: how to fix it or update a baseline.
        details: anything else worth keeping (method, layer, per-step values...).
        samples: tensors for the report's pictures; not serialised.
        overview: the dataset-level picture (mean map next to mean object), for heat-map
            checks against a region; only its caption is serialised.
        classes: the class of each item, aligned with ``values`` (empty when unknown).
        per_class: the record's rule applied within each class (:class:`ClassResult`,
            by label), whenever the classes are known.
    """

    check: str
    assertion: str
    passed: bool
    values: tuple[float, ...]
    items: tuple[str, ...] = ()
    unit: str = "sample"
    bound: float | None = None
    direction: Direction | None = None
    aggregate: str = "all"
    obtained: float | None = None
    failing: tuple[int, ...] = ()
    chance: float | None = None
    rule: str = ""
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    hint: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    samples: SampleViews | None = dataclasses.field(default=None, repr=False, compare=False)
    overview: Overview | None = dataclasses.field(default=None, repr=False, compare=False)
    classes: tuple[int, ...] = ()
    per_class: tuple[ClassResult, ...] = ()

    def __post_init__(self) -> None:
        if not self.items:
            object.__setattr__(self, "items", tuple(str(i) for i in range(len(self.values))))
        object.__setattr__(self, "details", types.MappingProxyType(dict(self.details)))

    @property
    def message(self) -> str:
        """The failure text (or a one-line summary when the check passed)."""
        return format_record(self)

    @property
    def method(self) -> str | None:
        """The explanation method behind the maps, when known."""
        return self.details.get("method")

    @property
    def layer(self) -> Any:
        """The explained layer(s), when known."""
        return self.details.get("layer")

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN and infinities become None; no tensors: the
        ``overview`` is its caption, or None)."""
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "samples"
        }
        out["overview"] = None if self.overview is None else self.overview.caption
        out["per_class"] = [c.to_json() for c in self.per_class]
        out["details"] = dict(self.details)
        out["message"] = self.message
        return _json_safe(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.detach().cpu().tolist())
    return value


# -- deciding ---------------------------------------------------------------------------------


def _bound(at_least: float | None, at_most: float | None) -> tuple[float, Direction]:
    if (at_least is None) == (at_most is None):
        raise InvalidInputError(
            "give exactly one bound as a keyword: at_least=... (higher is better) or "
            "at_most=... (lower is better)"
        )
    value, direction = (at_least, "higher") if at_least is not None else (at_most, "lower")
    keyword = "at_least" if direction == "higher" else "at_most"
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInputError(f"{keyword} must be a number; got {value!r}")
    return float(value), direction  # type: ignore[return-value]


def _show(x: float) -> str:
    """``x`` short (``0``, ``-0.1``, ``1.5``) but exact (``0.1234567`` stays whole)."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _check_range(bounds: Range) -> tuple[float, float]:
    ok = (
        isinstance(bounds, tuple)
        and len(bounds) == 2
        and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
        and not any(math.isnan(b) for b in bounds)
        and bounds[0] < bounds[1]
    )
    if not ok:
        raise InvalidInputError(
            f"bounds must be a metric's range (lo, hi) with lo < hi; got {bounds!r}"
        )
    return float(bounds[0]), float(bounds[1])


def check_bound(
    assertion: str,
    check: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    bounds: Range | None = None,
) -> tuple[float, Direction]:
    """Validate the one bound of a check; return ``(bound, direction)``.

    With ``bounds=(lo, hi)``, the range of a metric whose values all lie in ``[lo, hi]``, a
    bound that decides nothing is an error:

    - ``at_least`` must lie in ``(lo, hi]``: ``at_least <= lo`` always passes (every value
      is ``>= lo``); ``at_least > hi`` never passes. ``at_least == hi`` is kept: it asks
      for the best possible value (e.g. every pointing game a hit).
    - ``at_most`` must lie in ``[lo, hi)``: ``at_most >= hi`` always passes;
      ``at_most < lo`` never passes. ``at_most == lo`` is kept (e.g. no mass at all on a
      watermark).

    (A NaN value fails every bound, so "always passes" means for every real value.)
    Checks call this before computing, to fail fast; :func:`decide` calls it again.

    Raises:
        InvalidInputError: no bound or two, a bound that is not a number, a bad ``bounds``,
            or a bound outside its valid range (the message names the argument, the value
            and the range).

    Example:
        >>> check_bound("assert_demo", "score", at_least=1.0, bounds=(0, 1))
        (1.0, 'higher')
        >>> check_bound("assert_demo", "score", at_least=0, bounds=(0, 1))
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: assert_demo: at_least=0 always passes: score lies in [0, 1], so every value is >= 0. Give at_least in (0, 1].
    """
    bound, direction = _bound(at_least, at_most)
    if bounds is None:
        return bound, direction
    lo, hi = _check_range(bounds)
    keyword, op = ("at_least", ">=") if direction == "higher" else ("at_most", "<=")
    given = _show(bound)
    if direction == "higher":
        valid, vacuous, impossible = f"({lo:g}, {hi:g}]", bound <= lo, bound > hi
    else:
        valid, vacuous, impossible = f"[{lo:g}, {hi:g})", bound >= hi, bound < lo
    where = f"{check} lies in [{lo:g}, {hi:g}]"
    if vacuous:
        raise InvalidInputError(
            f"{assertion}: {keyword}={given} always passes: {where}, so every value is "
            f"{op} {given}. Give {keyword} in {valid}."
        )
    if impossible:
        raise InvalidInputError(
            f"{assertion}: {keyword}={given} can never pass: {where}, so no value is "
            f"{op} {given}. Give {keyword} in {valid}."
        )
    return bound, direction


def _check_aggregate(aggregate: Aggregate) -> None:
    if aggregate in ("all", "mean"):
        return
    if (
        isinstance(aggregate, bool)
        or not isinstance(aggregate, int | float)
        or not 0 < aggregate <= 1
    ):
        raise InvalidInputError(
            f"aggregate must be 'all', 'mean' or a fraction of samples in (0, 1]; got {aggregate!r}"
        )


def _holds(value: float, bound: float, direction: Direction) -> bool:
    return value >= bound if direction == "higher" else value <= bound


def _goodness(value: float, direction: Direction) -> float:
    """Sort key, worst first; NaN is the worst of all."""
    if math.isnan(value):
        return -math.inf
    return value if direction == "higher" else -value


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _aggregate(
    vals: list[float], bound: float, direction: Direction, aggregate: Aggregate, unit: str
) -> tuple[float, str, str, dict[str, Any]]:
    """(obtained, aggregate label, rule suffix, extra details) for ``vals``."""
    n = len(vals)
    units = unit + ("s" if n != 1 else "")
    ranked = sorted(vals, key=lambda v: -_goodness(v, direction))
    if aggregate == "all":
        return ranked[-1], "all", f"must hold for every {unit}", {}
    if aggregate == "mean":
        return sum(vals) / n, "mean", f"must hold for the mean over {n} {units}", {}
    need = max(1, math.ceil(float(aggregate) * n - 1e-9))
    passing = sum(_holds(v, bound, direction) for v in vals)
    rule = f"must hold for at least {float(aggregate):.0%} of {units} ({need} of {n})"
    extra = {"required_fraction": float(aggregate), "passing_fraction": passing / n}
    return ranked[need - 1], "fraction", rule, extra


def _check_one_per_value(assertion: str, count: int, **given: Sequence[str]) -> None:
    for name, entries in given.items():
        if entries and len(entries) != count:
            raise InvalidInputError(
                f"{assertion}: {name} has {len(entries)} entries for {count} values; "
                "give one per value"
            )


def decide(
    assertion: str,
    check: str,
    values: torch.Tensor | Sequence[float],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    bounds: Range | None = None,
    aggregate: Aggregate = "all",
    unit: str = "sample",
    items: Sequence[str] = (),
    chance: torch.Tensor | Sequence[float] | None = None,
    reasons: Sequence[str] = (),
    notes: Sequence[str] = (),
    hint: str = "",
    details: Mapping[str, Any] | None = None,
    samples: SampleViews | None = None,
    overview: Overview | None = None,
    failure_notes: Sequence[str] = (),
    classes: ByClass | None = None,
) -> AuditRecord:
    """Compare per-item ``values`` with a bound, emit the record, raise if the check failed.

    The one path from numbers to a verdict. Exactly one of ``at_least`` / ``at_most`` is
    given. ``aggregate``: ``"all"`` (every item; *obtained* is the worst), ``"mean"``, or a
    fraction ``q`` in (0, 1] of items that must pass (*obtained* is the ``ceil(q N)``-th
    best value, so it meets the bound exactly when enough items do). ``bounds=(lo, hi)`` is
    the metric's range, when it has one: a bound that always or never passes is then an
    error (see :func:`check_bound` for which endpoints); an unbounded metric leaves it None.
    ``failure_notes`` join ``notes`` only if it fails (``samples``, ``overview``: pictures).
    ``classes`` (:func:`~modelaudit.checks.classes.by_class`) gives the class of each item:
    the rule is then also applied within each class (``record.per_class``), and with its
    ``gate`` every class must pass as well.

    Returns:
        the passing :class:`AuditRecord`.

    Raises:
        AuditFailure: the check failed; ``.record`` holds the record.
        InvalidInputError: no values, no bound or two bounds, a bound outside ``bounds``, a
            bad ``aggregate``, or ``items`` / ``reasons`` / ``classes`` not one per value.

    Example:
        >>> decide("assert_demo", "score", [0.9, 0.2], at_least=0.5)
        Traceback (most recent call last):
        ...
        modelaudit.errors.AuditFailure: assert_demo: score >= 0.5 must hold for every sample; 1 of 2 samples fail.
          obtained: 0.2 (worst sample, index 1); mean 0.55
          expected: >= 0.5
          failing samples, worst first:
            1: 0.2
    """
    __tracebackhide__ = True
    return conclude(
        judge(
            assertion,
            check,
            values,
            at_least=at_least,
            at_most=at_most,
            bounds=bounds,
            aggregate=aggregate,
            unit=unit,
            items=items,
            chance=chance,
            reasons=reasons,
            notes=notes,
            hint=hint,
            details=details,
            samples=samples,
            overview=overview,
            failure_notes=failure_notes,
            classes=classes,
        )
    )


def judge(
    assertion: str,
    check: str,
    values: torch.Tensor | Sequence[float],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    bounds: Range | None = None,
    aggregate: Aggregate = "all",
    unit: str = "sample",
    items: Sequence[str] = (),
    chance: torch.Tensor | Sequence[float] | None = None,
    reasons: Sequence[str] = (),
    notes: Sequence[str] = (),
    hint: str = "",
    details: Mapping[str, Any] | None = None,
    samples: SampleViews | None = None,
    overview: Overview | None = None,
    failure_notes: Sequence[str] = (),
    classes: ByClass | None = None,
) -> AuditRecord:
    """The record :func:`decide` would conclude with, neither emitted nor raised.

    For a check whose verdict needs one more condition than the bound: adjust the record
    (``dataclasses.replace``), then ``return conclude(record)``.

    Example:
        >>> judge("assert_demo", "score", [0.9, 0.2], at_least=0.5).passed
        False
    """
    bound, direction = check_bound(
        assertion, check, at_least=at_least, at_most=at_most, bounds=bounds
    )
    _check_aggregate(aggregate)
    vals = _checked_values(assertion, values, items=items, reasons=reasons)
    obtained, label, rule, extra = _aggregate(vals, bound, direction, aggregate, unit)
    failing = tuple(i for i, v in enumerate(vals) if not _holds(v, bound, direction))
    mean_chance, info = _with_chance(chance, {**(details or {}), **extra})
    passed = _holds(obtained, bound, direction)
    record = AuditRecord(
        check=check,
        assertion=assertion,
        passed=passed,
        values=tuple(vals),
        items=tuple(items),
        unit=unit,
        bound=bound,
        direction=direction,
        aggregate=label,
        obtained=obtained,
        failing=failing,
        chance=mean_chance,
        rule=f"{check} {'>=' if direction == 'higher' else '<='} {bound:g} {rule}",
        reasons=tuple(reasons),
        notes=tuple(notes) + (() if passed else tuple(failure_notes)),
        hint=hint,
        details=info,
        samples=samples,
        overview=overview,
    )
    if classes is None:
        return record
    return _with_classes(record, classes, vals, aggregate, failure_notes)


def _with_classes(
    record: AuditRecord,
    by: ByClass,
    vals: list[float],
    aggregate: Aggregate,
    failure_notes: Sequence[str],
) -> AuditRecord:
    """``record`` with its per-class results; with ``by.gate``, every class must pass too."""
    _check_one_per_value(record.assertion, len(vals), classes=[str(c) for c in by.labels])
    assert record.bound is not None and record.direction is not None
    groups: dict[int, list[float]] = {}
    for label, value in zip(by.labels, vals, strict=True):
        groups.setdefault(label, []).append(value)
    results = []
    for label in sorted(groups):
        got = _aggregate(groups[label], record.bound, record.direction, aggregate, record.unit)[0]
        ok = _holds(got, record.bound, record.direction)
        results.append(ClassResult(label, by.name(label), len(groups[label]), got, ok))
    extra: dict[str, Any] = {}
    if by.gate:
        held = record.passed and all(r.passed for r in results)
        extra = {
            "passed": held,
            "rule": f"{record.rule}, and in every class",
            "details": {**record.details, "gated_per_class": True},
        }
        if record.passed and not held:  # only the classes fail
            extra["notes"] = (*record.notes, *failure_notes)
    return dataclasses.replace(record, classes=by.labels, per_class=tuple(results), **extra)


def _with_chance(
    chance: torch.Tensor | Sequence[float] | None, info: dict[str, Any]
) -> tuple[float | None, dict[str, Any]]:
    """The mean chance level, and ``info`` with the per-sample chance levels added."""
    if chance is None:
        return None, info
    per = _floats(chance)
    return (sum(per) / len(per) if per else None), {**info, "chance_per_sample": per}


def _checked_values(
    assertion: str,
    values: torch.Tensor | Sequence[float],
    *,
    items: Sequence[str],
    reasons: Sequence[str],
) -> list[float]:
    """``values`` as floats, checked non-empty and with ``items`` / ``reasons`` one per value.

    Raises:
        InvalidInputError: no values, or ``items`` / ``reasons`` not one per value.
    """
    __tracebackhide__ = True
    vals = _floats(values)
    if not vals:
        raise InvalidInputError(f"{assertion}: there are no values to check (an empty batch?)")
    _check_one_per_value(assertion, len(vals), items=items, reasons=reasons)
    return vals


def conclude(record: AuditRecord) -> AuditRecord:
    """Emit ``record``; return it if it passed, raise :class:`AuditFailure` if not.

    For checks whose verdict is not a bound on numbers (a shape diff, a hook left behind):
    build the :class:`AuditRecord` yourself and end with ``return conclude(record)``.
    """
    __tracebackhide__ = True
    emit(record)
    if not record.passed:
        raise AuditFailure(record)
    return record


def _floats(values: torch.Tensor | Sequence[float]) -> list[float]:
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().double().cpu().reshape(-1).tolist()]
    return [float(v) for v in values]


# -- the one formatter --------------------------------------------------------------------------


def _how(record: AuditRecord) -> str:
    n = len(record.values)
    if record.aggregate == "mean":
        return "mean"
    if record.aggregate == "fraction":
        need = max(1, math.ceil(float(record.details["required_fraction"]) * n - 1e-9))
        return f"the {_ordinal(need)} best of {n} {record.unit}s"
    if n == 1:
        return f"the only {record.unit}"
    worst = min(range(n), key=lambda i: _goodness(record.values[i], record.direction or "higher"))
    return f"worst {record.unit}, {_item_name(record, worst)}"


def _item_name(record: AuditRecord, i: int) -> str:
    return f"index {i}" if record.items[i] == str(i) else record.items[i]


def _count(record: AuditRecord) -> str:
    n, bad = len(record.values), len(record.failing)
    if record.aggregate == "fraction":
        return f"{n - bad} of {n} {record.unit}s ({(n - bad) / n:.0%}) satisfy it."
    return f"{bad} of {n} {record.unit}{'s' if n != 1 else ''} fail."


def format_record(record: AuditRecord) -> str:
    """Render a record: one line when it passed, the failure block when it failed.

    Example:
        >>> rec = AuditRecord("shape", "assert_shapes", False, (1.0, 0.0), items=("a", "b"),
        ...                   unit="layer", failing=(0,), rule="every shape must match",
        ...                   reasons=("obtained (4, 4), expected (5, 5)", ""))
        >>> print(format_record(rec))
        assert_shapes: every shape must match; 1 of 2 layers fail.
          failing layers:
            a: obtained (4, 4), expected (5, 5)
    """
    head = f"{record.assertion}: {record.rule}"
    if record.passed:
        tail = f": obtained {format_number(record.obtained)}" if record.obtained is not None else ""
        chance = f", chance {format_number(record.chance)}" if record.chance is not None else ""
        return f"{head} held ({record.aggregate}){tail}{chance}{_classes_held(record)}"
    lines = [f"{head}; {_count(record)}"]
    if record.bound is not None and record.obtained is not None:
        mean = sum(record.values) / len(record.values)
        op = ">=" if record.direction == "higher" else "<="
        redundant = record.aggregate == "mean" or len(record.values) == 1
        also = "" if redundant else f"; mean {format_number(mean)}"
        lines.append(f"  obtained: {format_number(record.obtained)} ({_how(record)}){also}")
        lines.append(f"  expected: {op} {record.bound:g}")
    if record.per_class:
        gate = bool(record.details.get("gated_per_class"))
        line = class_line(record.per_class, record.direction, gate=gate, limit=MAX_LISTED)
        lines.append(f"  {line}")
    if record.chance is not None:
        lines.append(
            f"  chance:   {format_number(record.chance)} (what a uniform map scores; mean over samples)"
        )
    lines += _failing_lines(record)
    lines += [f"  {note}" for note in record.notes]
    where = ", ".join(
        f"{k}: {record.details[k]}" for k in ("method", "layer") if k in record.details
    )
    if where:
        lines.append(f"  {where}")
    if record.hint:
        lines.append(record.hint)
    return "\n".join(lines)


def _classes_held(record: AuditRecord) -> str:
    """``"; every class held (3 classes, worst ...)"`` for a passing per-class gate."""
    if not record.per_class or not record.details.get("gated_per_class"):
        return ""
    n, worst = len(record.per_class), worst_first(record.per_class, record.direction)[0]
    shown = f"{worst.shown} (n={worst.count}): {format_number(worst.obtained)}"
    return f"; every class held ({n} class{'es' if n != 1 else ''}, worst {shown})"


def _failing_lines(record: AuditRecord) -> list[str]:
    if not record.failing:
        return []
    order = list(record.failing)
    if record.direction is not None and not record.reasons:
        order.sort(key=lambda i: _goodness(record.values[i], record.direction or "higher"))
    ranked = ", worst first" if record.direction is not None and not record.reasons else ""
    lines = [f"  failing {record.unit}s{ranked}:"]
    for i in order[:MAX_LISTED]:
        text = record.reasons[i] if record.reasons else format_number(record.values[i])
        lines.append(f"    {record.items[i]}: {text}")
    if len(order) > MAX_LISTED:
        lines.append(f"    ... and {len(order) - MAX_LISTED} more (all in the record's .failing)")
    return lines


# -- who receives records ---------------------------------------------------------------------

_COLLECTORS: ContextVar[tuple[list[AuditRecord], ...]] = ContextVar(
    "modelaudit_collectors", default=()
)


def emit(record: AuditRecord) -> AuditRecord:
    """Hand ``record`` to every open :func:`collect_records` block and return it."""
    for sink in _COLLECTORS.get():
        sink.append(record)
    return record


@contextlib.contextmanager
def collect_records() -> Iterator[list[AuditRecord]]:
    """Collect every record emitted inside the block (blocks nest; each gets all).

    Example:
        >>> with collect_records() as outer:
        ...     with collect_records() as inner:
        ...         _ = decide("assert_demo", "score", [1.0], at_most=2)
        >>> len(outer), len(inner)
        (1, 1)
    """
    sink: list[AuditRecord] = []
    token = _COLLECTORS.set((*_COLLECTORS.get(), sink))
    try:
        yield sink
    finally:
        _COLLECTORS.reset(token)
