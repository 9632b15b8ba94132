"""The ``audit`` fixture's release gate end to end: per-sample values and the model's
fingerprint stored by ``--audit-update-baseline``, a new model named in the summary, and no
baseline written by an interrupted update run."""

import json

import pytest

CONFTEST = """
from pathlib import Path

import pytest
import torch

@pytest.fixture(scope="session")
def audit_model():
    torch.manual_seed(int(Path(__file__).with_name("seed.txt").read_text()))
    return torch.nn.Linear(2, 1)
"""

GATE_TEST = """
import os
from pathlib import Path

def test_gate(audit, audit_model):
    drop = float(Path(__file__).with_name("drop.txt").read_text())
    audit.metric("mass_in_box", [0.5 - drop, 0.6 - drop, 0.7 - drop, 0.6 - drop])
    if os.environ.get("GATE_INTERRUPT"):
        raise KeyboardInterrupt

def test_without_model(audit):
    audit.metric("plain", [1.0, 2.0])
"""


def test_update_stores_samples_and_model_and_a_new_model_is_named(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate=GATE_TEST)
    (pytester.path / "seed.txt").write_text("0")
    (pytester.path / "drop.txt").write_text("0")
    baseline = pytester.path / "gate.json"

    def run(*args):
        return pytester.runpytest_inprocess(
            "--audit-baseline=gate.json", "--audit-report-dir=none", *args
        )

    run("--audit-update-baseline").assert_outcomes(passed=2)
    metrics = json.loads(baseline.read_text())["metrics"]
    entry = metrics["test_gate.py::test_gate::mass_in_box"]
    assert entry["samples"] == [0.5, 0.6, 0.7, 0.6] and entry["n"] == 4
    assert entry["value"] == pytest.approx(0.6)
    assert len(entry["fingerprint"]["model"]) == 16 and "torch" in entry["fingerprint"]
    # the model is given to the recorder only when the test asks for audit_model
    assert "fingerprint" not in metrics["test_gate.py::test_without_model::plain"]
    # a retrained model: compared all the same, and the summary says so
    (pytester.path / "seed.txt").write_text("1")
    result = run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["baseline comparisons against a different model: 1 metric (see report)"]
    )
    (pytester.path / "drop.txt").write_text("0.1")
    result = run()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*mass_in_box: regressed: mean 0.5 vs baseline 0.6 on the same 4 samples *, "
            "delta -0.1 (95% CI -0.1 to -0.1; allowed: -0.03); model weights differ from the "
            "baseline's (state_dict *…)"
        ]
    )
    before = baseline.read_text()
    # an update run interrupted by Ctrl-C writes nothing (the first test had finished)
    monkeypatch.setenv("GATE_INTERRUPT", "1")
    reprec = pytester.inline_run(
        "--audit-baseline=gate.json",
        "--audit-report-dir=none",
        "--audit-update-baseline",
        "test_gate.py::test_without_model",
        "test_gate.py::test_gate",
        no_reraise_ctrlc=True,
    )
    assert reprec.ret == pytest.ExitCode.INTERRUPTED
    assert baseline.read_text() == before
    # and so does an update run with a failing test
    monkeypatch.delenv("GATE_INTERRUPT")
    (pytester.path / "drop.txt").write_text("nan")  # a NaN value: the test fails
    result = run("--audit-update-baseline")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*baseline *gate.json NOT updated: 1 test(s) failed*"])
    assert baseline.read_text() == before
    (pytester.path / "drop.txt").write_text("0.1")
    run("--audit-update-baseline").assert_outcomes(passed=2)  # a clean update run writes
    assert json.loads(baseline.read_text())["metrics"]["test_gate.py::test_gate::mass_in_box"][
        "samples"
    ] == [0.4, 0.5, 0.6, 0.5]
