"""pytest plugin: options, fixtures, markers, baselines and the report, wired to the library.

Loaded automatically through the ``pytest11`` entry point. It stays thin and lazy: torch
and the rest of modelaudit are imported only when a test uses an ``audit*`` fixture or
modelaudit itself, so a suite that never touches modelaudit pays nothing at collection.

Options (group "modelaudit"; each also an ini key with the same name in snake case):

``--audit-model SPEC``
    The model under audit, one of: a zoo name (``shapes-cnn``, resolved with
    ``modelaudit.zoo.load_model(name, device=...)``); an importable ``pkg.module:factory``
    (called without arguments; a module-level ``nn.Module`` instance works too); or a
    weights file ``*.pt`` / ``*.pth``. A weights file holds a ``state_dict`` (or a dict
    ``{"state_dict": ..., "arch": "<zoo name or pkg.module:factory>"}``) and is read with
    ``torch.load(..., weights_only=True)``, so it can never run code; the architecture
    comes from ``--audit-arch`` or the file's ``"arch"`` string. A pickled model object is
    not accepted (save ``model.state_dict()`` instead).
``--audit-arch SPEC``: architecture for a weights file (zoo name or factory).
``--audit-device DEV``: ``cpu`` (default), ``cuda``, ``cuda:1``, ``mps`` or ``auto``.
``--audit-report-dir DIR``: where the HTML report, the JSON export and overlay PNGs go
    (default ``audit-report/`` under the rootdir; ``none`` disables them).
``--audit-baseline FILE``: the baseline JSON (see :mod:`modelaudit.baseline`). Without
    one, metrics are recorded and reported but not gated.
``--audit-update-baseline``: write every metric recorded in this run into the baseline
    (atomically, once, by the xdist controller) instead of checking it.
``--audit-tolerance REL``: default relative tolerance of new baseline entries (0.05).

Ini-only: ``audit_report_max_samples`` (samples drawn per record, default 64) and
``audit_seed_torch`` (seed torch's global RNG from Hypothesis in ``@given`` tests, so
failing examples replay; default true). Relative paths given on the command line are
relative to the invocation directory, those from the ini file to the ini file's directory.

Fixtures: ``audit_device`` and ``audit_model`` (session scope; the model is in eval mode
on the device), ``audit_capture`` (a ``modelaudit.capture.capture`` that fails the test
if any hook is left on a watched model, removing it), and ``audit`` (an
:class:`~modelaudit.report.recorder.AuditRecorder`: metrics gated on the baseline,
exported to JUnit XML through ``record_property``, images attached to the report).

Markers: ``audit`` and ``audit_slow``. Under ``CI`` the Hypothesis ``ci`` profile is
loaded unless another profile was chosen.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelaudit.baseline import Baseline, Comparison
    from modelaudit.records import AuditRecord
    from modelaudit.report.entries import TestEntry
    from modelaudit.report.recorder import AuditRecorder

__all__ = ["load_model_spec", "register_torch_random"]

AUDIT_FIXTURES = frozenset({"audit", "audit_model", "audit_capture", "audit_device"})
AUDIT_MARKERS = ("audit", "audit_slow")
REPORT_HTML = "report.html"
REPORT_JSON = "records.json"
MAX_RECORDS_PER_TEST = 10
_SESSION = "modelaudit-session"
_WORKER_KEY = "modelaudit"
_WEIGHT_SUFFIXES = (".pt", ".pth")
_UPDATE_HINT = "re-run pytest with --audit-update-baseline (and commit the baseline file)"


# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelaudit", "modelaudit: audits of what a vision model looks at")
    group.addoption(
        "--audit-model",
        dest="audit_model",
        metavar="SPEC",
        default=None,
        help="model under audit: a zoo name, 'pkg.module:factory', or a .pt/.pth "
        "state_dict (weights_only=True; see --audit-arch). ini: audit_model",
    )
    group.addoption(
        "--audit-arch",
        dest="audit_arch",
        metavar="SPEC",
        default=None,
        help="architecture (zoo name or pkg.module:factory) to load a weights file into. "
        "ini: audit_arch",
    )
    group.addoption(
        "--audit-device",
        dest="audit_device",
        metavar="DEVICE",
        default=None,
        help="device for the model under audit: cpu (default), cuda, cuda:N, mps, auto. "
        "ini: audit_device",
    )
    group.addoption(
        "--audit-report-dir",
        dest="audit_report_dir",
        metavar="DIR",
        default=None,
        help="directory for report.html, records.json and overlay PNGs (default: "
        "audit-report/ under the rootdir; 'none' disables). ini: audit_report_dir",
    )
    group.addoption(
        "--audit-baseline",
        dest="audit_baseline",
        metavar="FILE",
        default=None,
        help="baseline JSON file that recorded metrics are checked against. ini: audit_baseline",
    )
    group.addoption(
        "--audit-update-baseline",
        dest="audit_update_baseline",
        action="store_true",
        default=False,
        help="write the metrics of this run into the baseline file instead of checking them",
    )
    group.addoption(
        "--audit-tolerance",
        dest="audit_tolerance",
        metavar="REL",
        default=None,
        help="default relative tolerance of new baseline entries (0.05). ini: audit_tolerance",
    )
    for name, text in (
        ("audit_model", "model under audit (see --audit-model)"),
        ("audit_arch", "architecture for a weights file (see --audit-arch)"),
        ("audit_device", "device for the model under audit (default cpu)"),
        ("audit_report_dir", "report directory (default audit-report; 'none' disables)"),
        ("audit_baseline", "baseline JSON file"),
        ("audit_tolerance", "default relative tolerance of new baseline entries"),
    ):
        parser.addini(name, text, default="")
    parser.addini(
        "audit_report_max_samples", "samples drawn per audit record in the report", default="64"
    )
    parser.addini(
        "audit_seed_torch",
        "seed torch's global RNG from Hypothesis inside @given tests",
        type="bool",
        default=True,
    )


@dataclass(frozen=True)
class AuditOptions:
    """The plugin's resolved configuration (command line over ini over defaults)."""

    model: str | None = None
    arch: str | None = None
    model_dir: Path = Path(".")
    device: str = "cpu"
    report_dir: Path | None = None
    baseline: Path | None = None
    update_baseline: bool = False
    tolerance: float = 0.05
    max_samples: int = 64
    seed_torch: bool = True

    @classmethod
    def from_config(cls, config: pytest.Config) -> AuditOptions:
        """Resolve options; raise ``pytest.UsageError`` for bad values."""
        cli_dir = Path(config.invocation_params.dir)
        ini_dir = config.inipath.parent if config.inipath else config.rootpath

        def pick(name: str) -> tuple[str | None, Path]:
            value = config.getoption(name, default=None)
            if value is not None:
                return str(value), cli_dir
            ini = str(config.getini(name) or "").strip()
            return (ini or None), ini_dir

        def path(name: str) -> Path | None:
            value, base = pick(name)
            return None if value is None else (base / Path(value).expanduser())

        model, model_dir = pick("audit_model")
        report_value, report_base = pick("audit_report_dir")
        if report_value is None:
            report_dir: Path | None = config.rootpath / "audit-report"
        elif report_value.strip().lower() in ("none", "off", "false", "0", ""):
            report_dir = None
        else:
            report_dir = report_base / Path(report_value).expanduser()
        baseline = path("audit_baseline")
        update = bool(config.getoption("audit_update_baseline", default=False))
        if update and baseline is None:
            raise pytest.UsageError(
                "--audit-update-baseline needs a baseline file: pass --audit-baseline=FILE "
                "or set audit_baseline in the ini file"
            )
        tolerance_text, _ = pick("audit_tolerance")
        tolerance = 0.05
        if tolerance_text is not None:
            try:
                tolerance = float(tolerance_text)
            except ValueError:
                tolerance = math.nan
            if not (math.isfinite(tolerance) and tolerance >= 0):
                raise pytest.UsageError(
                    f"--audit-tolerance / audit_tolerance must be a number >= 0 (a relative "
                    f"tolerance such as 0.05), got {tolerance_text!r}"
                )
        samples_text = str(config.getini("audit_report_max_samples")).strip() or "64"
        if not samples_text.isdigit():
            raise pytest.UsageError(
                f"audit_report_max_samples must be a whole number >= 0, got {samples_text!r}"
            )
        device, _ = pick("audit_device")
        return cls(
            model=model,
            arch=pick("audit_arch")[0],
            model_dir=model_dir,
            device=device or "cpu",
            report_dir=report_dir,
            baseline=baseline,
            update_baseline=update,
            tolerance=tolerance,
            max_samples=int(samples_text),
            seed_torch=bool(config.getini("audit_seed_torch")),
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "audit: an audit of what a model looks at (select with -m audit)"
    )
    config.addinivalue_line(
        "markers", "audit_slow: a slow model audit (deselect with -m 'not audit_slow')"
    )
    _use_hypothesis_ci_profile(config)
    config.pluginmanager.register(_AuditSession(config, AuditOptions.from_config(config)), _SESSION)


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.pluginmanager.get_plugin(_SESSION)
    if not isinstance(session, _AuditSession):
        return []
    o = session.opts
    if o.model is None and o.baseline is None:
        return []
    parts = [f"model={o.model}", f"device={o.device}"]
    if o.baseline is not None:
        parts.append(f"baseline={o.baseline}{' (update)' if o.update_baseline else ''}")
    parts.append(f"report={o.report_dir}")
    return ["modelaudit: " + ", ".join(parts)]


