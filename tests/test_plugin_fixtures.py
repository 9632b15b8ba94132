"""The plugin's fixtures through pytester: model options, hook checks, hypothesis wiring.

How a spec becomes a model (and every loading error) is tested on the library function in
tests/test_loading.py; here each option path runs once through a real pytest session.
"""

import os

import hypothesis  # noqa: F401  (imported once here, not again inside every in-process run)
import pytest
import torch
from hypothesis import settings
from hypothesis.internal.entropy import RANDOMS_TO_MANAGE
from torch import nn

from modelaudit import _hypothesis
from modelaudit import zoo as _zoo  # noqa: F401  (torchvision imported once, outside inner runs)

FACTORY = """
import torch
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).train()
"""

CHECK_MODEL = """
import torch

def test_model(audit_model, audit_device):
    assert type(audit_model).__name__ == "{cls}"
    assert not any(m.training for m in audit_model.modules())  # eval mode everywhere
    assert audit_device == torch.device("cpu")
    assert all(p.device == audit_device for p in audit_model.parameters())
    {extra}
"""


def _model_project(pytester, extra="pass", cls="Sequential"):
    pytester.makepyfile(mymodels=FACTORY)
    pytester.syspathinsert()
    pytester.makepyfile(test_model=CHECK_MODEL.format(extra=extra, cls=cls))


def _tiny():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())


def test_model_from_an_importable_factory(pytester):
    _model_project(pytester)
    pytester.runpytest_inprocess(
        "--audit-model=mymodels:tiny", "--audit-report-dir=none"
    ).assert_outcomes(passed=1)


def test_model_from_the_ini_file(pytester):
    _model_project(pytester)
    pytester.makeini("[pytest]\naudit_model = mymodels:tiny\naudit_device = cpu\n")
    pytester.runpytest_inprocess("--audit-report-dir=none").assert_outcomes(passed=1)


def test_model_from_a_weights_file(pytester):
    _model_project(pytester, extra="assert (audit_model[0].weight == 0.25).all()")
    state = _tiny().state_dict()
    state["0.weight"].fill_(0.25)
    torch.save(state, pytester.path / "weights.pt")
    result = pytester.runpytest_inprocess(
        "--audit-model=weights.pt", "--audit-arch=mymodels:tiny", "--audit-report-dir=none"
    )
    result.assert_outcomes(passed=1)


def test_model_from_the_zoo(pytester):
    _model_project(pytester, cls="MobileNetV3")
    result = pytester.runpytest_inprocess(
        "--audit-model=mobilenet_v3_small", "--audit-report-dir=none"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["modelaudit: model=mobilenet_v3_small, device=cpu, report=None"])


@pytest.mark.parametrize(
    ("args", "setup", "message"),
    [
        (
            [],
            None,
            "*no model under audit: pass --audit-model=NAME*override the audit_model fixture*",
        ),
        (
            ["--audit-model=weights.pt"],
            "weights",
            "*--audit-model=weights.pt: *weights.pt holds weights only; *--audit-arch=NAME*",
        ),
    ],
)
def test_model_errors_say_what_to_do(pytester, args, setup, message):
    _model_project(pytester)
    if setup == "weights":
        torch.save(_tiny().state_dict(), pytester.path / "weights.pt")
    # -rN: no short summary, whose line repeats the start of the message
    result = pytester.runpytest_inprocess(*args, "--audit-report-dir=none", "-rN")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    # the message once, without chained copies ("During handling of the above exception")
    assert result.stdout.str().count(message.strip("*").split("*")[-1]) == 1
    assert "During handling" not in result.stdout.str()


