"""AuditRecorder: the object behind the ``audit`` fixture, used here without pytest's help."""

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from modelaudit.baseline import Baseline
from modelaudit.checks.record import collect_records
from modelaudit.errors import AuditFailure, BaselineError, InvalidInputError
from modelaudit.report.overlay import overlay
from modelaudit.report.recorder import AuditRecorder


def _baseline():
    base = Baseline(path="gate.json")
    base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    base.set("t::drop", 0.2, direction="lower", tolerance=0.1)
    return base


def test_gates_on_the_baseline_through_the_one_verdict_path():
    props = []
    audit = AuditRecorder("t", baseline=_baseline(), on_property=lambda k, v: props.append((k, v)))
    with collect_records() as emitted:
        ok = audit.metric("iou", 0.77)  # 0.8 - 0.04 allowed
        assert audit.metric("drop", torch.tensor(0.15), direction="lower").passed  # improved
        with pytest.raises(AuditFailure) as info:
            audit.metric("iou2", 0.5)
    assert (ok.check, ok.assertion, ok.items, ok.unit) == (
        "baseline",
        "assert_within_baseline",
        ("iou",),
        "metric",
    )
    assert ok.details["comparisons"][0]["status"] == "ok"
    rec = info.value.record
    assert (rec.passed, rec.items, rec.failing) == (False, ("iou2",), (0,))
    assert str(
        info.value
    ) == rec.message and "iou2: no baseline entry (t::iou2 in gate.json)" in str(info.value)
    assert str(info.value).endswith(
        "Create the baseline: re-run pytest with --audit-update-baseline (and commit the file)"
    )
    assert emitted == [ok, emitted[1], rec]  # every verdict reaches the report, pass or fail
    assert [c.status for c in audit.comparisons] == ["ok", "improved", "missing"]
    assert props[:3] == [
        ("audit.iou", 0.77),
        ("audit.iou.baseline", 0.8),
        ("audit.iou.status", "ok"),
    ]


def test_regression_failure_has_the_numbers():
    audit = AuditRecorder("t", baseline=_baseline())
    with pytest.raises(AuditFailure) as info:
        audit.metric("iou", 0.7)
    text = str(info.value)
    assert "iou: regressed: obtained 0.7, baseline 0.8 (t::iou in gate.json)" in text
    assert "delta -0.1" in text
    assert text.splitlines()[-1].startswith("If the change is intended, update the baseline:")
    unchecked = audit.metric("drop", 0.5, direction="lower", check=False)
    assert not unchecked.passed and audit.comparisons[-1].status == "regressed"


def test_metrics_reports_every_failure_at_once():
    audit = AuditRecorder("t", baseline=_baseline())
    with pytest.raises(AuditFailure, match="3 of 3 metrics fail") as info:
        audit.metrics({"iou": 0.1, "x": 1.0, "drop": 0.2}, direction="higher")
    text = str(info.value)
    assert "iou: regressed" in text and "x: no baseline entry" in text
    assert "the baseline says lower is better, the test now says higher" in text
    assert info.value.record.items == ("iou", "x", "drop")
    # drop is stored as lower-is-better: a flipped direction fails too
    assert [c.status for c in audit.comparisons] == ["regressed", "missing", "regressed"]


def test_update_mode_marks_values_for_writing():
    audit = AuditRecorder("t", baseline=_baseline(), update=True, tolerance=0.2)
    assert audit.metric("new", 0.3).passed and audit.metric("iou", 0.1).passed
    new, old = audit.comparisons
    assert (new.status, new.tolerance, new.baseline) == ("updated", 0.2, None)
    assert (old.status, old.tolerance, old.baseline) == ("updated", 0.05, 0.8)  # kept tolerance
    with pytest.raises(AuditFailure, match="not a finite number"):
        audit.metric("broken", math.nan)  # never written into a baseline


def test_without_baseline_values_are_recorded_not_gated():
    audit = AuditRecorder("t")
    assert audit.metric("anything", -3.0).passed
    assert audit.comparisons[0].status == "recorded"


def test_baseline_is_loaded_lazily_and_errors_surface():
    calls = []

    def load():
        calls.append(1)
        raise BaselineError("baseline file b.json is not valid JSON")

    audit = AuditRecorder("t", baseline=load)
    audit.attach("img", np.zeros((2, 2), np.uint8))
    assert calls == []  # no metric yet: the file is not read
    with pytest.raises(BaselineError, match="not valid JSON"):
        audit.metric("iou", 0.5)


def test_invalid_metric_calls():
    audit = AuditRecorder("t")
    audit.metric("a", 1.0)
    with pytest.raises(InvalidInputError, match="already recorded"):
        audit.metric("a", 2.0)
    with pytest.raises(InvalidInputError, match="non-empty string"):
        audit.metric("", 2.0)
    with pytest.raises(InvalidInputError, match="must be a number"):
        audit.metric("b", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="direction must be"):
        audit.metric("c", 1.0, direction="up")
    with pytest.raises(InvalidInputError, match="tolerance must be"):
        AuditRecorder("t", tolerance=-1)


def test_attach_and_overlay_save_pngs(tmp_path):
    audit = AuditRecorder("t", report_dir=tmp_path)
    image, heat = torch.rand(3, 8, 8), torch.rand(8, 8)
    picture = audit.overlay("grad cam/0", image, heat, box=(1, 1, 6, 6))
    assert np.array_equal(picture, overlay(image, heat, box=(1, 1, 6, 6)))
    (att,) = audit.attachments
    assert att.path == str(tmp_path / "grad_cam_0.png")
    assert np.array_equal(iio.imread(att.path), picture)
    again = audit.attach("from file", att.path)
    assert np.array_equal(iio.imread(str(again.path)), picture)
