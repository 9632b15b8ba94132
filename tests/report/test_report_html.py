"""Report entries, the HTML page and the JSON export."""

import base64
import dataclasses
import json
import math
from html.parser import HTMLParser

import imageio.v3 as iio
import numpy as np
import torch

from modelaudit.baseline import Comparison
from modelaudit.checks.record import AuditRecord, SampleViews
from modelaudit.report.entries import Attachment, TestEntry, record_view, sort_entries
from modelaudit.report.export import export_dict, write_json
from modelaudit.report.html import render_html, write_html
from modelaudit.report.overlay import overlay

VOID = {"meta", "img", "br", "hr", "input", "link"}


class PageChecker(HTMLParser):
    """Checks tag nesting and collects images, section ids and text."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images, self.sections, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "details" and attrs.get("class", "").startswith("test "):
            self.sections.append(attrs.get("class", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    return checker


def decode(src):
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return iio.imread(base64.b64decode(src[len(prefix) :]))


def _record(n=3, failing=(1,), check="mass_in_box", values=None):
    gen = torch.Generator().manual_seed(n)
    return AuditRecord(
        check=check,
        assertion=f"assert_{check}",
        passed=not failing,
        values=tuple(values or [0.1 * (i + 1) for i in range(n)]),
        bound=0.5,
        direction="higher",
        obtained=0.2,
        failing=tuple(failing),
        chance=0.25,
        rule=f"{check} >= 0.5 must hold for every sample",
        samples=SampleViews(
            images=torch.rand(n, 3, 16, 16, generator=gen),
            maps=torch.rand(n, 16, 16, generator=gen),
            boxes=torch.tensor([[2, 2, 10, 12]] * n),
        ),
    )


def test_record_view_rows_and_images():
    rec = _record()
    view = record_view(rec)
    # the failing sample first, then the others in order
    assert [(s.index, s.passed) for s in view.samples] == [(1, False), (0, True), (2, True)]
    assert [s.value for s in view.samples] == [rec.values[i] for i in (1, 0, 2)]
    assert view.hidden == 0
    samples = rec.samples
    assert samples is not None and samples.images is not None and samples.maps is not None
    got = iio.imread(base64.b64decode(view.samples[0].overlay_png))
    assert np.array_equal(got, overlay(samples.images[1], samples.maps[1], box=(2, 2, 10, 12)))
    shown = iio.imread(base64.b64decode(view.samples[0].input_png))
    assert np.array_equal(shown, np.rint(samples.images[1].permute(1, 2, 0).numpy() * 255))
    assert view.record == rec.to_json() and "failing samples" in view.record["message"]


def test_record_view_caps_samples_keeping_the_worst_failures():
    rec = _record(n=6, failing=(1, 4, 5), values=[0.9, 0.3, 0.9, 0.9, 0.1, 0.2])
    view = record_view(rec, max_samples=2)
    assert [s.index for s in view.samples] == [4, 5] and view.hidden == 4
    lower = dataclasses.replace(rec, direction="lower")  # now the highest value is the worst
    assert [s.index for s in record_view(lower, max_samples=2).samples] == [1, 5]
    # no per-sample values: no per-sample verdict either
    one_value = dataclasses.replace(_record(n=2, failing=()), values=(0.3,))
    assert [s.passed for s in record_view(one_value).samples] == [None, None]


def test_record_view_reports_drawing_problems_instead_of_raising():
    rec = AuditRecord(
        "c", "assert_c", True, (1.0,), samples=SampleViews(maps=torch.full((1, 4, 4), 2.0))
    )
    view = record_view(rec)
    assert view.samples == [] and "could not draw the samples" in str(view.error)
    assert "[0, 1]" in str(view.error)


def _entries():
    passing = TestEntry(
        "tests/test_a.py::test_ok",
        "passed",
        0.5,
        metrics=[Comparison("k::iou", "iou", 0.7, "higher", 0.05, 0.69, "ok", "b.json")],
        records=[record_view(_record(n=2, failing=()))],
    )
    failing = TestEntry(
        "tests/test_a.py::test_bad[<script>]",
        "failed",
        1.25,
        message="AuditFailure: mass in box < 0.5",
        metrics=[Comparison("k::m", "m", 0.5, "higher", 0.05, 0.8, "regressed", "b.json")],
        records=[record_view(_record(n=3, failing=(1,)))],
        attachments=[Attachment("heat", base64.b64encode(b"x").decode(), None)],
    )
    return [passing, failing]


def test_html_is_valid_and_shows_every_sample_failing_first():
    page = render_html(_entries(), notes=["model: shapes-cnn"])
    checker = parse(page)
    assert checker.sections == ["test failed", "test passed"]  # failing test first
    overlays = [img for img in checker.images if img.get("alt", "").startswith("heat map")]
    inputs = [img for img in checker.images if img.get("alt", "").startswith("input")]
    assert len(overlays) == len(inputs) == 2 + 3  # one per recorded sample
    first_failing_overlay = decode(overlays[0]["src"])  # failing test, its failing sample 1
    rec = _record(n=3, failing=(1,))
    assert rec.samples is not None and rec.samples.images is not None
    assert rec.samples.maps is not None
    expected = overlay(rec.samples.images[1], rec.samples.maps[1], box=(2, 2, 10, 12))
    assert np.array_equal(first_failing_overlay, expected)
    text = "".join(checker.text)
    assert "tests/test_a.py::test_bad[<script>]" in text  # escaped, shown as text
    assert "<script>" not in page.replace("&lt;script&gt;", "")
    for needle in (
        "FAILED",
        "PASSED",
        "regressed",
        "bound ≥ 0.5",
        "chance 0.25",
        "-0.3",
        "failing samples: 1 of 3 (1)",
        "model: shapes-cnn",
        "1 failed, 1 passed",
    ):
        assert needle in text, needle


def _checks_without_pictures():
    """A hook audit, a shape audit and a baseline gate: records that carry no samples."""
    hook = AuditRecord(
        "hook_grad_error",
        "assert_hook_grads_match_autograd",
        False,
        (0.0, 0.5),
        items=("features.0", "features.3"),
        unit="layer",
        bound=1e-6,
        direction="lower",
        obtained=0.5,
        failing=(1,),
        rule="hook_grad_error <= 1e-06 must hold for every layer",
    )
    shape = AuditRecord(
        "feature_map_shape",
        "assert_feature_map_shapes",
        False,
        (1.0, 0.0),
        items=("layer1", "layer2"),
        unit="layer",
        failing=(1,),
        rule="every feature map must keep the input's aspect ratio",
        reasons=("", "obtained (4, 8), expected (8, 8)"),
    )
    regressed = Comparison("t::m", "m", 0.5, "higher", 0.05, 0.8, "regressed", "b.json")
    gate = AuditRecord(
        "baseline",
        "assert_within_baseline",
        False,
        (0.5,),
        items=("m",),
        unit="metric",
        failing=(0,),
        rule="every metric must stay within its tolerance of the baseline",
        reasons=(regressed.reason(),),
        details={"comparisons": [regressed.to_dict()]},
    )
    return [hook, shape, gate], regressed


def test_records_without_pictures_list_their_items_like_samples():
    records, regressed = _checks_without_pictures()
    entry = TestEntry(
        "t::test_checks",
        "failed",
        message="AuditFailure: " + records[0].message,
        metrics=[regressed],
        records=[record_view(r) for r in records],
    )
    checker = parse(render_html([entry]))
    text = "".join(checker.text)
    # every record: a title with its verdict and failing items, then its items
    for needle in (
        "hook_grad_error",
        "failing layers: 1 of 2 (features.3)",
        "bound ≤ 1e-06",
        "feature_map_shape",
        "failing layers: 1 of 2 (layer2)",
        "obtained (4, 8), expected (8, 8)",
        "baseline",
        "failing metrics: 1 of 1 (m)",
        "regressed: obtained 0.5, baseline 0.8",
    ):
        assert needle in text, needle
    # the failure text is shown once; the other records' messages under their titles
    assert text.count(records[0].rule) == 1 and records[1].message in text
    assert records[2].message in text
    assert not [i for i in checker.images if i["alt"].startswith(("heat map", "input"))]


def test_a_passing_gate_over_the_metrics_table_is_not_repeated():
    ok = Comparison("t::m", "m", 0.8, "higher", 0.05, 0.8, "ok", "b.json")
    gate = AuditRecord(
        "baseline",
        "assert_within_baseline",
        True,
        (0.8,),
        items=("m",),
        unit="metric",
        details={"comparisons": [ok.to_dict()]},
    )
    entry = TestEntry("t", metrics=[ok], records=[record_view(gate)])
    assert "assert_within_baseline" not in render_html([entry])
    lonely = TestEntry("t", records=[record_view(gate)])  # no metrics table: shown
    assert "assert_within_baseline" in render_html([lonely])


def test_write_html_and_json(tmp_path):
    entries = _entries()
    entries[0].metrics.append(
        Comparison("k::nan", "nan", math.nan, "higher", 0.05, None, "invalid")
    )
    html_path = write_html(entries, tmp_path / "r" / "report.html")
    parse(html_path.read_text())
    json_path = write_json(entries, tmp_path / "r" / "records.json")
    doc = json.loads(json_path.read_text())  # strict JSON: NaN became null
    assert doc["version"] == 1 and doc["summary"] == {"failed": 1, "passed": 1}
    assert [t["outcome"] for t in doc["tests"]] == ["failed", "passed"]
    assert doc["tests"][1]["metrics"][1]["value"] is None
    assert doc["tests"][0]["records"][0]["failing"] == [1]
    assert "samples" not in doc["tests"][0]["records"][0]
    assert doc["tests"][0]["records"][0]["overlay_files"] == []
    assert doc["tests"][0]["records"][0]["assertion"] == "assert_mass_in_box"
    assert export_dict([])["tests"] == []


def test_entries_survive_the_worker_transport():
    for entry in _entries():
        wire = json.loads(json.dumps(entry.to_dict()))
        back = TestEntry.from_dict(wire)
        assert back.to_dict() == entry.to_dict()


def test_sort_entries_order():
    outcomes = ["passed", "skipped", "error", "xpassed", "failed", "xfailed"]
    got = [e.outcome for e in sort_entries(TestEntry(o, o) for o in outcomes)]
    assert got == ["error", "failed", "xpassed", "passed", "xfailed", "skipped"]
