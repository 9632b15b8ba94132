"""AuditCollector: a run's bookkeeping, xdist merging, report files and baseline updates,
driven by plain calls (no pytest session)."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import modelaudit.report as report
from modelaudit.baseline import Baseline
from modelaudit.checks.record import AuditRecord, SampleViews
from modelaudit.report.collector import (
    AuditCollector,
    folder_name,
    keep_records,
    next_outcome,
)
from modelaudit.report.overlay import overlay
from modelaudit.report.recorder import AuditRecorder

NODE = "tests/test_a.py::test_x"


def _heatmap_record(failing=(1,), values=(0.9, 0.1, 0.3), check="mass_in_box"):
    n = len(values)
    gen = torch.Generator().manual_seed(n)
    return AuditRecord(
        check,
        f"assert_{check}",
        not failing,
        tuple(values),
        bound=0.5,
        direction="higher",
        obtained=min(values),
        failing=tuple(failing),
        rule=f"{check} >= 0.5 must hold for every sample",
        samples=SampleViews(
            images=torch.rand(n, 3, 8, 8, generator=gen),
            maps=torch.rand(n, 8, 8, generator=gen),
            boxes=torch.tensor([[1, 1, 6, 6]] * n),
        ),
    )


def _shape_record():
    return AuditRecord(
        "feature_map_shape",
        "assert_feature_map_shapes",
        False,
        (1.0, 0.0),
        items=("layer1", "layer2"),
        unit="layer",
        failing=(1,),
        rule="every feature map must keep its shape",
        reasons=("", "obtained (4, 8), expected (8, 8)"),
    )


def _run(collector, nodeid, records=(), *, outcome="passed", audited=True, recorder=None):
    collector.start_test(nodeid, audited=audited)
    if recorder is not None:
        collector.add_recorder(nodeid, recorder)
    props = collector.add_records(nodeid, records)
    collector.report_phase(nodeid, "setup", "passed", 0.25)
    collector.report_phase(nodeid, "call", outcome, 0.5, message=f"{outcome} text")
    collector.report_phase(nodeid, "teardown", "passed", 0.25)
    return collector.finish_test(nodeid), props


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([("setup", "passed"), ("call", "passed"), ("teardown", "passed")], "passed"),
        ([("setup", "failed"), ("teardown", "passed")], "error"),
        ([("setup", "passed"), ("call", "failed"), ("teardown", "failed")], "failed"),
        ([("setup", "passed"), ("call", "passed"), ("teardown", "failed")], "error"),
        ([("setup", "skipped"), ("teardown", "passed")], "skipped"),
    ],
)
def test_phases_fold_into_one_outcome(phases, expected):
    outcome = "passed"
    for when, result in phases:
        outcome = next_outcome(outcome, when, result)
    assert outcome == expected
    assert next_outcome("passed", "call", "skipped", xfail=True) == "xfailed"
    assert next_outcome("passed", "call", "passed", xfail=True) == "xpassed"


def test_a_test_becomes_an_entry_with_its_pictures_drawn_once(tmp_path):
    collector = AuditCollector(tmp_path)
    record = _heatmap_record(failing=(1, 2), values=(0.9, 0.1, 0.3))
    entry, props = _run(collector, NODE, [record, _shape_record()], outcome="failed")
    assert entry is not None and collector.entries == [entry]
    assert (entry.outcome, entry.duration, entry.message) == ("failed", 1.0, "failed text")
    heat, shape = entry.records
    assert [s.index for s in heat.samples] == [1, 2, 0]  # failing first, worst first
    # the failing samples' overlays are written from the same pictures, into the test folder
    folder = tmp_path / "tests" / folder_name(NODE)
    assert heat.files == [  # relative to the report, so the report folder can be moved
        f"tests/{folder_name(NODE)}/mass_in_box-1.png",
        f"tests/{folder_name(NODE)}/mass_in_box-2.png",
    ]
    assert record.samples is not None and record.samples.images is not None
    expected = overlay(record.samples.images[1], record.samples.maps[1], box=(1, 1, 6, 6))
    assert np.array_equal(iio.imread(tmp_path / heat.files[0]), expected)
    assert base64.b64decode(heat.samples[0].overlay_png) == (tmp_path / heat.files[0]).read_bytes()
    # a record without pictures keeps its items, failing list and message
    assert shape.samples == [] and shape.files == []
    assert shape.record["items"] == ["layer1", "layer2"] and shape.record["failing"] == [1]
    assert shape.record["message"] == _shape_record().message
    assert props == [
        ("audit.check.mass_in_box", 0.1),
        ("audit.check.mass_in_box.passed", False),
        ("audit.check.feature_map_shape", None),
        ("audit.check.feature_map_shape.passed", False),
    ]
    # the next run of the same test starts from a clean folder
    collector.start_test(NODE, audited=True)
    assert not folder.exists()


def test_a_passing_check_writes_no_pictures_of_its_weak_samples(tmp_path):
    # passes on the mean (0.9 + 0.1 + 0.8) / 3 > 0.5 while sample 1 misses the bound
    weak = dataclasses.replace(_heatmap_record(values=(0.9, 0.1, 0.8)), passed=True)
    entry, _ = _run(AuditCollector(tmp_path), NODE, [weak])
    (view,) = entry.records
    assert [s.index for s in view.samples if s.passed is False] == [1]  # drawn for the HTML
    assert view.files == [] and not (tmp_path / "tests" / folder_name(NODE)).exists()


def test_plain_tests_without_records_leave_no_entry():
    collector = AuditCollector()
    assert _run(collector, "t::plain", audited=False)[0] is None
    entry, _ = _run(collector, "t::checks", [_shape_record()], audited=False, outcome="failed")
    assert entry is not None and not entry.audited
    assert collector.finish_test("t::never_started") is None
    assert [e.nodeid for e in collector.entries] == ["t::checks"]


def test_without_a_report_nothing_is_drawn_or_written():
    collector = AuditCollector(None)
    entry, _ = _run(collector, NODE, [_heatmap_record()], outcome="failed")
    assert entry is not None and entry.records[0].samples == [] and entry.records[0].files == []
    assert collector.test_dir(NODE) is None and collector.write() == []


def test_records_are_capped_keeping_failures():
    records = [AuditRecord(f"c{i}", "assert_c", i not in (2, 7), (1.0,)) for i in range(12)]
    assert [r.check for r in keep_records(records, 4)] == ["c2", "c7", "c10", "c11"]
    assert [r.check for r in keep_records(records, 1)] == ["c7"]
    assert keep_records(records, 0) == [] and keep_records(records[:3], 5) == records[:3]
    collector = AuditCollector(max_records=4)
    entry, props = _run(collector, NODE, records)
    assert entry is not None and entry.omitted_records == 8 and len(entry.records) == 4
    assert len(props) == 2 * 4  # JUnit gets the last ones


def test_the_audit_fixture_gate_reaches_the_entry_without_duplicate_properties():
    from modelaudit.checks.record import collect_records

    collector = AuditCollector()
    recorder = AuditRecorder(NODE, baseline=Baseline())
    collector.start_test(NODE, audited=True)
    collector.add_recorder(NODE, recorder)
    with collect_records() as sink:
        with pytest.raises(AssertionError):
            recorder.metric("iou", 0.5)
        recorder.record(_shape_record())  # added by hand: kept, not emitted
    assert collector.add_records(NODE, sink) == []  # the recorder exported the metric itself
    collector.report_phase(NODE, "call", "failed", 0.1, message="AuditFailure")
    entry = collector.finish_test(NODE)
    assert entry is not None
    assert [c.status for c in entry.metrics] == ["missing"]
    assert [v.record["assertion"] for v in entry.records] == [
        "assert_within_baseline",
        "assert_feature_map_shapes",
    ]
    assert entry.records[0].record["items"] == ["iou"]
    # the summary shows the metric once, and the hand-added check
    lines = collector.summary_lines()
    assert [line.split()[0] for line in lines[2:]] == ["iou", "feature_map_shape"]


def test_workers_payloads_merge_into_one_sorted_report(tmp_path):
    workers = [AuditCollector(tmp_path), AuditCollector(tmp_path)]
    _run(workers[0], "t::b", [_heatmap_record()], outcome="failed")
    _run(workers[1], "t::a", [_shape_record()], outcome="failed")
    controller = AuditCollector(tmp_path)
    for worker in workers:
        payload = worker.worker_payload()
        assert json.loads(json.dumps(payload)) == payload  # plain JSON for execnet
        controller.merge(payload)
    assert [e.to_dict() for e in controller.entries] == [
        workers[0].entries[0].to_dict(),
        workers[1].entries[0].to_dict(),
    ]
    html, data = controller.write(notes=["model: x"])
    assert [e.nodeid for e in controller.entries] == ["t::a", "t::b"]
    assert html == (tmp_path / "report.html").resolve() and "model: x" in html.read_text()
    doc = json.loads(data.read_text())
    assert [t["nodeid"] for t in doc["tests"]] == ["t::a", "t::b"]
    assert doc["tests"][1]["records"][0]["overlay_files"] == workers[0].entries[0].records[0].files
    drawn = workers[0].entries[0].records[0].files
    assert len(drawn) == 1 and (tmp_path / drawn[0]).is_file()  # relative to the report
    assert controller.notes == [
        f"modelaudit report: {html}",
        f"modelaudit records: {data}",
        f"modelaudit overlays written to {(tmp_path / 'tests').resolve()} (1 failing sample)",
    ]


def test_baseline_update_and_errors_at_the_end_of_the_run(tmp_path):
    target = tmp_path / "b.json"
    collector = AuditCollector(tmp_path / "rep")
    assert (
        collector.update_baseline(target)
        == f"no metrics recorded: baseline {target} left unchanged"
    )
    recorder = AuditRecorder(NODE, baseline=Baseline.load(target), update=True)
    recorder.metric("iou", 0.625)
    _run(collector, NODE, recorder=recorder)
    assert collector.close(baseline=target)
    assert Baseline.load(target)[f"{NODE}::iou"].value == 0.625
    assert collector.notes[1] == f"modelaudit: baseline updated: {target} (1 metrics written)"
    assert (tmp_path / "rep" / "report.html").is_file()
    # a broken baseline is an error of the run, never a crash; the report is still written
    target.write_text("{ not json")
    (tmp_path / "rep" / "report.html").unlink()
    assert not collector.close(baseline=target)
    assert len(collector.errors) == 1 and collector.errors[0].startswith("BaselineError: ")
    assert (tmp_path / "rep" / "report.html").is_file() and target.read_text() == "{ not json"


def test_the_report_package_stays_light_until_used():
    assert sorted(report.__all__) == sorted(report._HOMES)
    assert report.overlay is overlay  # the function, not the submodule of the same name
    code = (
        "import sys, modelaudit.report.collector, modelaudit.report.options; "
        "print('numpy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
