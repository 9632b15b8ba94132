"""assert_within_baseline: the release gate decided like every other check."""

from __future__ import annotations

import math

import pytest

from modelaudit import AuditFailure, InvalidInputError
from modelaudit.baseline import Baseline, Comparison
from modelaudit.checks import assert_within_baseline, collect_records
from modelaudit.checks.baseline import UPDATE_HINT


def gate() -> Baseline:
    base = Baseline()
    base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    base.set("t::drop", 0.2, direction="lower", tolerance=0.1)
    return base


def test_passes_within_tolerance_and_when_improved() -> None:
    base = gate()
    # 0.78 is within 0.05 * 0.8 = 0.04 of 0.8; 0.1 is better than 0.2 by more than 0.02
    comparisons = [base.compare("t::iou", 0.78), base.compare("t::drop", 0.1, direction="lower")]
    with collect_records() as got:
        record = assert_within_baseline(comparisons)
    assert got == [record] and record.passed and record.check == "baseline"
    assert record.items == ("iou", "drop") and record.values == (0.78, 0.1)
    assert record.unit == "metric" and record.direction is None  # mixed directions
    assert record.reasons == (
        "ok: obtained 0.78, baseline 0.8 (t::iou), delta -0.02 (-2.5%; allowed: -0.04)",
        "improved: obtained 0.1, baseline 0.2 (t::drop), delta -0.1 (-50.0%; allowed: +0.02)",
    )
    assert [c["status"] for c in record.details["comparisons"]] == ["ok", "improved"]


def test_regressed_missing_and_invalid_metrics_fail_with_the_update_hint() -> None:
    base = gate()
    comparisons = [
        base.compare("t::iou", 0.5),
        base.compare("t::drop", 0.21, direction="lower"),
        base.compare("t::new", 0.3),
        base.compare("t::nan", math.nan),
    ]
    with pytest.raises(AuditFailure) as info:
        assert_within_baseline(comparisons)
    assert str(info.value).splitlines() == [
        "assert_within_baseline: every metric must stay within its tolerance of the baseline; "
        "3 of 4 metrics fail.",
        "  failing metrics:",
        "    iou: regressed: obtained 0.5, baseline 0.8 (t::iou), delta -0.3 "
        "(-37.5%; allowed: -0.04)",
        "    new: no baseline entry (t::new); obtained 0.3",
        "    nan: nan is not a finite number: a baseline can neither check nor store it",
        UPDATE_HINT,
    ]
    record = info.value.record
    assert record.failing == (0, 2, 3) and record.direction is None  # higher and lower
    assert record.items == ("iou", "drop", "new", "nan")
    assert record.to_json()["values"] == [0.5, 0.21, 0.3, None]


def test_one_direction_is_recorded_and_the_hint_can_be_replaced() -> None:
    base = gate()
    with pytest.raises(AuditFailure) as info:
        assert_within_baseline([base.compare("t::iou", 0.5)], hint="Update: rerun with -U")
    assert str(info.value).splitlines()[-1] == "Update: rerun with -U"
    assert str(info.value).splitlines()[0].endswith("; 1 of 1 metric fail.")
    assert info.value.record.direction == "higher"


def test_recorded_and_updated_comparisons_pass() -> None:
    comparisons = [
        Comparison("t::a", "a", 0.5, "higher", 0.05, None, "recorded"),
        Comparison("t::b", "b", 0.25, "lower", 0.05, 0.3, "updated"),
    ]
    record = assert_within_baseline(comparisons)
    assert record.passed and record.reasons == ("recorded: 0.5", "updated: 0.25")


def test_no_comparisons_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="needs at least one comparison"):
        assert_within_baseline([])
