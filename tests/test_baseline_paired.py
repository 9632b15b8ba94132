"""The paired release gate: per-sample values in the baseline, a seeded paired bootstrap."""

import json
import math

import numpy as np
import pytest

from modelaudit.baseline import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Baseline,
    BaselineEntry,
    Comparison,
    compare_to_entry,
    paired_bootstrap,
    round_samples,
)
from modelaudit.checks.baseline import assert_within_baseline
from modelaudit.errors import AuditFailure, BaselineError, InvalidInputError


def _entry(samples, *, tol=0.05, direction="higher", fingerprint=None):
    kept = round_samples(samples)
    return BaselineEntry(float(np.mean(samples)), direction, tol, kept, fingerprint)


def _compare(current, entry, **kw):
    return compare_to_entry(
        "t::m", float(np.mean(current)), entry, samples=list(current), source="b.json", **kw
    )


def _reference_ci(diffs, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED):
    """The same percentile bootstrap, written out in one go with numpy."""
    diffs = np.asarray(diffs, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_a_real_drop_on_every_sample_fails_with_the_mean_delta_and_the_ci():
    base = np.linspace(0.5, 0.7, 64)
    c = _compare(base - 0.1, _entry(base))
    assert c.status == "regressed" and not c.passed
    # every gain is -0.1: the interval collapses onto it
    assert c.ci == pytest.approx((-0.1, -0.1), abs=1e-6)
    assert c.reason() == (
        "regressed: mean 0.5 vs baseline 0.6 on the same 64 samples (t::m in b.json), "
        "delta -0.1 (95% CI -0.1 to -0.1; allowed: -0.03)"
    )
    with pytest.raises(AuditFailure, match=r"95% CI -0\.1 to -0\.1; allowed: -0\.03"):
        assert_within_baseline([c])


def test_the_same_drop_is_an_improvement_when_lower_is_better():
    base = np.linspace(0.5, 0.7, 64)
    entry = _entry(base, direction="lower")
    assert _compare(base - 0.1, entry, direction="lower").status == "improved"
    assert _compare(base + 0.1, entry, direction="lower").status == "regressed"
    assert _compare(base, entry, direction="lower").status == "ok"


def test_rerun_noise_whose_mean_exceeds_the_tolerance_passes():
    rng = np.random.default_rng(4)  # a draw whose mean drop happens to be large
    base = rng.uniform(0.4, 0.8, 16)
    current = base + rng.normal(0.0, 0.05, 16)  # zero-mean noise, sd 0.05
    entry = _entry(base, tol=0.02)
    # the precondition: comparing the means alone calls this a regression
    means_only = dataclass_without_samples(entry)
    assert compare_to_entry("t::m", float(current.mean()), means_only).status == "regressed"
    c = _compare(current, entry)
    assert c.delta < -c.allowed  # practically large ...
    assert c.ci[0] < 0 < c.ci[1]  # ... but not significant
    assert c.status == "ok" and c.passed


def test_noise_rarely_fails_the_paired_gate_and_often_the_mean_gate():
    paired = means = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        base = rng.uniform(0.4, 0.8, 16)
        current = base + rng.normal(0.0, 0.05, 16)
        entry = _entry(base, tol=0.02)
        means += (
            compare_to_entry("t::m", current.mean(), dataclass_without_samples(entry)).status
            == "regressed"
        )
        paired += _compare(current, entry).status == "regressed"
    assert means >= 10 and paired <= means // 3


def test_a_one_sample_outlier_does_not_fail():
    base = np.full(64, 0.6)
    current = base.copy()
    current[17] = 0.0  # one sample collapses: the mean drops by 0.6 / 64 ~ 0.0094
    entry = _entry(base, tol=0.01)  # allowed: 0.006
    assert compare_to_entry("t::m", current.mean(), dataclass_without_samples(entry)).status == (
        "regressed"
    )
    c = _compare(current, entry)
    assert c.delta < -c.allowed and c.ci[1] == 0.0  # resamples without it have mean 0
    assert c.status == "ok"


def test_the_ci_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(7)
    for n in (5, 64, 1500):  # 1500: drawn in several blocks inside paired_bootstrap
        diffs = rng.normal(-0.01, 0.05, n)
        assert paired_bootstrap(diffs) == pytest.approx(_reference_ci(diffs), abs=1e-12)
    base = rng.uniform(0.3, 0.9, 40)
    current = base + rng.normal(-0.02, 0.05, 40)
    c = _compare(current, _entry(base))
    diffs = np.array(round_samples(current)) - np.array(round_samples(base))
    assert c.ci == pytest.approx(_reference_ci(diffs), abs=1e-12)


def test_the_bootstrap_is_reproducible_and_rejects_bad_input():
    diffs = [0.1, -0.2, 0.05, 0.0, 0.3]
    assert paired_bootstrap(diffs) == paired_bootstrap(diffs)
    assert paired_bootstrap([0.25] * 7) == (0.25, 0.25)  # all gains equal: no spread
    assert paired_bootstrap([0.4]) == (0.4, 0.4)
    for bad in ([], [0.1, math.nan]):
        with pytest.raises(InvalidInputError, match="at least one difference, all finite"):
            paired_bootstrap(bad)
    with pytest.raises(InvalidInputError, match="resamples"):
        paired_bootstrap(diffs, resamples=0)
    with pytest.raises(InvalidInputError, match="confidence"):
        paired_bootstrap(diffs, confidence=1.0)


def test_a_different_number_of_samples_compares_the_means_and_says_why():
    entry = _entry(np.full(64, 0.6))
    c = _compare(np.full(32, 0.5), entry)
    assert c.status == "regressed" and c.ci is None
    assert c.note == "the baseline has 64 samples, this run 32: compared the means only"
    assert c.reason().endswith("allowed: -0.03); " + c.note)
    plain = compare_to_entry("t::m", 0.6, entry)
    assert plain.status == "ok" and "this run one value: compared the means only" in plain.note
    old = compare_to_entry("t::m", 0.6, BaselineEntry(0.6, "higher", 0.05), samples=[0.6] * 4)
    assert old.status == "ok" and old.note.startswith("the baseline stores no per-sample values")
    assert compare_to_entry("t::m", 0.6, BaselineEntry(0.6, "higher", 0.05)).note == ""


def test_samples_round_trip_through_the_file_rounded_and_compact(tmp_path):
    base = Baseline(path=tmp_path / "b.json")
    base.set(
        "t.py::a[x, y]::iou",
        0.5,
        direction="higher",
        tolerance=0.05,
        samples=[1 / 3, 2 / 3, 0.5],
        fingerprint={"model": "3f2a9c0d5e6b7a81", "torch": "2.4.1"},
    )
    text = base.save().read_text()
    assert '"samples": [0.333333, 0.666667, 0.5],' in text  # one line, 6 digits
    doc = json.loads(text)["metrics"]["t.py::a[x, y]::iou"]
    assert doc == {
        "value": 0.5,
        "direction": "higher",
        "tolerance": 0.05,
        "samples": [0.333333, 0.666667, 0.5],
        "n": 3,
        "fingerprint": {"model": "3f2a9c0d5e6b7a81", "torch": "2.4.1"},
    }
    again = Baseline.load(tmp_path / "b.json")
    assert again.entries == base.entries and again["t.py::a[x, y]::iou"].n == 3


def test_update_stores_samples_and_fingerprint(tmp_path):
    c = compare_to_entry("t::m", 0.5, None, samples=[0.25, 0.75], fingerprint={"model": "ab"})
    base = Baseline()
    assert base.apply([c]) == 1
    assert base["t::m"] == BaselineEntry(0.5, "higher", 0.05, (0.25, 0.75), {"model": "ab"})


OLD_FILE = {  # a baseline as modelaudit 0.1.0 wrote it: one mean per metric
    "version": 1,
    "metrics": {
        "test_localization.py::test_attention_lies_inside_the_box[gradcam]::mass_in_box": {
            "value": 0.6197, "direction": "higher", "tolerance": 0.05,
        },
        "test_stability.py::test_map_is_stable_under_small_noise::mean_map_change_noise": {
            "value": 0.0185, "direction": "lower", "tolerance": 0.5,
        },
    },
}  # fmt: skip


def test_old_files_without_samples_keep_loading_and_comparing(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps(OLD_FILE))
    base = Baseline.load(tmp_path / "old.json", missing_ok=False)
    assert len(base) == 2
    assert all(e.samples is None and e.fingerprint is None for e in base.entries.values())
    key, entry = next(iter(base.entries.items()))
    same = base.compare(key, entry.value, direction=entry.direction)
    assert same.status == "ok" and same.note == "" and same.ci is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"samples": [0.1, 0.2]}, "'n' must be the number of samples (2), got None"),
        ({"samples": [0.1, 0.2], "n": 3}, "'n' must be the number of samples (2), got 3"),
        ({"n": 2}, "'samples' must be a non-empty array of numbers"),
        ({"samples": [], "n": 0}, "'samples' must be a non-empty array of numbers"),
        ({"samples": [0.1, "x"], "n": 2}, "'samples' must hold finite numbers, got 'x' at index 1"),
        ({"fingerprint": {"model": 1}}, "'fingerprint' must map strings to strings"),
        ({"fingerprint": ["a"]}, "'fingerprint' must be a dict of strings"),
        ({"extra": 1}, "unknown ['extra'] keys"),
    ],
)
def test_bad_sample_and_fingerprint_fields_are_clear_errors(tmp_path, fields, message):
    raw = {"value": 0.5, "direction": "higher", "tolerance": 0.05, **fields}
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"version": 1, "metrics": {"t::m": raw}}))
    with pytest.raises(BaselineError) as info:
        Baseline.load(path)
    assert message in str(info.value) and "metric 't::m'" in str(info.value)


def test_a_different_fingerprint_is_compared_and_named():
    old = {"model": "3f2a9c0d5e6b7a81", "method": "gradcam", "layer": "l4", "data": "aa"}
    new = dict(old, model="9b1c55e0ffff0000")
    entry = _entry([0.6] * 8, fingerprint=old)
    c = _compare([0.6] * 8, entry, fingerprint=new)
    assert c.status == "ok" and c.changed == ("model",)
    assert c.note == (
        "model weights differ from the baseline's (state_dict 3f2a… → 9b1c…); "
        "method, layer and data match"
    )
    assert c.reason().endswith(c.note)  # shown in the pass record too
    drop = _compare([0.5] * 8, entry, fingerprint=new)
    assert drop.status == "regressed" and drop.reason().endswith("; " + c.note)
    assert _compare([0.6] * 8, entry, fingerprint=old).note == ""  # same: nothing said
    assert _compare([0.6] * 8, entry).changed == ()  # no fingerprint now: nothing compared
    back = Comparison.from_dict(json.loads(json.dumps(drop.to_dict())))
    assert back == drop


def dataclass_without_samples(entry):
    return BaselineEntry(entry.value, entry.direction, entry.tolerance)