def _use_hypothesis_ci_profile(config: pytest.Config) -> None:
    """Load Hypothesis' ``ci`` profile when ``CI`` is set and nobody chose another one.

    Hypothesis >= 6.131 ships a built-in ``ci`` profile (derandomized, no deadline, no
    example database, print_blob) and loads it itself when it detects CI; this makes the
    choice explicit, also for older versions (an equivalent profile is registered there).
    """
    if not os.environ.get("CI") or config.getoption("hypothesis_profile", default=None):
        return
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    current = getattr(settings, "get_current_profile_name", lambda: settings._current_profile)()
    if current not in (None, "default", "ci"):
        return  # a conftest chose its own profile: respect it
    try:
        settings.get_profile("ci")
    except InvalidArgument:  # hypothesis older than the built-in ci profile
        settings.register_profile(
            "ci", derandomize=True, deadline=None, database=None, print_blob=True
        )
    settings.load_profile("ci")


class _TorchGlobalRandom:
    """``random.Random``-like view of torch's global RNG, for ``hypothesis.register_random``."""

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(int(seed) % (2**63))

    def getstate(self) -> Any:
        import torch

        return torch.get_rng_state()

    def setstate(self, state: Any) -> None:
        import torch

        torch.set_rng_state(state)


_TORCH_RANDOM = _TorchGlobalRandom()


