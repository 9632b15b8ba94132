"""Baselines: schema validation, comparison rule, atomic saving."""

import json
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.baseline import (
    BASELINE_VERSION,
    Baseline,
    BaselineEntry,
    Comparison,
    compare_to_entry,
    normalize_direction,
    validate_tolerance,
)
from modelaudit.checks.baseline import assert_within_baseline
from modelaudit.errors import AuditFailure, BaselineError, InvalidInputError


def _write(path, doc):
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_round_trip(tmp_path):
    base = Baseline(path=tmp_path / "b.json", metadata={"model": "shapes-cnn@1"})
    base.set("t.py::a::iou", 0.625, direction="higher", tolerance=0.05)
    base.set("t.py::a::drop", 0.125, direction="lower", tolerance=0.0)
    written = base.save()
    doc = json.loads(written.read_text())
    assert doc == {
        "version": BASELINE_VERSION,
        "metrics": {
            "t.py::a::drop": {"value": 0.125, "direction": "lower", "tolerance": 0.0},
            "t.py::a::iou": {"value": 0.625, "direction": "higher", "tolerance": 0.05},
        },
        "metadata": {"model": "shapes-cnn@1"},
    }
    again = Baseline.load(written)
    assert again.entries == base.entries and again.metadata == base.metadata
    assert again.exists and len(again) == 2 and "t.py::a::iou" in again


def test_missing_file_is_an_empty_baseline(tmp_path):
    base = Baseline.load(tmp_path / "nope.json")
    assert len(base) == 0 and not base.exists
    assert "does not exist yet" in str(base.source)
    with pytest.raises(BaselineError, match="does not exist"):
        Baseline.load(tmp_path / "nope.json", missing_ok=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"version": 1, "metrics": {',
            r"not valid JSON \(line 1, column 28: Expecting property name",
        ),
        ("", r"not valid JSON \(line 1, column 1"),
        (
            '{"version": 1, "metrics": {"a": {"value": NaN, "direction": "higher", '
            '"tolerance": 0}}}',
            r"NaN is not allowed",
        ),
        ("[]", r"top level must be a JSON object, got an array"),
        ({"metrics": {}}, r"'version' must be the integer 1, got None"),
        ({"version": 2, "metrics": {}}, r"unsupported version 2 \(written by a newer"),
        ({"version": True, "metrics": {}}, r"'version' must be the integer 1"),
        ({"version": 1}, r"'metrics' must be a JSON object, got null"),
        ({"version": 1, "metrics": {}, "extra": 1}, r"unknown top-level keys \['extra'\]"),
        ({"version": 1, "metrics": {"a": 0.5}}, r"metric 'a': expected an object, got float"),
        (
            {"version": 1, "metrics": {"a": {"value": 0.5, "direction": "higher"}}},
            r"metric 'a': missing \['tolerance'\] keys",
        ),
        (
            {
                "version": 1,
                "metrics": {
                    "a": {"value": 0.5, "direction": "higher", "tolerance": 0.1, "tolerence": 0.2}
                },
            },
            r"unknown \['tolerence'\] keys",
        ),
        (
            {
                "version": 1,
                "metrics": {"a": {"value": "0.5", "direction": "higher", "tolerance": 0.1}},
            },
            r"'value' must be a finite number, got '0.5'",
        ),
        (
            {
                "version": 1,
                "metrics": {"a": {"value": True, "direction": "higher", "tolerance": 0.1}},
            },
            r"'value' must be a finite number, got True",
        ),
        (
            {"version": 1, "metrics": {"a": {"value": 1, "direction": "up", "tolerance": 0}}},
            r"metric 'a': direction must be 'higher'",
        ),
        (
            {"version": 1, "metrics": {"a": {"value": 1, "direction": "lower", "tolerance": -0.1}}},
            r"tolerance must be a finite number >= 0",
        ),
    ],
)
def test_broken_files_raise_a_clear_error(tmp_path, content, message):
    path = _write(tmp_path / "b.json", content)
    with pytest.raises(BaselineError, match=message) as info:
        Baseline.load(path)
    text = str(info.value)
    assert str(path) in text and "--audit-update-baseline" in text


