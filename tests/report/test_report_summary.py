"""The terminal summary table: which tests get rows, how cells read, how columns align."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.baseline import Comparison
from modelaudit.report.entries import RecordView, TestEntry
from modelaudit.report.summary import HEADER, summary_lines, summary_rows


def _metric(name, value, baseline, status="ok", direction="higher", samples=None):
    return Comparison(f"t::{name}", name, value, direction, 0.05, baseline, status, samples=samples)


def _record(check, obtained, bound=None, direction=None, passed=True, n=1, aggregate="all"):
    return RecordView(
        {
            "check": check,
            "obtained": obtained,
            "bound": bound,
            "direction": direction,
            "passed": passed,
            "values": [0.0] * n,
            "aggregate": aggregate,
        }
    )


def test_metric_rows_say_what_the_value_is_and_the_edge_the_baseline_allows():
    entry = TestEntry(
        "test_a.py::test_gate",
        metrics=[
            _metric("iou", 0.7, 0.7, samples=(0.6, 0.8)),
            _metric("mass", 0.5, 0.7, status="regressed"),
            _metric("auc", 0.123456, None, status="missing", direction="lower"),
            _metric("drop", math.nan, 0.25, status="invalid", direction="lower"),
        ],
    )
    # the edge: 0.7 - 0.05 * 0.7 = 0.665 (higher is better); 0.25 + 0.05 * 0.25 = 0.2625
    assert summary_rows([entry]) == [
        ("test_a.py::test_gate",),
        ("  iou vs baseline", "mean of 2 samples", "0.7", "baseline 0.7, >= 0.665", "-", "pass (ok)"),
        ("  mass vs baseline", "value", "0.5", "baseline 0.7, >= 0.665", "-", "FAIL (regressed)"),
        ("  auc", "value", "0.1235", "-", "-", "FAIL (missing)"),
        ("  drop vs baseline", "value", "-", "baseline 0.25, <= 0.2625", "-", "FAIL (invalid)"),
    ]  # fmt: skip


def test_record_rows_say_which_aggregate_the_value_is():
    fraction = RecordView(
        {
            "check": "iou",
            "obtained": 0.4,
            "bound": 0.5,
            "direction": "higher",
            "passed": False,
            "values": [0.9, 0.6, 0.4, 0.1],
            "aggregate": "fraction",
            "details": {"required_fraction": 0.75, "passing_fraction": 0.5},
        }
    )
    entry = TestEntry(
        "t",
        records=[
            _record("mass_in_box", 0.1, 0.5, "higher", passed=False, n=64),
            _record("drop", 0.25, 0.5, "lower", n=8, aggregate="mean"),
            _record("pointing_game", 1, None),
            fraction,
        ],
    )
    assert summary_rows([entry])[1:] == [
        ("  mass_in_box", "worst of 64 samples", "0.1", ">= 0.5", "-", "FAIL"),
        ("  drop", "mean of 8 samples", "0.25", "<= 0.5", "-", "pass"),
        ("  pointing_game", "value", "1", "-", "-", "pass"),
        # 2 of 4 samples reach 0.5 where 3 must: the fraction passing against the fraction needed
        ("  iou", "fraction of 4 samples >= 0.5", "50%", ">= 75%", "-", "FAIL"),
    ]


def test_the_chance_level_has_its_column():
    record = _record("pointing_game", 0.3, 0.55, "higher", passed=False, n=10, aggregate="mean")
    record.record["chance"] = 0.148
    assert summary_rows([TestEntry("t", records=[record])])[1] == (
        "  pointing_game",
        "mean of 10 samples",
        "0.3",
        ">= 0.55",
        "0.148",
        "FAIL",
    )


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
            "values": [0.5],
            "details": {"comparisons": [regressed.to_dict()]},
        }
    )
    shape = _record("feature_map_shape", None, None, None, passed=False)
    entry = TestEntry("t", outcome="failed", metrics=[regressed], records=[gate, shape])
    assert summary_rows([entry])[1:] == [
        ("  mass vs baseline", "value", "0.5", "baseline 0.7, >= 0.665", "-", "FAIL (regressed)"),
        ("  feature_map_shape", "value", "-", "-", "-", "FAIL"),
    ]
    # a gate over metrics the entry does not list (called by hand) keeps its row
    alone = TestEntry("t", outcome="failed", records=[gate])
    assert summary_rows([alone])[1:] == [("  baseline", "value", "0.5", ">= 0.7", "-", "FAIL")]


def test_per_class_results_are_rows_when_they_gate_and_one_line_when_they_do_not():
    def with_classes(gated):
        view = _record("mass_in_box", 0.2, 0.5, "higher", passed=not gated, n=6, aggregate="mean")
        view.record["per_class"] = [
            {"label": 0, "name": "circle", "count": 3, "obtained": 0.8, "passed": True},
            {"label": 1, "name": None, "count": 3, "obtained": 0.2, "passed": False},
        ]
        view.record["details"] = {"gated_per_class": gated}
        return TestEntry("t", records=[view])

    assert summary_rows([with_classes(True)])[2:] == [
        ("    per class: circle", "mean of 3 samples", "0.8", ">= 0.5", "-", "pass"),
        ("    per class: 1", "mean of 3 samples", "0.2", ">= 0.5", "-", "FAIL"),
    ]
    assert summary_rows([with_classes(False)])[2:] == [
        ("    by class (not gated): 1 0.2 fails, circle 0.8",),
    ]


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
    assert summary_lines(entries) == [
        "gate                            value is  value  bound or baseline       chance  verdict",
        "test_x.py::test_long_node_id_here",
        "  iou vs baseline               value      0.75  baseline 0.5, >= 0.475  -       pass (ok)",
        "t2",
        "  mass_in_box_with_a_long_name  value       0.1  >= 0.5                  -       FAIL",
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
    cells = [HEADER, *(r for r in rows if len(r) == len(HEADER))]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    starts = [0]
    for w in widths:
        starts.append(starts[-1] + w + 2)
    for cell_row, line in zip(cells, [lines[0], *lines[2:]] if rows else []):
        # text columns left-aligned, the value right-aligned, two spaces between columns
        for i in (0, 1, 3, 4):
            assert line[starts[i] : starts[i] + widths[i]].rstrip() == cell_row[i]
        assert line[starts[2] : starts[2] + widths[2]].lstrip() == cell_row[2]
        assert line[starts[5] :] == cell_row[5]


def test_a_record_of_several_numbers_without_one_bound_gets_a_row_per_number():
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
        ("  background_reliance: only_bg accuracy", "value", "0.9", "-", "-", "FAIL"),
        ("  background_reliance: mixed_rand accuracy", "value", "0.1", "-", "-", "FAIL"),
    ]
