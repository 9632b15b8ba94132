"""The release gate: metric values compared with a baseline file, decided like every check.

:class:`~modelaudit.baseline.Comparison` objects (from :meth:`Baseline.compare`) become one
:class:`~modelaudit.checks.record.AuditRecord` whose items are the metric names: it passes
when every comparison does (within tolerance, improved, recorded or being updated) and
fails listing each metric that regressed, has no baseline entry, or is not a number, with
how to update the baseline if the change is intended.

Example:
    >>> from modelaudit.baseline import Baseline
    >>> base = Baseline()
    >>> base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    >>> assert_within_baseline([base.compare("t::iou", 0.79)]).passed
    True
    >>> assert_within_baseline([base.compare("t::iou", 0.5)], hint="Update: rerun with -U")
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_within_baseline: every metric must stay within its tolerance of the baseline; 1 of 1 metric fail.
      failing metrics:
        iou: regressed: obtained 0.5, baseline 0.8 (t::iou), delta -0.3 (-37.5%; allowed: -0.04)
    Update: rerun with -U
"""

from __future__ import annotations

from collections.abc import Sequence

from modelaudit.baseline import Comparison
from modelaudit.checks.record import AuditRecord, conclude
from modelaudit.errors import InvalidInputError

__all__ = ["UPDATE_HINT", "assert_within_baseline"]

UPDATE_HINT = (
    "If the change is intended, update the baseline: re-run pytest with "
    "--audit-update-baseline (and commit the baseline file)"
)


def assert_within_baseline(
    comparisons: Sequence[Comparison], *, hint: str = UPDATE_HINT
) -> AuditRecord:
    """Pass when every comparison passes; fail naming each metric that does not.

    Args:
        comparisons: the metrics' comparisons with their baseline entries.
        hint: the failure text's last line (how to update the baseline).

    Returns:
        the passing record (``details["comparisons"]``: each comparison as a dict).

    Raises:
        AuditFailure: a metric regressed beyond its tolerance, has no entry, or is NaN.
    """
    __tracebackhide__ = True
    if not comparisons:
        raise InvalidInputError("assert_within_baseline needs at least one comparison")
    wrong = [i for i, c in enumerate(comparisons) if not isinstance(c, Comparison)]
    if wrong:
        got = type(comparisons[wrong[0]]).__name__
        raise InvalidInputError(
            f"assert_within_baseline takes Comparison objects (Baseline.compare, "
            f"audit.comparisons); got {got} at index {wrong[0]}. To gate a number on the "
            "baseline, use audit.metric(name, value)"
        )
    failing = tuple(i for i, c in enumerate(comparisons) if not c.passed)
    directions = {c.direction for c in comparisons}
    record = AuditRecord(
        check="baseline",
        assertion="assert_within_baseline",
        passed=not failing,
        values=tuple(c.value for c in comparisons),
        items=tuple(c.name for c in comparisons),
        unit="metric",
        direction=directions.pop() if len(directions) == 1 else None,
        failing=failing,
        rule="every metric must stay within its tolerance of the baseline",
        reasons=tuple(c.reason() for c in comparisons),
        hint=hint if failing else "",
        details={"comparisons": [c.to_dict() for c in comparisons]},
    )
    return conclude(record)
