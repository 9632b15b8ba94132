"""The terminal summary table: which tests get rows, how cells read, how columns align."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.baseline import Comparison
from modelaudit.report.entries import RecordView, TestEntry
from modelaudit.report.summary import HEADER, summary_lines, summary_rows


def _metric(name, value, baseline, status="ok", direction="higher"):
    return Comparison(f"t::{name}", name, value, direction, 0.05, baseline, status)


def _record(check, obtained, bound=None, direction=None, passed=True):
    return RecordView(
        {
            "check": check,
            "obtained": obtained,
            "bound": bound,
            "direction": direction,
            "passed": passed,
        }
    )


def test_metric_rows_show_value_baseline_signed_delta_and_status():
    entry = TestEntry(
        "test_a.py::test_gate",
        metrics=[
            _metric("iou", 0.7, 0.7),
            _metric("mass", 0.5, 0.7, status="regressed"),
            _metric("auc", 0.123456, None, status="missing", direction="lower"),
            _metric("drop", math.nan, 0.25, status="invalid"),
            _metric("big", 12345.6, 10000.0, status="improved"),
        ],
    )
    assert summary_rows([entry]) == [
        ("test_a.py::test_gate",),
        ("  iou", "0.7", "0.7", "+0", "pass (ok)"),
        ("  mass", "0.5", "0.7", "-0.2", "FAIL (regressed)"),
        ("  auc", "0.1235", "-", "-", "FAIL (missing)"),
        ("  drop", "nan", "0.25", "-", "FAIL (invalid)"),
        ("  big", "1.235e+04", "1e+04", "+2346", "pass (improved)"),
    ]


def test_record_rows_show_the_bound_with_its_direction():
    entry = TestEntry(
        "t",
        records=[
            _record("mass_in_box", 0.1, 0.5, "higher", passed=False),
            _record("drop", 0.25, 0.5, "lower"),
            _record("ssim", 0.9, 0.5, "about"),
            _record("pointing_game", 1, None),
            _record("label", "cat", 0.5, "higher"),
        ],
    )
    assert summary_rows([entry])[1:] == [
        ("  mass_in_box", "0.1", ">= 0.5", "-0.4", "FAIL"),
        ("  drop", "0.25", "<= 0.5", "-0.25", "pass"),
        ("  ssim", "0.9", "0.5", "+0.4", "pass"),
        ("  pointing_game", "1", "-", "-", "pass"),
        ("  label", "cat", ">= 0.5", "-", "pass"),
    ]


def test_a_gate_over_listed_metrics_is_not_repeated_but_other_checks_are():
    regressed = _metric("mass", 0.5, 0.7, status="regressed")
    gate = RecordView(
        {
            "check": "baseline",
            "assertion": "assert_within_baseline",
            "obtained": 0.5,
            "bound": 0.7,
            "direction": "higher",
            "passed": False,
            "details": {"comparisons": [regressed.to_dict()]},
        }
    )
    shape = _record("feature_map_shape", None, None, None, passed=False)
    entry = TestEntry("t", outcome="failed", metrics=[regressed], records=[gate, shape])
    assert summary_rows([entry])[1:] == [
        ("  mass", "0.5", "0.7", "-0.2", "FAIL (regressed)"),
        ("  feature_map_shape", "-", "-", "-", "FAIL"),
    ]
    # a gate over metrics the entry does not list (called by hand) keeps its row
    alone = TestEntry("t", outcome="failed", records=[gate])
    assert summary_rows([alone])[1:] == [("  baseline", "0.5", ">= 0.7", "-0.2", "FAIL")]


def test_only_audited_or_failing_tests_with_something_to_show_get_rows():
    check = _record("iou", 0.9, 0.5, "higher")
    entries = [
        TestEntry("plain_pass", records=[check], audited=False),
        TestEntry("plain_fail", outcome="failed", records=[check], audited=False),
        TestEntry("plain_xpass", outcome="xpassed", records=[check], audited=False),
        TestEntry("audited_empty"),
        TestEntry("audited", metrics=[_metric("m", 1.0, 1.0)]),
    ]
    titles = [row[0] for row in summary_rows(entries) if len(row) == 1]
    assert titles == ["plain_fail", "plain_xpass", "audited"]


def test_lines_are_an_aligned_table_under_one_header():
    entries = [
        TestEntry("test_x.py::test_long_node_id_here", metrics=[_metric("iou", 0.75, 0.5)]),
        TestEntry(
            "t2",
            records=[_record("mass_in_box_with_a_long_name", 0.1, 0.5, "higher", passed=False)],
        ),
    ]
    # widths: the longest name (30), "value" (5), "baseline" (8), "delta" / "+0.25" (5)
    assert summary_lines(entries) == [
        "metric                          value  baseline  delta  pass/fail",
        "test_x.py::test_long_node_id_here",
        "  iou                            0.75       0.5  +0.25  pass (ok)",
        "t2",
        "  mass_in_box_with_a_long_name    0.1    >= 0.5   -0.4  FAIL",
    ]


def test_nothing_to_show_gives_no_lines():
    assert summary_lines([]) == []
    assert summary_lines([TestEntry("t"), TestEntry("u", audited=False)]) == []


names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
numbers = st.floats(-1e6, 1e6, allow_nan=False) | st.none()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(names, st.floats(-1e6, 1e6, allow_nan=False), numbers), max_size=6))
def test_every_cell_sits_in_its_column(metrics):
    entry = TestEntry("node", metrics=[_metric(n, v, b) for n, v, b in metrics])
    rows = summary_rows([entry])
    lines = summary_lines([entry])
    assert len(lines) == (len(rows) + 1 if rows else 0)
    cells = [HEADER, *(r for r in rows if len(r) == 5)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    for cell_row, line in zip(cells, [lines[0], *lines[2:]] if rows else []):
        # name left-aligned, the three numbers right-aligned, two spaces between columns
        ends = [widths[0]]
        for w in widths[1:]:
            ends.append(ends[-1] + 2 + w)
        assert line.startswith(cell_row[0]) and line[: ends[0]].rstrip() == cell_row[0]
        for i in (1, 2, 3):
            assert line[: ends[i]].endswith(" " + cell_row[i])
        assert line[ends[3] :] == "  " + cell_row[4]


def test_a_record_of_several_numbers_without_one_bound_gets_a_row_per_number():
    from modelaudit.report.entries import RecordView, TestEntry
    from modelaudit.report.summary import summary_rows

    record = {
        "check": "background_reliance",
        "items": ["only_bg accuracy", "mixed_rand accuracy"],
        "values": [0.9, 0.1],
        "unit": "metric",
        "obtained": None,
        "failing": [0, 1],
        "passed": False,
    }
    rows = summary_rows([TestEntry("t", records=[RecordView(record)], audited=True)])
    assert rows == [
        ("t",),
        ("  background_reliance: only_bg accuracy", "0.9", "-", "-", "FAIL"),
        ("  background_reliance: mixed_rand accuracy", "0.1", "-", "-", "FAIL"),
    ]
