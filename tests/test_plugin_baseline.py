"""The plugin's release-gate workflow, options and JUnit export, run through pytester."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import hypothesis  # noqa: F401  (imported once here, not again inside every in-process run)
import pytest

GATE_TEST = """
from pathlib import Path

def test_gate(audit):
    value = float(Path(__file__).with_name("value.txt").read_text())
    audit.metric("mass_in_box", value)
    audit.metric("deletion_auc", round(1 - value, 6), direction="lower")
"""


def _gate(pytester):
    pytester.makepyfile(test_gate=GATE_TEST)
    value = pytester.path / "value.txt"
    value.write_text("0.7")

    def run(*args):
        return pytester.runpytest_inprocess(
            "--audit-baseline=gate.json", "--audit-report-dir=none", *args
        )

    return value, pytester.path / "gate.json", run


def _stored(path):
    return {k: v["value"] for k, v in json.loads(path.read_text())["metrics"].items()}


def test_fresh_baseline_workflow(pytester):
    value, baseline, run = _gate(pytester)
    # 1. no baseline yet: the test fails and says how to create one
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AuditFailure: assert_within_baseline: every metric must stay within its "
            "tolerance of the baseline; 1 of 1 metric fail.",
            "*failing metrics:",
            "*mass_in_box: no baseline entry (test_gate.py::test_gate::mass_in_box in "
            "*gate.json (file does not exist yet)); obtained 0.7",
            "*Create the baseline: re-run pytest with --audit-update-baseline*",
        ]
    )
    assert not baseline.exists()
    # 2. update: passes, and the file holds both metrics with the documented schema
    result = run("--audit-update-baseline")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["modelaudit: baseline updated: *gate.json (2 metrics written)"])
    doc = json.loads(baseline.read_text())
    assert doc == {
        "version": 1,
        "metrics": {
            "test_gate.py::test_gate::deletion_auc": {
                "value": 0.3,
                "direction": "lower",
                "tolerance": 0.05,
            },
            "test_gate.py::test_gate::mass_in_box": {
                "value": 0.7,
                "direction": "higher",
                "tolerance": 0.05,
            },
        },
    }
    # 3. same model: passes; the summary table shows value, baseline and delta
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "gate*value is*value*bound or baseline*chance*verdict",
            "test_gate.py::test_gate",
            "  mass_in_box vs baseline*value*0.7*baseline 0.7, >= 0.665*pass (ok)",
        ]
    )
    # 4. a regressed model fails with obtained, baseline and delta; the file is untouched
    value.write_text("0.5")
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AuditFailure: assert_within_baseline: every metric must stay within its "
            "tolerance of the baseline; 1 of 1 metric fail.",
            "*mass_in_box: regressed: obtained 0.5, baseline 0.7 "
            "(test_gate.py::test_gate::mass_in_box in *gate.json), "
            "delta -0.2 (-28.6%; allowed: -0.035)",
            "*If the change is intended, update the baseline: *--audit-update-baseline*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["  mass_in_box vs baseline*0.5*baseline 0.7, >= 0.665*FAIL (regressed)"]
    )
    assert _stored(baseline)["test_gate.py::test_gate::mass_in_box"] == 0.7
    # 5. the change is intended: update again, then it passes
    run("--audit-update-baseline").assert_outcomes(passed=1)
    assert _stored(baseline) == {
        "test_gate.py::test_gate::deletion_auc": 0.5,
        "test_gate.py::test_gate::mass_in_box": 0.5,
    }
    run().assert_outcomes(passed=1)


def test_update_keeps_entries_of_tests_not_run_and_hand_tuned_tolerances(pytester):
    _, baseline, run = _gate(pytester)
    baseline.write_text(
        json.dumps(
            {
                "version": 1,
                "metrics": {
                    "other.py::test_x::iou": {
                        "value": 0.9,
                        "direction": "higher",
                        "tolerance": 0.1,
                    },
                    "test_gate.py::test_gate::mass_in_box": {
                        "value": 0.1,
                        "direction": "higher",
                        "tolerance": 0.3,
                    },
                },
            }
        )
    )
    run("--audit-update-baseline").assert_outcomes(passed=1)
    doc = json.loads(baseline.read_text())["metrics"]
    assert doc["other.py::test_x::iou"]["value"] == 0.9
    assert doc["test_gate.py::test_gate::mass_in_box"] == {
        "value": 0.7,
        "direction": "higher",
        "tolerance": 0.3,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": 1, "metrics": {"x": ', "is not valid JSON (line 1, column 33*"),
        (
            '{"version": 1, "metrics": {"test_gate.py::test_gate::mass_in_box": '
            '{"value": 0.7, "direction": "higher"}}}',
            "is invalid: metric 'test_gate.py::test_gate::mass_in_box': missing *tolerance*",
        ),
    ],
)
def test_corrupt_baseline_is_a_clear_error_never_a_pass(pytester, content, message):
    _, baseline, run = _gate(pytester)
    baseline.write_text(content)
    for args in ((), ("--audit-update-baseline",)):
        result = run(*args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*BaselineError: baseline file *gate.json {message}"])
        assert baseline.read_text() == content  # never overwritten


def test_metrics_and_checks_reach_junit_xml(pytester):
    pytester.makepyfile(
        """
        from modelaudit.checks.record import decide

        def test_props(audit):
            audit.metric("iou", 0.625)
            decide("assert_pointing_game", "pointing_game", [1.0, 0.0], at_least=0.4,
                   aggregate="mean")
        """
    )
    pytester.runpytest_inprocess("--junitxml=out.xml", "--audit-report-dir=none").assert_outcomes(
        passed=1
    )
    case = ET.parse(pytester.path / "out.xml").getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {
        "audit.iou": "0.625",
        "audit.iou.status": "recorded",  # no baseline file configured: recorded, not gated
        "audit.check.pointing_game": "0.5",
        "audit.check.pointing_game.passed": "True",
    }


def test_ini_keys_resolve_relative_to_the_ini_file(pytester):
    pytester.makeini(
        """
        [pytest]
        audit_baseline = gates/b.json
        audit_tolerance = 0.2
        audit_report_dir = out/rep
        """
    )
    pytester.makepyfile(
        test_ini="def test_m(audit):\n    assert audit.tolerance == 0.2\n    audit.metric('m', 2.0)\n"
    )
    sub = pytester.mkdir("sub")
    sub.joinpath("conftest.py").write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)  # ini paths do not depend on where pytest is started
        result = pytester.runpytest_inprocess(str(pytester.path), "--audit-update-baseline")
    result.assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "gates" / "b.json").read_text())["metrics"]
    assert stored == {
        "test_ini.py::test_m::m": {"value": 2.0, "direction": "higher", "tolerance": 0.2}
    }
    assert (pytester.path / "out" / "rep" / "report.html").is_file()
    # the command line wins over the ini file
    (pytester.path / "out").rename(pytester.path / "old")
    result = pytester.runpytest_inprocess("--audit-report-dir=none", "--audit-tolerance=0.5")
    result.assert_outcomes(failed=1)  # asserts tolerance 0.2
    assert not (pytester.path / "out").exists()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--audit-update-baseline"], "", "*--audit-update-baseline needs a baseline file*"),
        (["--audit-tolerance=-1"], "", "*audit_tolerance must be a number >= 0*got '-1'*"),
        ([], "audit_tolerance = lots", "*audit_tolerance must be a number >= 0*got 'lots'*"),
        ([], "audit_report_max_samples = many", "*audit_report_max_samples must be a whole*"),
    ],
)
def test_bad_options_are_usage_errors(pytester, args, ini, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_markers_are_registered(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.audit
        @pytest.mark.audit_slow
        def test_marked():
            pass
        """
    )
    pytester.runpytest_inprocess(
        "--strict-markers", "-m", "audit and not audit_slow"
    ).assert_outcomes(deselected=1)
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.audit: *", "@pytest.mark.audit_slow: *"])
    help_text = pytester.runpytest_inprocess("--help").stdout.str()
    for option in (
        "--audit-model",
        "--audit-arch",
        "--audit-device",
        "--audit-report-dir",
        "--audit-baseline",
        "--audit-update-baseline",
        "--audit-tolerance",
    ):
        assert option in help_text