def _reference_status(value, base, direction, tol):
    """The documented rule, restated: bad-direction change beyond tol*|base| regresses."""
    change = (value - base) if direction == "higher" else (base - value)
    limit = tol * abs(base)
    if change < -limit:
        return "regressed"
    return "improved" if change > limit else "ok"


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.sampled_from(["higher", "lower"]),
    st.floats(0, 2),
)
def test_comparison_rule(value, base, direction, tol):
    entry = BaselineEntry(base, direction, tol)
    got = compare_to_entry("t::m", value, entry, direction=direction)
    assert got.status == _reference_status(value, base, direction, tol)
    assert got.passed == (got.status != "regressed")
    assert got.delta == value - base and got.allowed == tol * abs(base)


def test_comparison_edge_cases():
    entry = BaselineEntry(0.0, "lower", 0.5)
    # a zero baseline allows no change in the bad direction, whatever the tolerance
    assert compare_to_entry("k", 1e-9, entry, direction="lower").status == "regressed"
    assert compare_to_entry("k", 0.0, entry, direction="lower").status == "ok"
    assert compare_to_entry("k", math.nan, entry, direction="lower").status == "invalid"
    assert compare_to_entry("k", 0.3, None, direction="higher").status == "missing"
    # an explicit tolerance overrides the stored one
    stored = BaselineEntry(1.0, "higher", 0.01)
    assert compare_to_entry("k", 0.9, stored, direction="higher").status == "regressed"
    assert compare_to_entry("k", 0.9, stored, direction="higher", tolerance=0.2).status == "ok"
    # a flipped direction changes the gate's meaning: it fails until updated
    flipped = compare_to_entry("k", 1.0, stored, direction="lower")
    assert flipped.status == "regressed" and "baseline says higher" in flipped.reason()


def test_failures_carry_the_numbers_and_the_update_hint():
    c = compare_to_entry(
        "t.py::test_a::iou",
        0.5,
        BaselineEntry(0.8, "higher", 0.05),
        direction="higher",
        source="gate.json",
    )
    # 0.5 - 0.8 = -0.3, i.e. -37.5% of 0.8; 5% of 0.8 allows -0.04
    assert c.reason() == (
        "regressed: obtained 0.5, baseline 0.8 (t.py::test_a::iou in gate.json), "
        "delta -0.3 (-37.5%; allowed: -0.04)"
    )
    missing = compare_to_entry("t::m", 0.25, None, source="gate.json")
    with pytest.raises(AuditFailure) as info:
        assert_within_baseline([c, missing], hint="Create or update the baseline: run X")
    text = str(info.value)
    assert "2 of 2 metric" in text and "obtained 0.5" in text
    assert "no baseline entry (t::m in gate.json); obtained 0.25" in text
    assert text.rstrip().endswith("Create or update the baseline: run X")


def test_comparison_dict_round_trip():
    c = Comparison("k::m", "m", math.nan, "lower", 0.1, 2.0, "invalid", "f.json", "n")
    data = json.loads(json.dumps(c.to_dict()))
    assert data["value"] is None and data["passed"] is False and data["delta"] is None
    back = Comparison.from_dict(data)
    assert math.isnan(back.value) and back.baseline == 2.0 and back.note == "n"


def test_apply_stores_finite_values_only():
    base = Baseline()
    ok = Comparison("a", "a", 0.5, "higher", 0.1, None, "updated")
    bad = Comparison("b", "b", math.inf, "higher", 0.1, None, "invalid")
    assert base.apply([ok, bad]) == 1 and list(base) == ["a"]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    base = Baseline(path=path)
    base.set("a", 1.0, direction="higher", tolerance=0.1)
    base.save()
    before = path.read_text()
    base.set("a", 2.0, direction="higher", tolerance=0.1)

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        base.save()
    assert path.read_text() == before  # never half-written
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary left
    with pytest.raises(BaselineError, match="no path"):
        Baseline().save()


def test_only_higher_and_lower_are_directions():
    assert normalize_direction("higher") == "higher"
    assert normalize_direction("lower") == "lower"


@pytest.mark.parametrize("alias", ["at_least", "at_most", "max", "min", "up", "Higher", ""])
def test_direction_aliases_are_rejected_with_a_clear_error(alias):
    message = (
        r"direction must be 'higher' \(higher is better\) or 'lower', got " + repr(alias) + "$"
    )
    with pytest.raises(InvalidInputError, match=message):
        normalize_direction(alias)
    with pytest.raises(InvalidInputError, match="direction must be 'higher'"):
        compare_to_entry("k", 1.0, None, direction=alias)
    with pytest.raises(BaselineError, match="metric 'k': direction must be 'higher'"):
        Baseline().set("k", 1.0, direction=alias, tolerance=0.1)


