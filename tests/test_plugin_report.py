"""The run's HTML report and JSON export through pytester, in-process and under xdist."""

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import hypothesis  # noqa: F401  (imported once here, not again inside every in-process run)
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from modelaudit.report.overlay import overlay

AUDITED = """
import torch
from modelaudit.checks.record import AuditRecord, SampleViews, decide, emit

def views(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return SampleViews(images=torch.rand(n, 3, 12, 12, generator=gen),
                       maps=torch.rand(n, 12, 12, generator=gen),
                       boxes=torch.tensor([[1, 2, 9, 10]] * n))

def test_passes(audit):
    decide("assert_pointing_game", "pointing_game", [1.0, 1.0], at_least=0.5,
           samples=views(2, 0))
    audit.metric("iou", 0.5)

def test_fails():
    decide("assert_mass_in_box", "mass_in_box", [0.9, 0.1, 0.3], at_least=0.5,
           samples=views(3, 1))

def test_shapes_fail():
    emit(AuditRecord("feature_map_shape", "assert_feature_map_shapes", False, (1.0, 0.0),
                     items=("layer1", "layer2"), unit="layer", failing=(1,),
                     rule="every feature map must keep its shape",
                     reasons=("", "obtained (4, 8), expected (8, 8)")))
    raise AssertionError("shapes changed")

def test_not_audited():
    pass

def test_plain_pass():
    decide("assert_iou", "iou_plain", [0.9], at_least=0.5)
"""


class Page(HTMLParser):
    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})

    def __init__(self, text):
        super().__init__()
        self.stack, self.errors, self.images, self.ids, self.anchors = [], [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "details" and attrs.get("class", "").startswith("test "):
            self.ids.append(attrs.get("class"))
            self.anchors.append(attrs.get("id"))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append(tag)


def _png(src):
    return iio.imread(base64.b64decode(src.split(",", 1)[1]))


def test_report_shows_every_recorded_sample(pytester):
    pytester.makepyfile(test_audited=AUDITED)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=3, failed=2)
    report = pytester.path / "audit-report" / "report.html"
    # paths relative to where pytest ran
    result.stdout.fnmatch_lines(
        [
            "modelaudit report: audit-report/report.html",
            "modelaudit records: audit-report/records.json",
        ]
    )
    page = Page(report.read_text())
    assert page.errors == [] and page.stack == []
    # failing tests first; tests that neither used modelaudit nor emitted records left out
    assert page.ids == ["test failed", "test failed", "test passed", "test passed"]
    # each failure ends with one relative link to its own section of the report
    links = [line for line in result.stdout.lines if line.startswith("audit-report/report.html#")]
    assert [link.split("#")[1] for link in links] == page.anchors[:2]
    result.stdout.fnmatch_lines(["*- modelaudit report -*", "audit-report/report.html#t-*"])
    overlays = [i for i in page.images if i["alt"].startswith("heat map")]
    assert len(overlays) == 3 + 2  # one per recorded sample
    gen = torch.Generator().manual_seed(1)
    images, maps = torch.rand(3, 3, 12, 12, generator=gen), torch.rand(3, 12, 12, generator=gen)
    for shown, k in enumerate([1, 2, 0]):  # failing samples first, worst first
        expected = overlay(images[k], maps[k], box=(1, 2, 9, 10))
        assert np.array_equal(_png(overlays[shown]["src"]), expected)
    doc = json.loads(report.with_name("records.json").read_text())
    tests = {t["nodeid"]: t for t in doc["tests"]}
    assert sorted(tests) == [
        "test_audited.py::test_fails",
        "test_audited.py::test_passes",
        "test_audited.py::test_plain_pass",
        "test_audited.py::test_shapes_fail",
    ]
    failed = tests["test_audited.py::test_fails"]
    assert failed["outcome"] == "failed"
    assert "mass_in_box >= 0.5 must hold for every sample; 2 of 3 samples fail" in failed["message"]
    (record,) = failed["records"]
    assert record["failing"] == [1, 2] and record["message"] in failed["message"]
    # the failing samples' overlays are files too, next to the report
    folder = (report.parent / record["overlay_files"][0]).parent  # relative to the report
    assert [Path(f).name for f in record["overlay_files"]] == [
        "mass_in_box-1.png",
        "mass_in_box-2.png",
    ]
    assert folder.parent == report.parent / "tests"
    drawn = iio.imread(report.parent / record["overlay_files"][0])
    assert np.array_equal(drawn, _png(overlays[0]["src"]))
    # a check without pictures is reported the same way: items, failing list, message
    (shape,) = tests["test_audited.py::test_shapes_fail"]["records"]
    assert shape["items"] == ["layer1", "layer2"] and shape["failing"] == [1]
    assert "layer2: obtained (4, 8), expected (8, 8)" in shape["message"]
    assert "failing layers: 1 of 2 (layer2)" in report.read_text()
    assert tests["test_audited.py::test_passes"]["metrics"][0]["value"] == 0.5
    # the summary table lists checks with their bounds, for audited or failed tests only
    result.stdout.fnmatch_lines(["  mass_in_box*worst of 3 samples*0.1*>= 0.5*FAIL"])
    result.stdout.fnmatch_lines(["  feature_map_shape*worst of 2 layers*-*-*-*FAIL"])
    assert "iou_plain" not in result.stdout.str()