# Both runs meet here just before the plugin writes the baseline, so their updates overlap.
BARRIER_CONFTEST = """
import os, time
from pathlib import Path

import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    here = Path(os.environ["BARRIER_DIR"])
    (here / os.environ["BARRIER_NAME"]).touch()
    deadline = time.time() + 30
    while len(list(here.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.001)
"""

UPDATER_TEST = """
def test_{name}(audit):
    for i in range(5):
        audit.metric(f"m{{i}}", {value} + i)
"""


@pytest.mark.slow  # two pytest processes: several seconds each on a busy machine
def test_concurrent_update_runs_on_one_file_keep_both_sides(pytester):
    """`pytest test_a.py --audit-update-baseline & pytest test_b.py ...` on one baseline.

    Without the lock each run writes the file it read before the other's update: 5 of the
    10 entries are lost. (tests/test_baseline_concurrency.py repeats the race 20 times.)
    """
    pytester.makeconftest(BARRIER_CONFTEST)
    pytester.makepyfile(
        test_a=UPDATER_TEST.format(name="a", value=0.25),
        test_b=UPDATER_TEST.format(name="b", value=0.5),
    )
    baseline, barrier = pytester.path / "shared.json", pytester.mkdir("barrier")
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"test_{name}.py"),
                *(f"--audit-baseline={baseline}", "--audit-update-baseline"),
                "--audit-report-dir=none",
            ],
            cwd=pytester.path,
            env={**os.environ, "BARRIER_DIR": str(barrier), "BARRIER_NAME": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("(5 metrics written)" in out for out in outputs), outputs
    assert _stored(baseline) == {
        f"test_{n}.py::test_{n}::m{i}": v + i
        for n, v in (("a", 0.25), ("b", 0.5))
        for i in range(5)
    }
