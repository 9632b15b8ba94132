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


def _maps(x, method="gradcam"):
    from modelaudit.explainers.explanation import Explanation

    return Explanation(torch.rand(len(x), 4, 4), method=method, layer="0", targets=None, inputs=x)


def test_per_sample_values_are_paired_with_the_stored_ones():
    base = Baseline(path="gate.json")
    stored = np.linspace(0.5, 0.7, 32)
    base.set("t::mass", float(stored.mean()), direction="higher", tolerance=0.05, samples=stored)
    audit = AuditRecorder("t", baseline=base)
    noise = np.random.default_rng(0).normal(0, 0.01, 32)
    assert audit.metric("mass", torch.tensor(stored + noise)).passed  # a tensor of values
    with pytest.raises(AuditFailure) as info:
        audit.metric("mass2", list(stored - 0.1))  # a list; no entry: missing
    assert "no baseline entry" in str(info.value)
    audit2 = AuditRecorder("t", baseline=base)
    with pytest.raises(AuditFailure) as info:
        audit2.metric("mass", stored - 0.1)  # a numpy array, every sample 0.1 lower
    text = str(info.value)
    assert "mass: regressed: mean 0.5 vs baseline 0.6 on the same 32 samples" in text
    assert "95% CI -0.1 to -0.1; allowed: -0.03" in text
    c = audit2.comparisons[0]
    assert c.value == pytest.approx(0.5) and c.samples == pytest.approx(
        tuple(stored - 0.1), abs=1e-6
    )


def test_update_run_stores_samples_and_the_fingerprint(tmp_path):
    from modelaudit.fingerprints import fingerprint

    model, x = torch.nn.Conv2d(3, 2, 1), torch.rand(3, 3, 4, 4)
    audit = AuditRecorder(
        "t", baseline=Baseline(path=tmp_path / "b.json"), update=True, model=model
    )
    audit.metric("mass_in_box", torch.tensor([0.25, 0.5, 0.123456789]), maps=_maps(x))
    (c,) = audit.comparisons
    assert (c.status, c.samples) == ("updated", (0.25, 0.5, 0.123457))
    assert c.fingerprint == fingerprint(model, x, method="gradcam", layer="0")
    base = Baseline()
    base.apply(audit.comparisons)
    entry = base["t::mass_in_box"]
    assert entry.n == 3 and entry.fingerprint == c.fingerprint
    assert entry.value == pytest.approx((0.25 + 0.5 + 0.123456789) / 3)


def test_a_different_model_is_named_in_the_record_pass_or_fail():
    x = torch.rand(4, 3, 4, 4)
    torch.manual_seed(0)
    old_model, new_model = torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1)
    writer = AuditRecorder("t", baseline=Baseline(), update=True, model=old_model)
    writer.metric("mass", [0.6, 0.6, 0.6, 0.6], maps=_maps(x))
    base = Baseline(path="gate.json")
    base.apply(writer.comparisons)
    audit = AuditRecorder("t", baseline=base, model=new_model)
    record = audit.metric("mass", [0.6, 0.61, 0.6, 0.6], maps=_maps(x))
    c = audit.comparisons[0]
    assert record.passed and c.changed == ("model",)
    assert c.note.startswith("model weights differ from the baseline's (state_dict ")
    assert c.note.endswith("; method, layer and data match")
    assert c.note in record.reasons[0]
    same = AuditRecorder("t", baseline=base, model=old_model)
    same.metric("mass", [0.6] * 4, maps=_maps(x))
    assert same.comparisons[0].changed == () and same.comparisons[0].note == ""
    other = AuditRecorder("t", baseline=base, model=old_model)
    other.metric("mass", [0.6] * 4, maps=_maps(x, method="layercam"), fingerprint={"extra": "1"})
    assert other.comparisons[0].changed == ("method",)
    assert other.comparisons[0].fingerprint["extra"] == "1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"value": [0.5, math.nan]},
            "metric 'm': per-sample values must be finite, got nan at index 1",
        ),
        ({"value": torch.tensor([0.5, math.inf])}, "got inf at index 1"),
        ({"value": np.zeros((2, 3))}, "metric 'm': per-sample values must be 1-D"),
        ({"value": []}, "metric 'm': per-sample values are empty"),
        ({"value": [0.5, "a"]}, "metric 'm' must be a number or per-sample numbers"),
        ({"value": 0.5, "fingerprint": "v2"}, "fingerprint must be a dict of strings"),
        ({"value": 0.5, "fingerprint": {"data": 2}}, "fingerprint must map strings to strings"),
        ({"value": 0.5, "maps": torch.zeros(1, 4, 4)}, "maps= must be heat maps"),
    ],
)
def test_bad_values_fingerprints_and_maps_name_the_argument(kwargs, message):
    audit = AuditRecorder("t")
    with pytest.raises(InvalidInputError) as info:
        audit.metric("m", **kwargs)
    assert message in str(info.value)
    assert audit.comparisons == []