HOOK_TESTS = """
import torch
from torch import nn

NET = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
OWN = NET[1].register_forward_hook(lambda m, i, o: None)  # the model's own hook is allowed

def test_raises_inside_capture(audit_capture):
    with audit_capture(NET, "0") as rec:
        NET(torch.zeros(1, 1, 5, 5))
        raise RuntimeError("failure inside the capture block")

def test_leaks_a_hook(audit_capture):
    audit_capture.watch(NET)
    NET[0].register_forward_hook(lambda m, i, o: None)

def test_clean_use(audit_capture):
    with audit_capture(NET, "0") as rec:
        NET(torch.zeros(1, 1, 5, 5))

def test_zz_only_the_own_hook_is_left():
    counts = [len(getattr(m, attr)) for m in NET.modules()
              for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                           "_backward_pre_hooks")]
    assert sum(counts) == 1 and list(NET[1]._forward_hooks) == [OWN.id]
"""


def test_capture_fixture_fails_on_hooks_left_behind(pytester):
    pytester.makepyfile(test_hooks=HOOK_TESTS)
    result = pytester.runpytest_inprocess("--audit-report-dir=none")
    # test_leaks_a_hook passes its call phase, then errors at teardown
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_hook*",
            "audit_capture: 1 hook(s) left on the model: '0': forward x1 (*<lambda>). "
            "They have been removed now*",
            "*RuntimeError: failure inside the capture block",
        ]
    )
    assert "test_raises_inside_capture" not in "".join(
        line for line in result.stdout.lines if "ERROR at teardown" in line
    )