def test_validate_tolerance():
    assert validate_tolerance(0.05) == 0.05
    assert validate_tolerance(0) == 0.0 and type(validate_tolerance(0)) is float
    assert validate_tolerance(2) == 2.0 and type(validate_tolerance(2)) is float
    for bad in (True, "0.1", None, [0.1]):
        with pytest.raises(InvalidInputError, match=r"tolerance must be a number >= 0, got "):
            validate_tolerance(bad)
    for bad in (-0.1, -1, math.nan, math.inf):
        with pytest.raises(
            InvalidInputError, match=r"tolerance must be a finite number >= 0, got " + repr(bad)
        ):
            validate_tolerance(bad)
    with pytest.raises(InvalidInputError, match="tolerance must be"):
        compare_to_entry("k", 1.0, None, tolerance=-1)
    with pytest.raises(BaselineError, match="metric 'k': tolerance must be a finite number"):
        Baseline().set("k", 1.0, direction="higher", tolerance=math.inf)


def test_reason_of_a_regression_higher_is_better():
    c = compare_to_entry(
        "t::iou", 0.5, BaselineEntry(0.8, "higher", 0.05), direction="higher", source="b.json"
    )
    # delta = 0.5 - 0.8 = -0.3 = -37.5% of 0.8; allowed: 0.05 * 0.8 = 0.04 downwards
    assert c.status == "regressed" and c.delta == pytest.approx(-0.3)
    assert c.allowed == pytest.approx(0.04)
    assert c.reason() == (
        "regressed: obtained 0.5, baseline 0.8 (t::iou in b.json), delta -0.3 "
        "(-37.5%; allowed: -0.04)"
    )


def test_reason_lower_is_better_and_without_a_source():
    entry = BaselineEntry(0.2, "lower", 0.1)
    # allowed: 0.1 * 0.2 = 0.02 upwards; 0.25 is +0.05 = +25%: regressed
    c = compare_to_entry("t::drop", 0.25, entry, direction="lower")
    assert c.reason() == (
        "regressed: obtained 0.25, baseline 0.2 (t::drop), delta +0.05 (+25.0%; allowed: +0.02)"
    )
    ok = compare_to_entry("t::drop", 0.21, entry, direction="lower")
    assert ok.status == "ok"
    assert (
        ok.reason()
        == "ok: obtained 0.21, baseline 0.2 (t::drop), delta +0.01 (+5.0%; allowed: +0.02)"
    )
    better = compare_to_entry("t::drop", 0.1, entry, direction="lower")
    assert better.reason().startswith(
        "improved: obtained 0.1, baseline 0.2 (t::drop), delta -0.1 (-50.0%"
    )


def test_reason_of_a_zero_baseline_has_no_percentage():
    c = compare_to_entry("t::m", 0.5, BaselineEntry(0.0, "lower", 0.5), direction="lower")
    assert c.status == "regressed"
    assert c.reason() == "regressed: obtained 0.5, baseline 0 (t::m), delta +0.5 (allowed: +0)"


def test_reason_of_missing_invalid_recorded_updated_and_noted_comparisons():
    missing = compare_to_entry("t::new", 0.3, None, source="b.json")
    assert missing.reason() == "no baseline entry (t::new in b.json); obtained 0.3"
    invalid = compare_to_entry("t::m", math.inf, BaselineEntry(1.0, "higher", 0.1))
    assert (
        invalid.reason() == "inf is not a finite number: a baseline can neither check nor store it"
    )
    recorded = Comparison("t::a", "a", 0.5, "higher", 0.05, None, "recorded")
    assert recorded.reason() == "recorded: 0.5"
    updated = Comparison("t::a", "a", 0.25, "lower", 0.05, 0.3, "updated")
    assert updated.reason() == "updated: 0.25"
    flipped = compare_to_entry("t::m", 1.0, BaselineEntry(1.0, "higher", 0.01), direction="lower")
    assert flipped.reason() == (
        "regressed: obtained 1, baseline 1 (t::m), delta +0 (+0.0%; allowed: +0.01); "
        "the baseline says higher is better, the test now says lower"
    )
