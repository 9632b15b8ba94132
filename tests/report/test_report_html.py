"""Report entries, the HTML page and the JSON export."""

import base64
import json
import math
from html.parser import HTMLParser

import imageio.v3 as iio
import numpy as np
import torch

from modelaudit.baseline import Comparison
from modelaudit.records import AuditRecord, SampleViews
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
        if tag == "section":
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


def _record(n=3, failing=(1,), check="mass_in_box"):
    gen = torch.Generator().manual_seed(n)
    return AuditRecord(
        check=check,
        passed=not failing,
        values=[0.1 * (i + 1) for i in range(n)],
        bound=0.5,
        direction="at_least",
        obtained=0.2,
        failing=list(failing),
        chance=0.25,
        message="mass in box below 0.5 for sample 1",
        samples=SampleViews(
            images=torch.rand(n, 3, 16, 16, generator=gen),
            maps=torch.rand(n, 16, 16, generator=gen),
            boxes=torch.tensor([[2, 2, 10, 12]] * n),
        ),
    )


def test_record_view_rows_and_images():
    rec = _record()
    view = record_view(rec)
    assert [(s.index, s.passed) for s in view.samples] == [(0, True), (1, False), (2, True)]
    assert [s.value for s in view.samples] == rec.values and view.hidden == 0
    samples = rec.samples
    assert samples is not None and samples.images is not None and samples.maps is not None
    got = iio.imread(base64.b64decode(view.samples[1].overlay_png))
    assert np.array_equal(got, overlay(samples.images[1], samples.maps[1], box=(2, 2, 10, 12)))
    shown = iio.imread(base64.b64decode(view.samples[1].input_png))
    assert np.array_equal(shown, np.rint(samples.images[1].permute(1, 2, 0).numpy() * 255))
    assert view.record == rec.to_json()


def test_record_view_caps_samples_keeping_failures():
    view = record_view(_record(n=6, failing=(4,)), max_samples=2)
    assert [s.index for s in view.samples] == [0, 4] and view.hidden == 4
    # no per-sample values: no per-sample verdict either
    rec = _record(n=2, failing=())
    rec.values = [0.3]
    assert [s.passed for s in record_view(rec).samples] == [None, None]


def test_record_view_reports_drawing_problems_instead_of_raising():
    rec = AuditRecord(
        check="c", passed=True, values=[1.0], samples=SampleViews(maps=torch.full((1, 4, 4), 2.0))
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
    assert checker.sections == ["test failed", "test "]  # failing test first
    overlays = [img for img in checker.images if img.get("alt", "").startswith("overlay")]
    inputs = [img for img in checker.images if img.get("alt", "").startswith("input")]
    assert len(overlays) == len(inputs) == 2 + 3  # one per recorded sample
    first_failing_overlay = decode(overlays[1]["src"])  # failing test, sample 1
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
        "failing samples: 1",
        "model: shapes-cnn",
        "1 failed, 1 passed",
    ):
        assert needle in text, needle


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