def test_each_test_gets_a_clean_folder_for_its_files(pytester):
    pytester.makepyfile(
        """
        def test_dirs(audit):
            folder = audit.report_dir
            assert folder.parent.name == "tests" and folder.parent.parent.name == "rep"
            assert "test_dirs" in folder.name
            assert audit.tolerance == 0.125
            audit.attach("probe", [[0.0, 1.0]])
            assert (folder / "probe.png").is_file()
        """
    )
    stale = pytester.path / "rep" / "tests"
    pytester.runpytest_inprocess(
        "--audit-report-dir=rep", "--audit-tolerance=0.125"
    ).assert_outcomes(passed=1)
    (folder,) = stale.iterdir()
    (folder / "old.png").write_bytes(b"stale")
    pytester.runpytest_inprocess(
        "--audit-report-dir=rep", "--audit-tolerance=0.125"
    ).assert_outcomes(passed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["probe.png"]  # stale files removed


def test_setup_errors_are_reported(pytester):
    pytester.makepyfile("def test_needs_model(audit_model):\n    pass\n")
    pytester.runpytest_inprocess().assert_outcomes(errors=1)
    doc = json.loads((pytester.path / "audit-report" / "records.json").read_text())
    (test,) = doc["tests"]
    assert test["outcome"] == "error" and "no model under audit" in test["message"]


XDIST_TEST = """
import os

def test_{name}_a(audit):
    audit.metric("worker", int(os.environ["PYTEST_XDIST_WORKER"][2:]))
    audit.metric("score", {score})

def test_{name}_b(audit):
    audit.metric("score", {score} + 0.5)
"""


@pytest.mark.slow
def test_xdist_workers_report_to_one_writer(pytester):
    pytester.makepyfile(
        test_one=XDIST_TEST.format(name="one", score=0.25),
        test_two=XDIST_TEST.format(name="two", score=0.75),
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist=loadfile", "--audit-baseline=b.json", "--audit-update-baseline"
    )
    result.assert_outcomes(passed=4)
    written = [line for line in result.stdout.lines if "baseline updated" in line]
    assert written == [
        f"modelaudit: baseline updated: {pytester.path / 'b.json'} (6 metrics written)"
    ]
    stored = {
        k: v["value"]
        for k, v in json.loads((pytester.path / "b.json").read_text())["metrics"].items()
    }
    workers = {
        stored.pop("test_one.py::test_one_a::worker"),
        stored.pop("test_two.py::test_two_a::worker"),
    }
    assert workers == {0, 1}  # both workers measured, the controller alone wrote the file
    assert stored == {
        "test_one.py::test_one_a::score": 0.25,
        "test_one.py::test_one_b::score": 0.75,
        "test_two.py::test_two_a::score": 0.75,
        "test_two.py::test_two_b::score": 1.25,
    }
    doc = json.loads((pytester.path / "audit-report" / "records.json").read_text())
    assert [t["nodeid"] for t in doc["tests"]] == [
        "test_one.py::test_one_a",
        "test_one.py::test_one_b",
        "test_two.py::test_two_a",
        "test_two.py::test_two_b",
    ]
    page = Page((pytester.path / "audit-report" / "report.html").read_text())
    assert page.errors == [] and len(page.ids) == 4
    assert [p.name for p in pytester.path.iterdir() if p.name.startswith(".b.json")] == []
    # the written baseline gates the next run (in-process here: xdist was proven above)
    pytester.runpytest_inprocess(
        "--audit-baseline=b.json", "--audit-report-dir=none", "-p", "no:xdist", "-k", "not _a"
    ).assert_outcomes(passed=2)


def test_a_report_folder_that_cannot_be_written_changes_no_verdict(pytester):
    pytester.makepyfile(test_audited=AUDITED)
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = pytester.runpytest_inprocess("--audit-report-dir=blocker/rep")
    result.assert_outcomes(passed=3, failed=2)  # the same verdicts as with a report
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # from the failing tests, as always
    result.stdout.fnmatch_lines(
        ["modelaudit: WARNING ModelAuditError: the report could not be written to *blocker/rep*"]
    )
    assert not (pytester.path / "blocker" / "rep").exists()
    # with every test passing, the run passes: the pictures are not a verdict
    pytester.makepyfile(test_audited="def test_ok(audit):\n    audit.metric('m', 0.5)\n")
    result = pytester.runpytest_inprocess("--audit-report-dir=blocker/rep")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["modelaudit: WARNING *the report could not be written*"])
