"""TensorBoard export: scalars and images read back with TensorBoard's own reader."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import hypothesis  # noqa: F401  (imported once here, not again inside every in-process run)
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import (
    IMAGES,
    SCALARS,
    EventAccumulator,
)
from torch import nn

import modelaudit as ma
from modelaudit.baseline import Comparison
from modelaudit.errors import ModelAuditError
from modelaudit.report import log_feature_maps, write_tensorboard
from modelaudit.report.collector import AuditCollector, shown_path
from modelaudit.report.entries import Attachment, RecordView, SampleRow, TestEntry, encode_png
from modelaudit.report.options import AuditOptions
from modelaudit.report.tensorboard import summary_writer

NODE = "tests/test_a.py::test_x"


def _read(log_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0, IMAGES: 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _pixels(event) -> np.ndarray:
    return iio.imread(io.BytesIO(event.encoded_image_string))


def _entry() -> tuple[TestEntry, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)  # 20 wide, 12 high
    grey = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    gate = Comparison(f"{NODE}::m", "m", 0.5, "higher", 0.05, None, "recorded")
    entry = TestEntry(
        NODE,
        metrics=[gate, Comparison(f"{NODE}::loss", "loss", 0.25, "lower", 0.05, None, "ok")],
        records=[
            RecordView(
                {"check": "iou", "obtained": 0.75, "passed": True},
                samples=[
                    SampleRow(index=3, value=0.7, passed=True, overlay_png=encode_png(picture)),
                    SampleRow(index=5, value=0.8, passed=True),  # not drawn: no image
                ],
                overview_png=encode_png(picture[:, :10]),
            ),
            RecordView({"check": "iou", "obtained": 0.5, "passed": False}),  # a repeat
            RecordView({"check": "shape", "obtained": None, "passed": False}),  # no number
            RecordView(  # the audit fixture's baseline gate: its metrics are already written
                {
                    "check": "within_baseline",
                    "assertion": "assert_within_baseline",
                    "obtained": 1.0,
                    "details": {"comparisons": [gate.to_dict()]},
                }
            ),
        ],
        attachments=[Attachment("probe grid", encode_png(grey))],
    )
    return entry, picture, grey


def test_entries_become_scalars_and_images(tmp_path):
    entry, picture, grey = _entry()
    assert write_tensorboard([entry], tmp_path / "tb", step=2) == (4, 3)
    acc = _read(tmp_path / "tb")
    assert _scalars(acc) == {
        f"{NODE}/m": [(2, 0.5)],
        f"{NODE}/loss": [(2, 0.25)],
        f"{NODE}/iou": [(2, 0.75), (3, 0.5)],  # repeated checks count the step up
    }
    images = sorted(acc.Tags()["images"])
    assert images == [
        f"{NODE}/attachment/probe grid",
        f"{NODE}/iou/overlay_3",
        f"{NODE}/iou/overview",
    ]
    (shown,) = acc.Images(f"{NODE}/iou/overlay_3")
    assert (shown.width, shown.height, shown.step) == (20, 12, 2)
    assert np.array_equal(_pixels(shown), picture)
    (overview,) = acc.Images(f"{NODE}/iou/overview")
    assert (overview.width, overview.height) == (10, 12)
    (attached,) = acc.Images(f"{NODE}/attachment/probe grid")
    assert (attached.width, attached.height) == (9, 7)
    assert np.array_equal(_pixels(attached)[..., 0], grey)  # grey is written as RGB


def test_feature_maps_are_written_as_the_grid(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 3, 3))
    image = torch.rand(3, 16, 16)
    expected = ma.feature_map_grid(net, image, "2", nrow=3)["2"]
    assert expected.shape == (14, 40)  # one row of three 12 x 12 tiles, 1 px padding
    with summary_writer(tmp_path / "tb") as writer:
        grids = log_feature_maps(writer, net, image, "2", step=3, nrow=3)
        writer.add_scalar("still/open", 1.0, 0)  # the caller's writer is left open
    assert list(grids) == ["2"] and np.array_equal(grids["2"], expected)
    acc = _read(tmp_path / "tb")
    assert acc.Tags()["images"] == ["feature_maps/2"]
    (event,) = acc.Images("feature_maps/2")
    assert (event.height, event.width, event.step) == (*expected.shape, 3)
    assert np.array_equal(_pixels(event)[..., 0], expected)
    assert _scalars(acc) == {"still/open": [(0, 1.0)]}


def test_feature_maps_of_every_conv_into_a_directory(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    grids = log_feature_maps(tmp_path, net, torch.rand(1, 1, 9, 9), prefix="fm")
    acc = _read(tmp_path)
    assert sorted(acc.Tags()["images"]) == ["fm/0", "fm/2"]
    for name, grid in grids.items():
        (event,) = acc.Images(f"fm/{name}")
        assert (event.height, event.width) == grid.shape


def test_missing_tensorboard_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ModelAuditError, match=r"pip install modelaudit\[tensorboard\]"):
        write_tensorboard([TestEntry(NODE)], tmp_path)
    collector = AuditCollector(tensorboard_dir=tmp_path / "tb")
    collector.entries.append(TestEntry(NODE))
    assert collector.close() is True  # pictures only: the run's verdicts stand
    (warning,) = collector.warnings
    assert collector.errors == []
    assert f"--audit-tensorboard={tmp_path / 'tb'}" in warning
    assert "pip install modelaudit[tensorboard]" in warning


def test_collector_writes_on_close_only_when_asked(tmp_path):
    entry, _, _ = _entry()
    quiet = AuditCollector(tmp_path / "report")
    quiet.entries.append(entry)
    assert quiet.close() and not list(tmp_path.glob("**/events.out.tfevents*"))
    collector = AuditCollector(tensorboard_dir=tmp_path / "tb")
    collector.entries.append(entry)
    assert collector.close() and collector.errors == []
    shown = shown_path(tmp_path / "tb")
    assert collector.notes == [f"modelaudit tensorboard: {shown} (4 scalars, 3 images)"]
    assert _scalars(_read(tmp_path / "tb"))[f"{NODE}/m"] == [(0, 0.5)]


def test_option_from_the_command_line_or_the_ini_file():
    def resolve(cli, ini):
        return AuditOptions.resolve(
            cli.get, ini.get, cli_dir=Path("/run"), ini_dir=Path("/repo"), root=Path("/repo")
        ).tensorboard_dir

    assert resolve({}, {}) is None  # off by default
    assert resolve({"audit_tensorboard": "tb"}, {"audit_tensorboard": "x"}) == Path("/run/tb")
    assert resolve({}, {"audit_tensorboard": "logs/tb"}) == Path("/repo/logs/tb")


AUDITED = """
import torch
from modelaudit.checks.record import SampleViews, decide

