"""Which samples of a record the report draws, and in what order: failing ones first, worst first.

A failing sample is one listed in ``record.failing``; "worst" follows ``record.direction``
(``"higher"`` is better: the lowest value is the worst; NaN is always the worst). Values
only rank samples when the record has one value per sample. Passing samples follow, also
worst first (a passing check's weakest samples are the ones worth a look); without one
value per sample, in index order. When the record knows each sample's class, each group
(failing, then passing) starts with the worst sample of every class, so a capped list of
tiles covers the classes.

Example:
    >>> from modelaudit.checks.record import AuditRecord
    >>> rec = AuditRecord("iou", "assert_iou", False, (0.9, 0.2, 0.1, 0.7), failing=(1, 2),
    ...                   direction="higher")
    >>> sample_order(rec, 4)
    [2, 1, 3, 0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelaudit.checks.record import AuditRecord

__all__ = ["classes_first", "failing_first", "sample_order"]


def _badness(value: float | None, direction: str | None) -> float:
    if value is None or math.isnan(value):
        return math.inf
    return -value if direction != "lower" else value


def failing_first(
    values: Sequence[float | None],
    failing: Iterable[int],
    direction: str | None,
    count: int,
) -> list[int]:
    """Indices ``0..count-1``: those in ``failing`` worst first, then the rest worst first.

    Values rank the items only when there is one per item (None counts as NaN); else
    failing items keep their given order and the rest their index order.

    Example:
        >>> failing_first([0.3, None, 0.1], failing=[0, 1, 2], direction="higher", count=3)
        [1, 2, 0]
        >>> failing_first([0.9, 0.6, 0.8], failing=[], direction="higher", count=3)
        [1, 2, 0]
    """
    bad = [i for i in dict.fromkeys(int(i) for i in failing) if 0 <= i < count]
    chosen = set(bad)
    rest = [i for i in range(count) if i not in chosen]
    if len(values) == count:
        bad.sort(key=lambda i: -_badness(values[i], direction))
        rest.sort(key=lambda i: -_badness(values[i], direction))
    return bad + rest


def sample_order(record: AuditRecord, count: int, limit: int | None = None) -> list[int]:
    """Indices of ``count`` samples: failing ones worst first, then the rest; at most ``limit``.

    Example:
        >>> from modelaudit.checks.record import AuditRecord
        >>> rec = AuditRecord("drop", "assert_drop", False, (0.1, 0.5, 0.9), failing=(1, 2),
        ...                   direction="lower")
        >>> sample_order(rec, 3, limit=2)
        [2, 1]
    """
    order = failing_first(record.values, record.failing, record.direction, count)
    classes = getattr(record, "classes", ())
    if classes and len(classes) == len(record.values) == count:
        failing = {int(i) for i in record.failing}
        bad = [i for i in order if i in failing]
        order = classes_first(bad, classes) + classes_first(order[len(bad) :], classes)
    return order if limit is None else order[: max(0, limit)]


def classes_first(order: Sequence[int], classes: Sequence[int]) -> list[int]:
    """``order`` with the first sample of each class moved to the front (both parts keep
    their order): a capped list of worst samples then shows every class.

    Example:
        >>> classes_first([4, 2, 0, 3, 1], classes=[0, 1, 0, 1, 0])  # 4, 2, 0: class 0
        [4, 3, 2, 0, 1]
    """
    seen: set[int] = set()
    first: list[int] = []
    rest: list[int] = []
    for i in order:
        (rest if classes[i] in seen else first).append(i)
        seen.add(classes[i])
    return first + rest
