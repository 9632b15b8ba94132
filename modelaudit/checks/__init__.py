"""Checks: numbers in, verdicts out.

Every ``assert_*`` computes values with :mod:`modelaudit.measure` or :mod:`modelaudit.hooks`,
and :func:`~modelaudit.checks.record.decide` turns them into a frozen
:class:`~modelaudit.checks.record.AuditRecord`: returned when the check holds, raised inside
an :class:`~modelaudit.errors.AuditFailure` when it does not. Checks never write files.
"""

from modelaudit.checks.attention import assert_looks_at_object
from modelaudit.checks.background import assert_background_reliance
from modelaudit.checks.baseline import assert_within_baseline
from modelaudit.checks.classes import ByClass, by_class
from modelaudit.checks.faithfulness import assert_faithful
from modelaudit.checks.gradients import (
    assert_gradcheck,
    assert_hook_grads_match_autograd,
    assert_hooks_preserve_gradients,
)
from modelaudit.checks.hooks import assert_no_hooks_left
from modelaudit.checks.localization import assert_iou, assert_mass_in_box, assert_pointing_game
from modelaudit.checks.record import (
    Aggregate,
    AuditRecord,
    ClassResult,
    SampleViews,
    collect_records,
    decide,
    format_record,
)
from modelaudit.checks.sanity import assert_map_changes_when_randomized
from modelaudit.checks.shapes import assert_feature_map_shapes
from modelaudit.checks.stability import assert_stable

__all__ = [
    "Aggregate",
    "AuditRecord",
    "ByClass",
    "ClassResult",
    "SampleViews",
    "assert_background_reliance",
    "assert_faithful",
    "assert_feature_map_shapes",
    "assert_gradcheck",
    "assert_hook_grads_match_autograd",
    "assert_hooks_preserve_gradients",
    "assert_iou",
    "assert_looks_at_object",
    "assert_map_changes_when_randomized",
    "assert_mass_in_box",
    "assert_no_hooks_left",
    "assert_pointing_game",
    "assert_stable",
    "assert_within_baseline",
    "by_class",
    "collect_records",
    "decide",
    "format_record",
]
