"""The shipped audit suite (audits/): all pass on shapes-cnn; localization and background fail
on the shortcut model.

Each test runs ``python -m pytest audits/`` in a subprocess from the repository root, as
``make audit`` does (audits/pytest.ini supplies the model, the baseline and the report
folder), with the report written to a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import pytest

# Inline pytester runs unload the modules they imported; torchvision (through the zoo) must
# be loaded once, before them, as it registers torch operators that cannot be registered twice.
import modelaudit.zoo  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

LOCALIZATION = [
    "test_localization.py::test_attention_lies_on_the_object",
    "test_localization.py::test_hottest_pixel_lies_inside_the_box",
    "test_localization.py::test_no_attention_on_the_watermark",
]
BACKGROUND = ["test_background.py::test_the_background_alone_does_not_give_the_answer"]
OTHER_AUDITS = [
    "test_faithfulness.py::test_deleting_hot_pixels_destroys_the_prediction",
    "test_faithfulness.py::test_inserting_hot_pixels_restores_the_prediction",
    "test_gradients.py::test_hook_gradients_match_autograd",
    "test_gradients.py::test_the_models_own_hooks_leave_gradients_alone",
    "test_gradients.py::test_recording_hooks_leave_gradients_alone",
    "test_hooks.py::test_explaining_leaves_no_trace",
    "test_sanity.py::test_map_changes_when_weights_are_randomized",
    "test_shapes.py::test_feature_maps_follow_the_input_size",
    "test_stability.py::test_map_is_stable_under_small_noise",
]


def _audit(
    report: Path, *args: str, paths: tuple[str, ...] = ("audits",)
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    command = [
        sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider", "-q",
        f"--audit-report-dir={report}", *args,
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    records = report / "records.json"
    assert records.is_file(), proc.stdout[-4000:] + proc.stderr[-2000:]
    tests = json.loads(records.read_text())["tests"]
    return proc, {t["nodeid"]: t for t in tests}


@pytest.mark.slow
def test_every_audit_passes_on_shapes_cnn(tmp_path):
    proc, tests = _audit(tmp_path / "report")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert {n: t["outcome"] for n, t in tests.items()} == {
        n: "passed" for n in LOCALIZATION + BACKGROUND + OTHER_AUDITS
    }
    # The release gate is on: every recorded metric was compared with audits/baseline.json,
    # image by image (the baseline stores per-sample values), on the same fingerprint.
    metrics = [m for t in tests.values() for m in t["metrics"]]
    assert len(metrics) == 5
    assert all(m["status"] in ("ok", "improved") and m["baseline"] is not None for m in metrics)
    assert all(m["samples"] and not m["changed"] for m in metrics)
    record = tests[LOCALIZATION[0]]["records"][0]
    assert record["check"] == "calibrated_mass" and record["passed"] and record["chance"] == 0
    assert record["obtained"] >= 0.5 and record["details"]["null_p"] < 1e-6


@pytest.mark.slow
def test_localization_audits_fail_on_the_shortcut_model(tmp_path):
    report = tmp_path / "report"
    proc, tests = _audit(
        report,
        "--audit-model",
        "shapes-cnn-shortcut",
        paths=("audits/test_localization.py", "audits/test_background.py"),
    )
    assert proc.returncode == 1
    caught = LOCALIZATION + BACKGROUND
    assert {n: t["outcome"] for n, t in tests.items()} == {n: "failed" for n in caught}
    for nodeid in caught:
        assert f"FAILED audits/{nodeid}" in proc.stdout

    # Calibrated mass below zero (a uniform map scores 0): the maps avoid the object, and
    # the failure says where they go instead, untold where the watermarks are.
    box = tests[LOCALIZATION[0]]["records"][0]
    assert box["check"] == "calibrated_mass" and not box["passed"]
    assert box["obtained"] < 0 and len(box["failing"]) >= 48
    assert "Where the model looks instead" in proc.stdout and "in the corners" in proc.stdout
    assert box["overview"].startswith("94% of the maps' mass lies off the object")
    assert len(list(report.glob("tests/*/calibrated_mass-overview.png"))) == 1
    # Without a heat map: the object removed, the background still gives the answer.
    bg = tests[BACKGROUND[0]]["records"][0]
    assert bg["details"]["only_bg"] == 1.0 and bg["details"]["mixed_rand"] == 0.0
    # The map sits on the watermark: every image puts more than 0.15 of its mass there.
    mark = tests[LOCALIZATION[-1]]["records"][0]
    assert mark["direction"] == "lower" and mark["failing"] == list(range(64))
    assert min(mark["values"]) > 0.25

    # The 8 worst failing samples (the default cap) exist as PNGs, paths relative to the
    # report, and are embedded in the HTML report, which stays small.
    overlays = [report / p for p in mark["overlay_files"]]
    # worst first, the worst of each class (the record's classes) before the rest
    ranked = sorted(range(64), key=lambda i: -mark["values"][i])
    first_of: dict[int, int] = {}
    for i in ranked:
        first_of.setdefault(mark["classes"][i], i)
    lead = sorted(first_of.values(), key=ranked.index)
    worst = (lead + [i for i in ranked if i not in lead])[:8]
    assert len(lead) == 4  # the four shapes
    assert [int(p.stem.rsplit("-", 1)[1]) for p in overlays] == worst
    assert all(p.parent.parent == report / "tests" for p in overlays)
    assert iio.imread(overlays[0]).shape == (64, 64, 3)
    html = (report / "report.html").read_text()
    assert "test_no_attention_on_the_watermark" in html and "FAILED" in html
    assert html.count("data:image/png;base64") >= 3 * 2 * 8  # 8 tiles of each failing check
    assert len(html.encode()) < 2_000_000  # the budget for this run
    assert "overlays written to" in proc.stdout


def _readme_snippet() -> str:
    """The first python block of the README's walkthrough step "first attention assertion"."""
    text = (ROOT / "README.md").read_text()
    step = text.index("### 4. Write your first attention assertion")
    start = text.index("```python\n", step) + len("```python\n")
    return text[start : text.index("```", start)]


def test_readme_first_assertion_passes_then_catches_the_shortcut(pytester):
    for name in ("conftest.py", "pytest.ini"):
        pytester.path.joinpath(name).write_text((ROOT / "audits" / name).read_text())
    pytester.makepyfile(test_my_first_audit=_readme_snippet())
    args = ("-p", "no:cacheprovider", "--audit-report-dir", "none")

    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)
    cheat = pytester.runpytest_inprocess(*args, "--audit-model", "shapes-cnn-shortcut")
    cheat.assert_outcomes(failed=1)
    cheat.stdout.fnmatch_lines(["*mass_in_mask >= 0.3 must hold for the mean over 16 samples*"])