def register_torch_random() -> None:
    """Let Hypothesis seed (and restore) torch's global RNG in every ``@given`` example.

    Hypothesis then seeds torch like ``random`` and ``numpy.random``: inputs drawn with
    ``torch.rand`` inside a test replay exactly with the failing example. The plugin calls
    this when collected tests imported torch and hypothesis (ini ``audit_seed_torch``).
    Registering twice is harmless.

    Example:
        >>> register_torch_random()
    """
    from hypothesis import register_random

    register_random(_TORCH_RANDOM)


# --------------------------------------------------------------------------- model loading


def _import_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise pytest.UsageError(
            f"cannot import module {module_name!r} of model factory {spec!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise pytest.UsageError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    return obj


def _build(spec: str, device: Any) -> nn.Module:
    from torch import nn

    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", spec):
        obj = _import_object(spec)
        model = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
        if not isinstance(model, nn.Module):
            raise pytest.UsageError(
                f"model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model.to(device)
    from modelaudit.errors import InvalidInputError, ModelAuditError
    from modelaudit.zoo import load_model

    try:
        return load_model(spec, device=device)
    except InvalidInputError as exc:
        raise pytest.UsageError(
            f"{spec!r} is not a zoo model, an importable 'pkg.module:factory' or a .pt/.pth "
            f"weights file: {exc}"
        ) from exc
    except ModelAuditError as exc:
        raise pytest.UsageError(str(exc)) from exc


def load_model_spec(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build the model a ``--audit-model`` value names (see the module docstring).

    Args:
        spec: zoo name, ``pkg.module:factory``, or a ``.pt``/``.pth`` weights file.
        device: where to put the model.
        arch: architecture for a weights file (zoo name or factory); overrides the file's
            own ``"arch"`` entry.
        base_dir: directory that a relative weights path is relative to (default: cwd).

    Returns:
        The model, in eval mode, on ``device``.

    Raises:
        pytest.UsageError: with what was wrong and how to fix it.

    Example:
        >>> load_model_spec("torch.nn:Identity")
        Identity()
    """
    import torch

    dev = torch.device(device)
    path = Path(base_dir or ".") / Path(spec).expanduser()
    if spec.lower().endswith(_WEIGHT_SUFFIXES) or (path.is_file() and ":" not in spec):
        model = _from_weights(path, arch, dev)
    else:
        model = _build(spec, dev)
    return model.eval()


def _from_weights(path: Path, arch: str | None, device: torch.device) -> nn.Module:
    import pickle

    import torch

    if not path.is_file():
        raise pytest.UsageError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise pytest.UsageError(
            f"cannot load {path} with torch.load(weights_only=True): {str(exc).splitlines()[0]}"
            "\nA weights file must hold a state_dict (torch.save(model.state_dict(), path)), "
            "not a pickled model object."
        ) from exc
    state = payload
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        state = payload["state_dict"]
        arch = arch or (payload.get("arch") if isinstance(payload.get("arch"), str) else None)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise pytest.UsageError(
            f"{path} does not hold a state_dict (a dict of tensors), nor a dict with one under "
            "'state_dict'"
        )
    if arch is None:
        raise pytest.UsageError(
            f"{path} holds weights only; say which architecture to load them into with "
            "--audit-arch=NAME (a zoo name or pkg.module:factory), or save the file as "
            "{'arch': NAME, 'state_dict': ...}"
        )
    model = _build(arch, torch.device("cpu"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise pytest.UsageError(
            f"the weights in {path} do not fit architecture {arch!r}: {exc}"
        ) from exc
    return model.to(device)


def _resolve_device(spec: str) -> torch.device:
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise pytest.UsageError(f"--audit-device={spec!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--audit-device={spec} but torch.cuda.is_available() is False")
    return device


# --------------------------------------------------------------------------- hooks left behind

_MODULE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_MODULE_HOOK_EXTRAS = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)
_TENSOR_HOOK_DICTS = ("_backward_hooks", "_post_accumulate_grad_hooks")
HookId = tuple[str, str, str, int]


def _hook_ids(model: nn.Module) -> set[HookId]:
    ids: set[HookId] = set()
    for name, module in model.named_modules(remove_duplicate=False):
        for attr in _MODULE_HOOK_DICTS:
            ids.update(("module", name, attr, hid) for hid in getattr(module, attr, None) or {})
    for name, param in model.named_parameters(remove_duplicate=False):
        for attr in _TENSOR_HOOK_DICTS:
            ids.update(("param", name, attr, hid) for hid in getattr(param, attr, None) or {})
    return ids


def _remove_hooks(model: nn.Module, hooks: set[HookId]) -> None:
    modules = dict(model.named_modules(remove_duplicate=False))
    params = dict(model.named_parameters(remove_duplicate=False))
    for kind, name, attr, hid in hooks:
        owner: Any = modules.get(name) if kind == "module" else params.get(name)
        if owner is None:
            continue
        for table in (attr, *(_MODULE_HOOK_EXTRAS if kind == "module" else ())):
            hooks_dict = getattr(owner, table, None)
            if hooks_dict:
                hooks_dict.pop(hid, None)


class AuditCapture:
    """Value of the ``audit_capture`` fixture: ``modelaudit.capture.capture`` plus a hook check.

    Call it like ``capture``: ``with audit_capture(model, "layer4") as rec: ...``. Every
    model passed in (and ``audit_model`` when the test uses it) is watched: hooks added to
    it during the test and still present at teardown are removed and fail the test (checked
    with ``modelaudit.capture.assert_no_hooks_left`` against the hooks it had before, so a
    model's own hooks, e.g. from ``weight_norm``, are allowed).
    """

    def __init__(self) -> None:
        self._watched: dict[int, tuple[nn.Module, Any, set[HookId]]] = {}

    def watch(self, model: nn.Module) -> nn.Module:
        """Watch ``model`` for hooks left behind (its current hooks are allowed)."""
        from modelaudit.capture import hooks_by_module

        if id(model) not in self._watched:
            self._watched[id(model)] = (model, hooks_by_module(model), _hook_ids(model))
        return model

    def __call__(self, model: nn.Module, layers: Any, **kwargs: Any) -> Any:
        """Open ``modelaudit.capture.capture(model, layers, **kwargs)`` on a watched model."""
        from modelaudit.capture import capture

        self.watch(model)
        return capture(model, layers, **kwargs)

    def leftovers(self) -> list[str]:
        """Describe and remove hooks added to watched models since watching began."""
        from modelaudit.capture import assert_no_hooks_left
        from modelaudit.errors import HookError

        found = []
        for model, allowed, before in self._watched.values():
            try:
                assert_no_hooks_left(model, baseline=allowed)
            except HookError as exc:
                found.append(str(exc).split(". Remove them", 1)[0])
            _remove_hooks(model, _hook_ids(model) - before)
        return found


# --------------------------------------------------------------------------- fixtures


def _session(config: pytest.Config) -> _AuditSession:
    session = config.pluginmanager.get_plugin(_SESSION)
    if not isinstance(session, _AuditSession):  # pragma: no cover - configure always runs
        raise RuntimeError("the modelaudit plugin is not configured")
    return session


@pytest.fixture(scope="session")
def audit_device(pytestconfig: pytest.Config) -> torch.device:
    """The device chosen with ``--audit-device`` (default cpu)."""
    return _session(pytestconfig).device()


@pytest.fixture(scope="session")
def audit_model(pytestconfig: pytest.Config, audit_device: torch.device) -> nn.Module:
    """The model under audit (``--audit-model``), loaded once, in eval mode, on the device."""
    return _session(pytestconfig).model(audit_device)


@pytest.fixture
def audit_capture(request: pytest.FixtureRequest) -> Iterator[AuditCapture]:
    """``modelaudit.capture.capture`` that fails the test if it leaves hooks on the model."""
    fixture = AuditCapture()
    if "audit_model" in request.fixturenames:
        fixture.watch(request.getfixturevalue("audit_model"))
    yield fixture
    left = fixture.leftovers()
    if left:
        pytest.fail(
            f"audit_capture: {'; '.join(left)}. They have been removed now; remove every "
            "hook you register yourself (use `with audit_capture(model, layers):`, or call "
            "handle.remove() in a finally).",
            pytrace=False,
        )


@pytest.fixture
def audit(request: pytest.FixtureRequest, record_property: Any) -> AuditRecorder:
    """Record metrics (gated on the baseline), attach images and overlays to the report."""
    from modelaudit.report.recorder import AuditRecorder

    session = _session(request.config)
    recorder = AuditRecorder(
        request.node.nodeid,
        baseline=session.load_baseline if session.opts.baseline is not None else None,
        update=session.opts.update_baseline,
        tolerance=session.opts.tolerance,
        report_dir=session.test_dir(request.node),
        on_property=record_property,
        update_hint=_UPDATE_HINT,
    )
    session.state(request.node).recorder = recorder
    return recorder


# --------------------------------------------------------------------------- the session


@dataclass
class _TestState:
    outcome: str = "passed"
    duration: float = 0.0
    message: str = ""
    records: list[AuditRecord] = field(default_factory=list)
    recorder: AuditRecorder | None = None


_STATE = pytest.StashKey[_TestState]()


def _slug(nodeid: str) -> str:
    digest = hashlib.sha1(nodeid.encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', nodeid).strip('._')[:80]}-{digest}"


def _outcome(report: pytest.TestReport, previous: str) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped:
        return "skipped" if previous == "passed" else previous
    if report.failed:
        if report.when == "call":
            return "failed"
        return "error" if previous == "passed" else previous
    return previous


class _AuditSession:
    """Per-run state: options, lazily loaded model and baseline, entries, output files."""

    def __init__(self, config: pytest.Config, opts: AuditOptions) -> None:
        self.config = config
        self.opts = opts
        self.is_worker = hasattr(config, "workerinput")
        self.entries: list[TestEntry] = []
        self.from_workers = False
        self._baseline: Baseline | None = None
        self._baseline_error: Exception | None = None
        self._device: torch.device | None = None
        self.outputs: list[str] = []
        self.errors: list[str] = []
        self.baseline_note: str | None = None

    # lazily built things
    def device(self) -> torch.device:
        if self._device is None:
            self._device = _resolve_device(self.opts.device)
        return self._device

    def model(self, device: torch.device) -> nn.Module:
        if self.opts.model is None:
            pytest.fail(
                "no model under audit: pass --audit-model=NAME (a zoo name such as "
                "shapes-cnn, a pkg.module:factory, or a .pt weights file), set audit_model in "
                "the ini file, or override the audit_model fixture in conftest.py",
                pytrace=False,
            )
        try:
            return load_model_spec(
                self.opts.model, device=device, arch=self.opts.arch, base_dir=self.opts.model_dir
            )
        except pytest.UsageError as exc:
            pytest.fail(f"--audit-model={self.opts.model}: {exc}", pytrace=False)

    def load_baseline(self) -> Baseline:
        from modelaudit.baseline import Baseline

        if self._baseline_error is not None:
            raise self._baseline_error
        if self._baseline is None:
            assert self.opts.baseline is not None
            try:
                self._baseline = Baseline.load(self.opts.baseline)
            except Exception as exc:
                self._baseline_error = exc
                raise
        return self._baseline

    def test_dir(self, item: pytest.Item) -> Path | None:
        if self.opts.report_dir is None:
            return None
        return self.opts.report_dir / "tests" / _slug(item.nodeid)

    def state(self, item: pytest.Item) -> _TestState:
        if _STATE not in item.stash:
            item.stash[_STATE] = _TestState()
        return item.stash[_STATE]

    def _uses_audit(self, item: pytest.Item) -> bool:
        names = set(getattr(item, "fixturenames", ()))
        return bool(names & AUDIT_FIXTURES) or any(
            item.get_closest_marker(m) for m in AUDIT_MARKERS
        )

    # test protocol
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.opts.seed_torch and "torch" in sys.modules and "hypothesis" in sys.modules:
            register_torch_random()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        folder = self.test_dir(item)
        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # stale files of an earlier run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        names = getattr(item, "fixturenames", ())
        if "pytester" in names or not (
            self._uses_audit(item) or "modelaudit.records" in sys.modules
        ):
            return (yield)  # a pytester test's records belong to its inner session
        from modelaudit.records import collect_records
        from modelaudit.settings import use_settings

        state = self.state(item)
        with (
            use_settings(
                report_dir=self.test_dir(item), device=self.device(), tolerance=self.opts.tolerance
            ),
            collect_records() as sink,
        ):
            try:
                return (yield)
            finally:
                state.records.extend(sink)
                for record in sink[-MAX_RECORDS_PER_TEST:]:
                    item.user_properties.append((f"audit.check.{record.check}", record.obtained))
                    item.user_properties.append(
                        (f"audit.check.{record.check}.passed", record.passed)
                    )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if _STATE not in item.stash and not self._uses_audit(item):
            return report
        state = self.state(item)
        state.duration += report.duration
        state.outcome = _outcome(report, state.outcome)
        if report.failed and not state.message:
            if call.excinfo is not None:
                state.message = call.excinfo.exconly()[-4000:]
            else:
                state.message = report.longreprtext[-4000:]
        if report.when == "teardown":
            self._finish(item, state)
        return report

    def _finish(self, item: pytest.Item, state: _TestState) -> None:
        recorder = state.recorder
        records = [*state.records, *(recorder.records if recorder else [])]
        if not (self._uses_audit(item) or records):
            return
        from modelaudit.report.entries import TestEntry, record_view

        kept = records[-MAX_RECORDS_PER_TEST:]
        samples = self.opts.max_samples if self.opts.report_dir is not None else 0
        self.entries.append(
            TestEntry(
                nodeid=item.nodeid,
                outcome=state.outcome,
                duration=state.duration,
                message=state.message if state.outcome != "passed" else "",
                metrics=list(recorder.comparisons) if recorder else [],
                records=[record_view(r, max_samples=samples) for r in kept],
                attachments=list(recorder.attachments) if recorder else [],
                omitted_records=len(records) - len(kept),
                audited=self._uses_audit(item),
            )
        )
        state.records, state.recorder = [], None  # free tensors early

    # xdist: workers hand their entries to the controller, which alone writes files
    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if not data:
            return
        from modelaudit.report.entries import TestEntry

        self.entries.extend(TestEntry.from_dict(d) for d in data["entries"])
        self.from_workers = True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            payload = {"entries": [e.to_dict() for e in self.entries]}
            self.config.workeroutput[_WORKER_KEY] = json.loads(json.dumps(payload))  # type: ignore[attr-defined]
            return
        if self.from_workers:
            self.entries.sort(key=lambda e: e.nodeid)
        try:
            self._write_outputs()
        except Exception as exc:  # report it, fail the run, never crash pytest
            self.errors.append(f"{type(exc).__name__}: {exc}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_outputs(self) -> None:
        if self.opts.update_baseline and self.opts.baseline is not None:
            self._update_baseline(self.opts.baseline)
        if self.opts.report_dir is None or not self.entries:
            return
        from modelaudit.report.export import write_json
        from modelaudit.report.html import write_html

        notes = []
        if self.opts.model:
            notes.append(f"model: {self.opts.model} on {self.opts.device}")
        if self.opts.baseline is not None:
            notes.append(f"baseline: {self.opts.baseline}")
        html = write_html(self.entries, self.opts.report_dir / REPORT_HTML, notes=notes)
        data = write_json(self.entries, self.opts.report_dir / REPORT_JSON)
        self.outputs = [str(html), str(data)]

    def _update_baseline(self, path: Path) -> None:
        from modelaudit.baseline import Baseline

        updates: list[Comparison] = [
            c for e in self.entries for c in e.metrics if c.status == "updated"
        ]
        if not updates:
            self.baseline_note = f"no metrics recorded: baseline {path} left unchanged"
            return
        baseline = Baseline.load(path)
        stored = baseline.apply(updates)
        baseline.save(path)
        self.baseline_note = f"baseline updated: {path} ({stored} metrics written)"

    # terminal
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        rows = _summary_rows(self.entries)
        tr = terminalreporter
        if rows:
            tr.write_sep("-", "modelaudit metrics")
            for line in _table(rows):
                tr.write_line(line)
        if self.baseline_note:
            tr.write_line(f"modelaudit: {self.baseline_note}")
        for error in self.errors:
            tr.write_line(f"modelaudit: ERROR {error}", red=True, bold=True)
        if self.outputs:
            tr.write_line(f"modelaudit report: {self.outputs[0]}")
            tr.write_line(f"modelaudit records: {self.outputs[1]}")


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if isinstance(value, int | float):
        return f"{value:+.4g}" if signed else f"{value:.4g}"
    return str(value)


def _summary_rows(entries: list[TestEntry]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        if not (entry.audited or entry.failed):
            continue  # a passing plain test that called assertions: in the report only
        lines: list[tuple[str, ...]] = []
        for c in entry.metrics:
            verdict = "pass" if c.passed else "FAIL"
            lines.append(
                (
                    f"  {c.name}",
                    _fmt(c.value),
                    _fmt(c.baseline),
                    _fmt(c.delta, signed=True),
                    f"{verdict} ({c.status})",
                )
            )
        for view in entry.records:
            r = view.record
            bound, obtained = r.get("bound"), r.get("obtained")
            sign = {"at_least": ">= ", "at_most": "<= "}.get(str(r.get("direction")), "")
            delta = (
                obtained - bound
                if isinstance(obtained, int | float) and isinstance(bound, int | float)
                else None
            )
            lines.append(
                (
                    f"  {r.get('check')}",
                    _fmt(obtained),
                    f"{sign}{_fmt(bound)}" if bound is not None else "-",
                    _fmt(delta, signed=True),
                    "pass" if r.get("passed") else "FAIL",
                )
            )
        if lines:
            rows.append((entry.nodeid,))
            rows.extend(lines)
    return rows


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    header = ("metric", "value", "baseline", "delta", "pass/fail")
    cells = [r for r in rows if len(r) == len(header)]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *cells)]

    def fmt(r: tuple[str, ...]) -> str:
        first = r[0].ljust(widths[0])
        middle = [r[i].rjust(widths[i]) for i in (1, 2, 3)]
        return "  ".join([first, *middle, r[4]])

    return [fmt(header)] + [fmt(r) if len(r) == len(header) else r[0] for r in rows]
