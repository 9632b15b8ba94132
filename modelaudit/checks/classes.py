"""Per-class results: which class each item belongs to, and how each class fared.

A check that knows the class of each sample (a heat-map check reads it from the maps'
``targets``; others take ``classes=``) hands :func:`by_class` to
:func:`~modelaudit.checks.record.decide`, which applies the record's own rule (bound,
direction, aggregate) within each class and stores one :class:`ClassResult` per class.
With ``per_class=True`` every class must pass too, and the failure names the classes that
do not.

Example:
    >>> import torch
    >>> by = by_class(torch.tensor([0, 1, 1]), names=("circle", "square"), gate=True)
    >>> by.labels, by.name(1), by.gate
    ((0, 1, 1), 'square', True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch

from modelaudit._format import format_number
from modelaudit.errors import InvalidInputError

__all__ = [
    "ByClass",
    "ClassResult",
    "by_class",
    "class_line",
    "classes_for",
    "classes_of",
    "worst_first",
]

ClassesLike = torch.Tensor | Sequence[int]
"""The class of each item: an ``(N,)`` integer tensor or a sequence of N ints."""


@dataclasses.dataclass(frozen=True)
class ClassResult:
    """One class's share of a record: the record's rule applied to that class's items.

    Attributes:
        label: the class index.
        name: the class's name, when known.
        count: the items of this class.
        obtained: the class's aggregated value (worst, mean or the fraction's cut-off), as
            the record's own ``obtained`` is computed; None when it has no bound.
        passed: whether the class meets the record's bound.
    """

    label: int
    name: str | None
    count: int
    obtained: float | None
    passed: bool

    @property
    def shown(self) -> str:
        """The class's name, else its label."""
        return self.name if self.name is not None else str(self.label)

    def to_json(self) -> dict[str, Any]:
        """``{"label", "name", "count", "obtained", "passed"}`` (NaN becomes None)."""
        ok = self.obtained is not None and math.isfinite(self.obtained)
        return {
            "label": self.label,
            "name": self.name,
            "count": self.count,
            "obtained": self.obtained if ok else None,
            "passed": self.passed,
        }


@dataclasses.dataclass(frozen=True)
class ByClass:
    """The per-class option of :func:`~modelaudit.checks.record.decide`: build it with
    :func:`by_class`.

    Attributes:
        labels: the class of each item, aligned with the values.
        names: class names indexed by label (``names[label]``), or None.
        gate: whether every class must pass as well (``per_class=True``).
    """

    labels: tuple[int, ...]
    names: tuple[str, ...] | None = None
    gate: bool = False

    def name(self, label: int) -> str | None:
        """The name of ``label``, or None when unknown."""
        if self.names is None or not 0 <= label < len(self.names):
            return None
        return str(self.names[label])


def _as_labels(classes: Any) -> tuple[int, ...]:
    if isinstance(classes, torch.Tensor):
        if classes.dim() != 1 or classes.is_floating_point() or classes.is_complex():
            raise InvalidInputError(
                f"classes must be an (N,) integer tensor, one class per sample; got shape "
                f"{tuple(classes.shape)} of {classes.dtype}"
            )
        return tuple(int(c) for c in classes.tolist())
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise InvalidInputError(
            f"classes must be an (N,) integer tensor or a sequence of ints; got "
            f"{type(classes).__name__}"
        )
    bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, int)]
    if bad:
        raise InvalidInputError(f"classes must be ints, one per sample; got {bad[0]!r}")
    return tuple(int(c) for c in classes)


def by_class(
    classes: ClassesLike | None,
    *,
    names: Sequence[str] | None = None,
    gate: bool = False,
    what: str = "the check",
) -> ByClass | None:
    """The per-class option for ``decide(classes=...)``; None when the classes are unknown.

    Raises:
        InvalidInputError: ``gate`` (``per_class=True``) without classes, or classes that
            are not one integer per sample.

    Example:
        >>> by_class([2, 0, 2]).labels
        (2, 0, 2)
        >>> by_class(None) is None
        True
    """
    if classes is None:
        if gate:
            raise InvalidInputError(
                f"{what}: per_class=True needs the class of each sample: pass classes=labels "
                "(or maps from a modelaudit explainer with one target per sample)"
            )
        return None
    named = None if names is None else tuple(str(n) for n in names)
    return ByClass(_as_labels(classes), named, bool(gate))


def classes_of(maps: Any, classes: ClassesLike | None) -> ClassesLike | None:
    """``classes`` if given, else the maps' explained class per sample (``targets`` of
    shape ``(N,)``), else None.

    Example:
        >>> import torch
        >>> classes_of(torch.zeros(2, 4, 4), None) is None
        True
        >>> classes_of(torch.zeros(2, 4, 4), [1, 0])
        [1, 0]
    """
    if classes is not None:
        return classes
    targets = getattr(maps, "targets", None)
    if isinstance(targets, torch.Tensor) and targets.dim() == 1:
        return targets
    return None


def classes_for(
    maps: Any, classes: ClassesLike | None, per_class: bool, what: str
) -> ByClass | None:
    """The per-class option of a check: ``classes`` (else the maps' targets), the maps'
    ``class_names``, and the ``per_class`` gate.

    Example:
        >>> classes_for(None, [0, 1], True, "assert_demo").gate
        True
    """
    names = getattr(maps, "class_names", None)
    return by_class(classes_of(maps, classes), names=names, gate=per_class, what=what)


def worst_first(results: Sequence[ClassResult], direction: str | None) -> list[ClassResult]:
    """``results`` failing first, each group worst first (NaN and None are the worst).

    Example:
        >>> rs = [ClassResult(0, None, 5, 0.9, True), ClassResult(1, None, 5, 0.2, True)]
        >>> [r.label for r in worst_first(rs, "higher")], [r.label for r in worst_first(rs, "lower")]
        ([1, 0], [0, 1])
    """

    def badness(r: ClassResult) -> float:
        v = r.obtained
        if v is None or math.isnan(v):
            return math.inf
        return -v if direction != "lower" else v

    return sorted(results, key=lambda r: (r.passed, -badness(r), r.label))


def class_line(
    results: Sequence[ClassResult], direction: str | None, *, gate: bool, limit: int
) -> str:
    """The failure text's per-class line: the failing classes when gated (else all),
    worst first, at most ``limit``.

    Example:
        >>> rs = [ClassResult(0, "circle", 20, 0.8, True), ClassResult(1, None, 21, 0.31, False)]
        >>> class_line(rs, "higher", gate=True, limit=10)
        'per class: 1 of 2 classes fail: 1 (n=21): 0.31'
        >>> class_line(rs, "higher", gate=False, limit=10)
        'per class (not gated), worst first: 1 (n=21): 0.31 fails, circle (n=20): 0.8'
    """
    ranked = worst_first(results, direction)
    bad = [r for r in ranked if not r.passed]
    shown = bad if gate else ranked
    parts = [
        f"{r.shown} (n={r.count}): {format_number(r.obtained)}"
        + ("" if gate or r.passed else " fails")
        for r in shown[:limit]
    ]
    more = f", ... and {len(shown) - limit} more" if len(shown) > limit else ""
    n = len(results)
    if gate:
        return (
            f"per class: {len(bad)} of {n} class{'es' if n != 1 else ''} fail: "
            + ", ".join(parts)
            + more
        )
    return "per class (not gated), worst first: " + ", ".join(parts) + more
