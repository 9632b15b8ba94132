"""The report's triage: summary table and filter, bounded pages, escaped ids, tiles, plots."""

import re
from html.parser import HTMLParser

import torch

from modelaudit.baseline import Comparison
from modelaudit.checks.record import AuditRecord, Curves, SampleViews
from modelaudit.report.collector import AuditCollector, folder_name
from modelaudit.report.entries import RecordView, TestEntry, record_view, section_id
from modelaudit.report.html import render_html
from modelaudit.report.overlay import OUTLINE_COLORS
from modelaudit.report.tiles import record_legend


class Rows(HTMLParser):
    """Collects the summary table's row classes and the page's tag classes."""

    def __init__(self, page):
        super().__init__()
        self.rows, self.classes, self.ids, self.checked = [], [], [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append(attrs.get("class") or "")
        if attrs.get("class"):
            self.classes.append((tag, attrs["class"]))
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag == "input" and attrs.get("id") == "only-failed":
            self.checked = "checked" in attrs


def _record(check, values, failing, *, bound=0.5, aggregate="all", samples=None):
    vals = tuple(float(v) for v in values)
    return AuditRecord(
        check,
        f"assert_{check}",
        not failing,
        vals,
        bound=bound,
        direction="higher",
        aggregate=aggregate,
        obtained=min(vals) if aggregate == "all" else sum(vals) / len(vals),
        failing=tuple(failing),
        samples=samples,
    )


def test_summary_table_has_a_row_per_gate_under_each_test_failing_tests_first():
    ok = TestEntry("t.py::test_ok", records=[record_view(_record("iou", [0.9, 0.8], ()))])
    bad = TestEntry(
        "t.py::test_bad",
        "failed",
        metrics=[Comparison("t::m", "m", 0.5, "higher", 0.05, 0.8, "regressed")],
        records=[record_view(_record("mass_in_box", [0.9, 0.1], (1,)))],
    )
    rows = Rows(render_html([ok, bad]))
    table = [r for r in rows.rows if r.startswith(("group", "gate"))]
    assert table == [
        "group failed",  # t.py::test_bad
        "gate failed",  # m vs baseline
        "gate failed",  # mass_in_box
        "group passed",  # t.py::test_ok
        "gate passed",  # iou
    ]
    assert rows.checked is True  # something failed: the page opens on the failures
    assert ("details", "test failed") in rows.classes and ("details", "test passed") in rows.classes
    assert section_id("t.py::test_bad") in rows.ids and section_id("t.py::test_ok") in rows.ids
    # a run where everything passed opens on everything
    assert Rows(render_html([ok])).checked is False


def test_the_filter_hides_passing_rows_and_sections_with_css_alone():
    page = render_html([TestEntry("t", records=[record_view(_record("iou", [0.9], ()))])])
    assert "body:has(#only-failed:checked) .passed { display: none; }" in page
    assert "<script" not in page


def test_value_is_and_ranges_in_the_record_title():
    values = [0.1] * 6 + [0.9] + [0.1] * 3
    failing = [i for i, v in enumerate(values) if v < 0.5]
    view = record_view(_record("iou", values, failing, aggregate="mean"))
    page = render_html([TestEntry("t", "failed", records=[view])])
    assert "mean of 10 samples: 0.18" in page
    assert "failing samples: 9 of 10 (0-5, 7-9)" in page


def test_ten_thousand_failing_samples_give_a_bounded_report():
    n = 10_000
    views = SampleViews(images=torch.rand(n, 3, 8, 8), maps=torch.rand(n, 8, 8))
    record = _record("mass_in_box", [0.1] * n, range(n), samples=views)
    assert record.message.count("\n") < 20  # the failure text lists 10 samples
    collector = AuditCollector(None, max_samples=8)
    view = record_view(record, max_samples=collector.max_samples)
    assert len(view.samples) == 8 and view.hidden == n - 8
    page = render_html([TestEntry("t", "failed", records=[view])])
    assert len(page) < 60_000  # 8 tiles of 8x8 pictures and one line of ranges
    assert "failing samples: 10000 of 10000 (0-9999)" in page
    assert "8 of 10000 samples drawn, worst first" in page
    assert "--audit-report-samples=N" in page


def test_a_test_id_with_html_and_path_characters_is_escaped_and_kept_in_its_folder(tmp_path):
    nodeid = 'tests/t.py::test_x[<img src=x onerror="alert(1)">/../../etc/passwd]'
    collector = AuditCollector(tmp_path)
    collector.start_test(nodeid, audited=True)
    views = SampleViews(images=torch.rand(2, 3, 8, 8), maps=torch.rand(2, 8, 8))
    collector.add_records(nodeid, [_record("iou", [0.1, 0.9], (0,), samples=views)])
    collector.report_phase(nodeid, "call", "failed", 0.1, message="boom")
    collector.finish_test(nodeid)
    collector.write()
    (written,) = (tmp_path / "tests").iterdir()  # one folder, inside the report's
    assert written.name == folder_name(nodeid) and "/" not in written.name
    assert sorted(p.name for p in written.iterdir()) == ["iou-0.png"]
    page = (tmp_path / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert re.fullmatch(r"t-[0-9a-f]{10}", section_id(nodeid))


def test_tiles_say_the_classes_the_prediction_the_value_method_and_layer():
    views = SampleViews(
        images=torch.rand(2, 3, 8, 8),
        maps=torch.rand(2, 8, 8),
        boxes=torch.tensor([[1, 1, 5, 5], [2, 2, 6, 6]]),
        labels=torch.tensor([0, 2]),
        predicted=torch.tensor([0, 1]),
        confidence=torch.tensor([0.951, 0.62]),
        class_names=("circle", "square", "triangle"),
        peaks=True,
    )
    record = AuditRecord(
        "pointing_game",
        "assert_pointing_game",
        False,
        (1.0, 0.0),
        bound=0.5,
        direction="higher",
        obtained=0.0,
        failing=(1,),
        details={"method": "layercam", "layer": "features"},
        samples=views,
    )
    view = record_view(record)
    assert [(s.index, s.label_name, s.predicted_name) for s in view.samples] == [
        (1, "triangle", "square"),
        (0, "circle", "circle"),
    ]
    page = render_html([TestEntry("t", "failed", records=[view])])
    text = re.sub(r"<[^>]+>", "", page)
    assert "sample 1 · value 0 · FAIL" in text
    assert "class triangle · predicted square 62%" in text
    assert "class circle · predicted circle 95%" in text
    assert text.count("layercam · features") == 2
    assert "hottest pixel (the pointing game's point)" in text


def test_the_legend_names_what_is_drawn_and_nothing_else():
    def legend(**views):
        samples = SampleViews(images=torch.rand(1, 3, 8, 8), maps=torch.rand(1, 8, 8), **views)
        return record_legend(record_view(_record("c", [0.9], (), samples=samples)), "inferno")

    box = torch.tensor([[1, 1, 5, 5]])
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 2:5, 2:5] = True
    cyan, green, magenta = (
        "#{:02x}{:02x}{:02x}".format(*OUTLINE_COLORS["inferno"][k])
        for k in ("box", "mask", "forbidden")
    )
    assert cyan in legend(boxes=box) and "object box" in legend(boxes=box)
    assert "mask" not in legend(boxes=box) and "hottest" not in legend(boxes=box)
    assert green in legend(masks=mask) and "object mask" in legend(masks=mask)
    forbidden = legend(boxes=box, region="forbidden region")
    assert magenta in forbidden and "forbidden region" in forbidden and "object" not in forbidden
    assert legend() == ""  # nothing outlined, nothing marked: no legend


def test_strips_and_curves_are_drawn():
    strip = (("layer4 randomised", torch.rand(2, 8, 8)), ("fc randomised", torch.rand(2, 8, 8)))
    curves = Curves(
        torch.tensor([0.0, 0.5, 1.0]),
        (("map order", torch.tensor([0.9, 0.2, 0.1]), 0.35),),
        ("random order", torch.tensor([0.9, 0.6, 0.1]), 0.55),
        x_label="fraction of pixels deleted",
        y_label="probability",
    )
    views = SampleViews(
        images=torch.rand(2, 3, 8, 8), maps=torch.rand(2, 8, 8), strip=strip, curves=curves
    )
    view = record_view(_record("deletion_auc", [0.9, 0.8], (), samples=views))
    assert [[c for c, _ in s.strip] for s in view.samples] == [
        ["layer4 randomised", "fc randomised"]
    ] * 2
    assert view.curves is not None and view.curves["reference"][2] == 0.55
    page = render_html([TestEntry("t", records=[view])])
    assert page.count("<svg") == 1 and "AUC 0.35" in page and "AUC 0.55" in page
    assert "fc randomised" in page and "stroke-dasharray" in page
    # the plot round-trips through the JSON the xdist workers send
    back = TestEntry.from_dict(TestEntry("t", records=[view]).to_dict()).records[0]
    assert back.curves == view.curves and back.samples[0].strip == view.samples[0].strip


def test_a_passing_record_is_collapsed_and_a_failing_one_open():
    passed = render_html([TestEntry("t", records=[record_view(_record("c", [0.9], ()))])])
    views = SampleViews(images=torch.rand(1, 3, 8, 8), maps=torch.rand(1, 8, 8))
    bad = record_view(_record("c", [0.1], (0,), samples=views))
    failed = render_html([TestEntry("t", "failed", records=[bad])])
    assert "<details class='record passed'>" in passed
    assert "<details class='record failed' open>" in failed


def test_report_writing_problems_are_warnings_and_never_verdicts(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    collector = AuditCollector(blocker / "report")
    collector.start_test("t", audited=True)
    views = SampleViews(images=torch.rand(1, 3, 8, 8), maps=torch.rand(1, 8, 8))
    collector.add_records("t", [_record("iou", [0.1], (0,), samples=views)])
    collector.report_phase("t", "call", "failed", 0.1, message="boom")
    entry = collector.finish_test("t")  # overlays cannot be written: no exception
    assert entry is not None and entry.outcome == "failed" and entry.records[0].files == []
    assert collector.close() is True and collector.errors == []
    assert len(collector.warnings) == 2
    assert "overlay PNGs of t not written" in collector.warnings[0]
    assert "the report could not be written to" in collector.warnings[1]
    assert "--audit-report-dir" in collector.warnings[1]


def test_a_gate_row_links_to_its_test_section():
    entry = TestEntry("a/b.py::test_c", "failed", records=[record_view(_record("c", [0.1], (0,)))])
    page = render_html([entry])
    assert (
        f"href='#{section_id(entry.nodeid)}'" in page and f"id='{section_id(entry.nodeid)}'" in page
    )
    assert isinstance(entry.records[0], RecordView)


def test_a_passing_check_calls_its_weak_samples_misses_not_failures():
    views = SampleViews(images=torch.rand(3, 3, 8, 8), maps=torch.rand(3, 8, 8))
    record = _record("iou", [0.9, 0.9, 0.2], (2,), aggregate="mean", samples=views)
    record = AuditRecord(**{**record.__dict__, "passed": True})  # the mean, 0.67, holds
    page = render_html([TestEntry("t", records=[record_view(record)])])
    assert "samples missing the bound: 1 of 3 (2)" in page and "failing samples" not in page
    assert "misses the bound" in page and "class='sample bad'" not in page
    views = SampleViews(images=torch.rand(1, 3, 8, 8), maps=torch.rand(1, 8, 8))
    bad = record_view(_record("c", [0.1], (0,), samples=views))
    failed = render_html([TestEntry("t", "failed", records=[bad])])
    assert "class='sample bad'" in failed and ">FAIL<" in failed


def test_capped_tiles_show_the_worst_sample_of_every_class_first():
    values = [0.01 * i for i in range(12)]  # all fail at_least=0.5; 0 is the worst
    classes = tuple([0] * 9 + [1, 2, 2])  # class 1's only sample, 9, is the 10th worst
    views = SampleViews(images=torch.rand(12, 3, 8, 8), maps=torch.rand(12, 8, 8))
    record = _record("mass_in_box", values, range(12), samples=views)
    record = AuditRecord(**{**record.__dict__, "classes": classes})
    shown = [s.index for s in record_view(record, max_samples=4).samples]
    assert shown == [0, 9, 10, 1]  # the worst of classes 0, 1 and 2, then the next worst


def test_a_fraction_rule_is_shown_as_the_fraction_passing_against_the_fraction_needed():
    record = AuditRecord(
        "iou",
        "assert_iou",
        False,
        (0.9, 0.6, 0.4, 0.1),
        bound=0.5,
        direction="higher",
        aggregate="fraction",
        obtained=0.4,
        failing=(2, 3),
        details={"required_fraction": 0.75, "passing_fraction": 0.5},
    )
    page = render_html([TestEntry("t", "failed", records=[record_view(record)])])
    assert "fraction of 4 samples &gt;= 0.5: 50% (needs 75%)" in page
