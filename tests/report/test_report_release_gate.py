"""The release gate in the report: fingerprint notes in the summary and the HTML metrics
table, and baseline updates that never happen on a failed or interrupted run."""

from __future__ import annotations

import html

from modelaudit.baseline import Baseline, Comparison
from modelaudit.report.collector import AuditCollector
from modelaudit.report.entries import TestEntry
from modelaudit.report.html import render_html
from modelaudit.report.recorder import AuditRecorder
from modelaudit.report.summary import fingerprint_lines, summary_lines

NOTE = (
    "model weights differ from the baseline's (state_dict 3f2a… → 9b1c…); "
    "method, layer and data match"
)


def _changed(name, status="ok", changed=("model",)):
    return Comparison(
        f"t::{name}",
        name,
        0.58,
        "higher",
        0.05,
        0.6,
        status,
        "b.json",
        NOTE,
        samples=(0.58,) * 64,
        ci=(-0.03, -0.01),
        changed=changed,
    )


def test_summary_counts_comparisons_against_a_different_model():
    entries = [
        TestEntry("a", metrics=[_changed("m1"), _changed("m2", changed=("model", "data"))]),
        TestEntry("b", metrics=[_changed("m3", "regressed", changed=("model",))]),
        TestEntry("c", metrics=[Comparison("t::x", "x", 0.7, "higher", 0.05, 0.7, "ok")]),
    ]
    lines = summary_lines(entries)
    assert lines[-2:] == [
        "baseline comparisons against a different model: 3 metrics (see report)",
        "baseline comparisons on different data: 1 metric (see report)",
    ]
    assert fingerprint_lines(entries[2:]) == []
    assert not any("different" in line for line in summary_lines(entries[2:]))


def test_html_metrics_table_shows_the_note_and_the_paired_ci():
    page = render_html([TestEntry("t", metrics=[_changed("mass")])])
    assert html.escape(NOTE) in page
    assert "95% CI -0.03 to -0.01, paired on 64 samples" in page
    plain = render_html(
        [TestEntry("t", metrics=[Comparison("t::x", "x", 0.7, "higher", 0.05, 0.7, "ok")])]
    )
    assert "paired on" not in plain


def _update_run(collector, nodeid, outcome="passed", finish=True):
    recorder = AuditRecorder(nodeid, baseline=Baseline(), update=True)
    recorder.metric("m", [0.25, 0.75])
    collector.start_test(nodeid, audited=True)
    collector.add_recorder(nodeid, recorder)
    collector.report_phase(nodeid, "setup", "passed", 0.1)
    if not finish:  # KeyboardInterrupt in the call: pytest reports neither call nor teardown
        return
    collector.report_phase(nodeid, "call", outcome, 0.1)
    collector.report_phase(nodeid, "teardown", "passed", 0.1)
    collector.finish_test(nodeid)


def test_a_clean_update_run_writes_samples(tmp_path):
    target, collector = tmp_path / "b.json", AuditCollector()
    _update_run(collector, "t::a")
    assert collector.close(baseline=target)
    entry = Baseline.load(target)["t::a::m"]
    assert (entry.value, entry.samples, entry.n) == (0.5, (0.25, 0.75), 2)


def test_a_failing_update_run_writes_nothing(tmp_path):
    target, collector = tmp_path / "b.json", AuditCollector()
    target.write_text('{"version": 1, "metrics": {}}')
    _update_run(collector, "t::a")
    _update_run(collector, "t::b", outcome="failed")
    collector.close(baseline=target)
    assert target.read_text() == '{"version": 1, "metrics": {}}'
    assert collector.notes == [
        f"modelaudit: baseline {target} NOT updated: 1 test(s) failed, e.g. t::b; fix or "
        "deselect the failing tests, then re-run with --audit-update-baseline"
    ]


def test_an_interrupted_update_run_writes_nothing(tmp_path):
    target, collector = tmp_path / "b.json", AuditCollector()
    _update_run(collector, "t::a")
    _update_run(collector, "t::b", finish=False)
    collector.close(baseline=target)
    assert not target.exists() and not list(tmp_path.iterdir())
    assert "NOT updated: the run was interrupted (1 test(s) did not finish)" in collector.notes[0]
