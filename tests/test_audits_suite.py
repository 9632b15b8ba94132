"""The shipped audit suite (audits/): all pass on shapes-cnn, localization fails on the shortcut.

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
    "test_localization.py::test_attention_lies_inside_the_box[gradcam]",
    "test_localization.py::test_attention_lies_inside_the_box[gradcam++]",
    "test_localization.py::test_attention_lies_inside_the_box[layercam]",
    "test_localization.py::test_hottest_pixel_lies_inside_the_box",
    "test_localization.py::test_no_attention_on_the_watermark",
]
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
        n: "passed" for n in LOCALIZATION + OTHER_AUDITS
    }
    # The release gate is on: every recorded metric was compared with audits/baseline.json.
    metrics = [m for t in tests.values() for m in t["metrics"]]
    assert len(metrics) == 7
    assert all(m["status"] in ("ok", "improved") and m["baseline"] is not None for m in metrics)
    gradcam = tests[LOCALIZATION[0]]
    record = gradcam["records"][0]
    assert record["check"] == "mass_in_box" and record["passed"]
    assert record["obtained"] >= 0.5 and record["chance"] < 0.2


@pytest.mark.slow
def test_localization_audits_fail_on_the_shortcut_model(tmp_path):
    report = tmp_path / "report"
    proc, tests = _audit(
        report, "--audit-model", "shapes-cnn-shortcut", paths=("audits/test_localization.py",)
    )
    assert proc.returncode == 1
    assert {n: t["outcome"] for n, t in tests.items()} == {n: "failed" for n in LOCALIZATION}
    for nodeid in LOCALIZATION:
        assert f"FAILED audits/{nodeid}" in proc.stdout

    # Mass in the object's box is near zero (chance: ~0.15): every sample is listed.
    box = tests[LOCALIZATION[0]]["records"][0]
    assert box["check"] == "mass_in_box" and not box["passed"]
    assert box["obtained"] < 0.15 and len(box["failing"]) >= 48
    # The map sits on the watermark: every image puts more than 0.15 of its mass there.
    mark = tests[LOCALIZATION[-1]]["records"][0]
    assert mark["direction"] == "lower" and mark["failing"] == list(range(64))
    assert min(mark["values"]) > 0.25

    # Overlays of the failing samples exist as PNGs and are embedded in the HTML report.
    overlays = [Path(p) for p in mark["overlay_files"]]
    assert len(overlays) == 64 and all(p.parent.parent == report / "tests" for p in overlays)
    assert iio.imread(overlays[0]).shape == (64, 64, 3)
    html = (report / "report.html").read_text()
    assert "test_no_attention_on_the_watermark" in html and "FAILED" in html
    assert html.count("data:image/png;base64") >= 5 * 16
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