def test_metric(audit):
    audit.metric("m", 0.5)

def test_check():
    views = SampleViews(images=torch.rand(2, 3, 8, 8), maps=torch.rand(2, 8, 8))
    decide("assert_pointing_game", "pointing_game", [1.0, 1.0], at_least=0.5, samples=views)
"""


def test_plugin_writes_the_event_files(pytester):
    pytester.makepyfile(test_tb=AUDITED)
    result = pytester.runpytest_inprocess("--audit-tensorboard=tb")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    where = pytester.path / "tb"
    result.stdout.fnmatch_lines(["modelaudit tensorboard: tb (2 scalars, 2 images)"])  # relative
    acc = _read(where)
    assert _scalars(acc) == {
        "test_tb.py::test_metric/m": [(0, 0.5)],
        "test_tb.py::test_check/pointing_game": [(0, 1.0)],
    }
    for index in (0, 1):
        (event,) = acc.Images(f"test_tb.py::test_check/pointing_game/overlay_{index}")
        assert (event.width, event.height) == (8, 8)


def test_plugin_unwritable_directory_is_a_warning_not_a_verdict(pytester):
    pytester.makepyfile(test_tb=AUDITED)
    (pytester.path / "blocker").write_text("a file, not a directory")
    result = pytester.runpytest_inprocess("--audit-tensorboard=blocker/tb")
    result.assert_outcomes(passed=2)  # the tests' verdicts do not depend on the export
    assert result.ret == pytest.ExitCode.OK  # nor does the run's: pictures are not verdicts
    result.stdout.fnmatch_lines(
        [f"modelaudit: WARNING ModelAuditError: --audit-tensorboard={pytester.path}/blocker/tb: *"]
    )
    assert (pytester.path / "audit-report" / "report.html").is_file()  # the report still is


@pytest.mark.slow  # a subprocess run with two workers: about 14 s
def test_plugin_under_xdist_the_controller_writes_one_event_file(pytester):
    for name, value in (("one", 0.25), ("two", 0.75)):
        pytester.makepyfile(
            **{f"test_{name}": f"def test_{name}(audit):\n    audit.metric('m', {value})\n"}
        )
    result = pytester.runpytest_subprocess("-n", "2", "--dist=loadfile", "--audit-tensorboard=tb")
    result.assert_outcomes(passed=2)
    assert len(list((pytester.path / "tb").iterdir())) == 1  # the workers wrote none
    assert _scalars(_read(pytester.path / "tb")) == {
        "test_one.py::test_one/m": [(0, 0.25)],
        "test_two.py::test_two/m": [(0, 0.75)],
    }