def test_audit_model_is_watched_by_the_capture_fixture(pytester):
    _model_project(pytester)
    pytester.makepyfile(
        test_leak="""
        def test_leak(audit_model, audit_capture):
            audit_model[0].register_forward_pre_hook(lambda m, a: None)

        def test_after(audit_model):
            assert not audit_model[0]._forward_pre_hooks
        """
    )
    result = pytester.runpytest_inprocess(
        "--audit-model=mymodels:tiny", "--audit-report-dir=none", "test_leak.py"
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*'0': forward_pre x1*"])


def test_ci_profile_is_loaded_when_CI_is_set(pytester, monkeypatch):
    previous = settings.get_current_profile_name()
    pytester.makepyfile(
        test_profile="""
        import os
        from hypothesis import settings

        def test_profile():
            wanted = os.environ["WANTED_PROFILE"]
            assert settings.get_current_profile_name() == wanted
            if wanted == "ci":
                assert settings().derandomize and settings().deadline is None
                assert settings().database is None
        """
    )
    try:
        for ci, chosen, wanted in (
            (None, "default", "default"),
            ("true", "default", "ci"),
            ("true", "mine", "mine"),
        ):
            settings.register_profile("mine", max_examples=3)
            settings.load_profile(chosen)  # "mine": as if a conftest had chosen a profile
            monkeypatch.setenv("WANTED_PROFILE", wanted)
            if ci is None:
                monkeypatch.delenv("CI", raising=False)
            else:
                monkeypatch.setenv("CI", ci)
            pytester.runpytest_inprocess("--audit-report-dir=none").assert_outcomes(passed=1)
    finally:
        settings.load_profile(previous)


def test_torch_rng_is_seeded_from_hypothesis(pytester):
    # forget any earlier registration, so only the inner session can have registered it
    for key, value in list(RANDOMS_TO_MANAGE.items()):
        if value is _hypothesis.TORCH_RANDOM:
            del RANDOMS_TO_MANAGE[key]
    pytester.makepyfile(
        test_seeded="""
        import torch
        from hypothesis import given, settings, strategies as st

        SEEN = []

        @settings(max_examples=5, database=None)
        @given(st.integers(0, 3))
        def test_draws(x):
            SEEN.append(torch.rand(3))

        def test_every_example_replays_the_same_stream():
            first = torch.rand(3, generator=torch.Generator().manual_seed(0))
            assert len(SEEN) >= 2 and all(torch.equal(s, first) for s in SEEN)
        """
    )
    state = torch.get_rng_state()
    try:
        pytester.runpytest_inprocess("--audit-report-dir=none").assert_outcomes(passed=2)
        assert any(v is _hypothesis.TORCH_RANDOM for v in RANDOMS_TO_MANAGE.values())
        assert torch.equal(torch.get_rng_state(), state)  # restored after each example
    finally:
        _hypothesis.register_torch_random()


USES_THE_MODEL = """
def test_one(audit_model, audit_device):
    pass

def test_two(audit_model):
    pass
"""


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--audit-model=bogus"],
            "",
            "ERROR: --audit-model=bogus / audit_model: 'bogus' is not a zoo model, an "
            "importable 'pkg.module:factory' or a .pt/.pth weights file: unknown model "
            "'bogus'; available models (closest first): *'shapes-cnn'*",
        ),
        (
            ["--audit-model=no_such_module:make"],
            "",
            "ERROR: --audit-model=no_such_module:make / audit_model: cannot import module "
            "'no_such_module' of model factory 'no_such_module:make': no module named "
            "'no_such_module' (is it installed, or its directory on sys.path?)",
        ),
        (
            ["--audit-model=missing.pt", "--audit-arch=mymodels:tiny"],
            "",
            "ERROR: --audit-model=missing.pt / audit_model: weights file *missing.pt does not "
            "exist",
        ),
        (
            ["--audit-model=weights.pt", "--audit-arch=shapes_cnn"],
            "",
            "ERROR: --audit-model=weights.pt / audit_model: 'shapes_cnn' is not a zoo model*",
        ),
        (
            ["--audit-device=tpu"],
            "",
            "ERROR: --audit-device / audit_device: 'tpu' is not a torch device: *. Use cpu, "
            "cuda, cuda:N, mps or auto.",
        ),
        (
            [],
            "[pytest]\naudit_device = gpu0\n",
            "ERROR: --audit-device / audit_device: 'gpu0' is not a torch device: *. Use cpu, "
            "cuda, cuda:N, mps or auto.",
        ),
        (
            ["--audit-device=cuda:1"],
            "",
            "ERROR: --audit-device / audit_device: device 'cuda:1' needs CUDA, but "
            "torch.cuda.is_available() is False; use cpu or auto",
        ),
    ],
)
def test_a_bad_model_or_device_is_one_usage_error_at_start_up(
    pytester, monkeypatch, args, ini, message
):
    """One message for the run (it was one per test, printed three times each)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _model_project(pytester)
    pytester.makepyfile(test_more=USES_THE_MODEL)
    (pytester.path / "weights.pt").write_bytes(b"not read at start-up")
    if ini:
        pytester.makeini(ini)
    result = pytester.runpytest_inprocess(
        "--audit-model=mymodels:tiny", *args, "--audit-report-dir=none"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    output = result.stdout.str() + result.stderr.str()
    option = message.split(":")[1].strip()  # "--audit-model=bogus / audit_model" ...
    assert output.count(option) == 1, output
    assert "test_one" not in output and "passed" not in output  # no test ran


def test_model_forms_are_listed_with_a_bad_model(pytester):
    result = pytester.runpytest_inprocess("--audit-model=nope", "--audit-report-dir=none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "Valid forms: a zoo name, 'pkg.module:factory' (called without arguments), or a "
            ".pt/.pth state_dict file (with --audit-arch=SPEC unless the file names its 'arch')."
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("user_setting", [None, "2"])
def test_xdist_workers_share_the_cores(pytester, monkeypatch, user_setting):
    pytester.makeconftest("import torch  # imported before the plugin configures the worker")
    pytester.makepyfile(
        test_threads="""
        import os
        import torch

        def test_threads():
            assert torch.get_num_threads() == int(os.environ["WANTED_THREADS"])
        """
    )
    if user_setting is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        wanted = max(1, (cores or os.cpu_count() or 1) // 2)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", user_setting)
        wanted = min(2, os.cpu_count() or 1)  # torch caps threads at the cores
    monkeypatch.setenv("WANTED_THREADS", str(wanted))
    result = pytester.runpytest_subprocess("-n", "2", "--audit-report-dir=none")
    result.assert_outcomes(passed=1)
