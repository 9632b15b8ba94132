"""The overview of a failed localization record: a PNG in the test's folder, inline in
report.html with its caption, and through xdist payloads unchanged."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import modelaudit as ma
from modelaudit.checks.record import AuditRecord, Overview, collect_records
from modelaudit.errors import AuditFailure
from modelaudit.report.collector import REPORT_HTML, AuditCollector
from modelaudit.report.entries import TestEntry, record_view
from modelaudit.report.html import render_html
from modelaudit.report.overlay import OUTLINE_COLORS, overview_picture

NODE = "tests/test_a.py::test_looks_elsewhere"


def failed_record(images: bool = True) -> AuditRecord:
    """A failing assert_mass_in_box whose off-object mass sits in the bottom-right corner."""
    maps = torch.zeros(2, 16, 16)
    maps[:, 7:9, 7:9] = 1.0
    maps[:, 12:, 12:] = 1.0
    shown = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with collect_records() as got, pytest.raises(AuditFailure):
        ma.assert_mass_in_box(
            maps, torch.tensor([[6, 6, 10, 10]] * 2), at_least=0.5, images=shown if images else None
        )
    return got[0]


def run_test(collector: AuditCollector, record: AuditRecord) -> TestEntry:
    collector.start_test(NODE, audited=True)
    collector.add_records(NODE, [record])
    collector.report_phase(NODE, "call", "failed", 0.1, message=record.message)
    entry = collector.finish_test(NODE)
    assert entry is not None
    return entry


def test_overview_picture_has_three_panels_and_outlines() -> None:
    ov = failed_record().overview
    assert ov is not None
    picture = overview_picture(ov)
    # 16x16 panels enlarged 8x to 128, three of them with two 4-pixel gaps
    assert picture.shape == (128, 3 * 128 + 8, 3) and picture.dtype == np.uint8
    right = picture[:, 2 * 128 + 8 :]
    box = np.array(OUTLINE_COLORS["inferno"]["box"], dtype=np.uint8)
    assert (right[12 * 8 :, 12 * 8 :] == box).all(axis=-1).any()  # the named corner outlined
    assert (picture[:, 128:132] == 255).all()  # the gap


def test_failed_record_writes_the_overview_png_and_links_it(tmp_path: Path) -> None:
    collector = AuditCollector(tmp_path)
    entry = run_test(collector, failed_record())
    view = entry.records[0]
    assert view.overview_file is not None
    path = tmp_path / view.overview_file  # relative to the report's folder
    assert path.name == "mass_in_box-overview.png" and path.parent == collector.test_dir(NODE)
    assert iio.imread(path).shape == (128, 392, 3)
    assert view.overview_caption and "bottom-right corner" in view.overview_caption
    assert path.name not in " ".join(view.files)  # files are the failing samples only
    collector.write()
    page = (tmp_path / REPORT_HTML).read_text()
    assert "class='overview'" in page
    assert f"href='{view.overview_file}'" in page  # linked relative to the report
    assert "Where the model looks instead: <strong>" in page
    assert view.overview_caption.replace("'", "&#x27;") in page


def test_the_overview_travels_through_xdist_payloads(tmp_path: Path) -> None:
    worker = AuditCollector(tmp_path)
    entry = run_test(worker, failed_record(images=False))
    controller = AuditCollector(tmp_path)
    controller.merge(worker.worker_payload())
    back = controller.entries[0].records[0]
    sent = entry.records[0]
    assert back.overview_png == sent.overview_png and back.overview_png
    assert (back.overview_caption, back.overview_file) == (
        sent.overview_caption,
        sent.overview_file,
    )
    assert "class='overview'" in render_html(controller.entries)


def test_passing_records_draw_their_overview_and_reportless_runs_none() -> None:
    maps = torch.zeros(1, 8, 8)
    maps[0, 1, 1] = 1.0
    passed = ma.assert_mass_in_box(maps, torch.tensor([[0, 0, 4, 4]]), at_least=0.5)
    assert passed.overview is not None  # a passing attention test shows its mean map too
    assert record_view(passed).overview_png is not None
    assert record_view(failed_record(), overview=False).overview_png is None
    entry = run_test(AuditCollector(None), failed_record())
    assert entry.records[0].overview_png is None


def test_a_bad_overview_is_an_error_note_not_a_crash() -> None:
    bad = Overview(torch.full((4, 4), float("nan")), torch.zeros(4, 4), torch.zeros(4, 4))
    rec = AuditRecord("iou", "assert_iou", False, (0.1,), failing=(0,), overview=bad)
    view = record_view(rec)
    assert view.overview_png is None and "could not draw the overview" in (view.error or "")
