"""pytest plugin: options, fixtures, markers, baselines and the report, wired to the library.

Loaded automatically through the ``pytest11`` entry point. It only wires pytest to the
library: model loading is :mod:`modelaudit.loading`, the hook check is
:mod:`modelaudit.hooks.inventory`, the terminal table :mod:`modelaudit.report.summary`.
Torch, the zoo, baselines and report writers are imported only when a run uses them, so
loading the plugin costs a pytest run that does not use modelaudit nothing measurable.

Options (group "modelaudit"; each also an ini key with the same name in snake case):

``--audit-model SPEC``
    The model under audit: a zoo name (``shapes-cnn``), an importable
    ``pkg.module:factory``, or a ``*.pt`` / ``*.pth`` state_dict read with
    ``torch.load(..., weights_only=True)`` (see :mod:`modelaudit.loading`).
``--audit-arch SPEC``: architecture for a weights file (zoo name or factory).
``--audit-device DEV``: ``cpu`` (default), ``cuda``, ``cuda:1``, ``mps`` or ``auto``
    (:func:`modelaudit.loading.resolve_device`).
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
on the device), ``audit_capture`` (a ``modelaudit.hooks.capture`` that fails the test
if any hook is left on a watched model, removing it), and ``audit`` (an
:class:`~modelaudit.report.recorder.AuditRecorder`: metrics gated on the baseline,
exported to JUnit XML through ``record_property``, images attached to the report).

Markers: ``audit`` and ``audit_slow``. Under ``CI`` the Hypothesis ``ci`` profile is
loaded unless another profile was chosen.
"""

from __future__ import annotations

import hashlib
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

from modelaudit.errors import ModelAuditError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelaudit.baseline import Baseline, Comparison
    from modelaudit.hooks.inventory import HookId
    from modelaudit.records import AuditRecord
    from modelaudit.report.entries import TestEntry
    from modelaudit.report.recorder import AuditRecorder

    # a watched model, the hook counts it had (allowed) and its hook ids then
    _Watched = tuple[nn.Module, dict[str, dict[str, int]], frozenset[HookId]]

__all__ = ["register_torch_random"]

AUDIT_FIXTURES = frozenset({"audit", "audit_model", "audit_capture", "audit_device"})
AUDIT_MARKERS = ("audit", "audit_slow")
REPORT_HTML = "report.html"
REPORT_JSON = "records.json"
MAX_RECORDS_PER_TEST = 10
_SESSION = "modelaudit-session"
_WORKER_KEY = "modelaudit"
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
    _share_cores_among_workers(config)
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


def _share_cores_among_workers(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker ``cores // workers`` torch threads.

    Otherwise every worker starts one thread per core and they stall each other (``pytest
    audits/ -n 2`` on 2 cores: 22 s with 2 threads per worker, 17 s with 1). An
    ``OMP_NUM_THREADS`` the user set wins. Sets the variable before torch is imported, or
    the thread count of a torch a conftest already imported.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not hasattr(config, "workerinput") or workers < 2 or "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


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


# --------------------------------------------------------------------------- hooks left behind


class AuditCapture:
    """Value of the ``audit_capture`` fixture: ``modelaudit.hooks.capture`` plus a hook check.

    Call it like ``capture``: ``with audit_capture(model, "layer4") as rec: ...``. Every
    model passed in (and ``audit_model`` when the test uses it) is watched: hooks added to
    it during the test and still present at teardown are removed and fail the test (checked
    with ``modelaudit.hooks.assert_no_hooks_left`` against the hooks it had before, so a
    model's own hooks, e.g. from ``weight_norm``, are allowed).
    """

    def __init__(self) -> None:
        self._watched: dict[int, _Watched] = {}

    def watch(self, model: nn.Module) -> nn.Module:
        """Watch ``model`` for hooks left behind (its current hooks are allowed)."""
        from modelaudit.hooks.inventory import hook_ids, hooks_by_module

        if id(model) not in self._watched:
            self._watched[id(model)] = (model, hooks_by_module(model), hook_ids(model))
        return model

    def __call__(self, model: nn.Module, layers: Any, **kwargs: Any) -> Any:
        """Open ``modelaudit.hooks.capture(model, layers, **kwargs)`` on a watched model."""
        from modelaudit.hooks import capture

        self.watch(model)
        return capture(model, layers, **kwargs)

    def leftovers(self) -> list[str]:
        """Describe and remove hooks added to watched models since watching began."""
        from modelaudit.hooks.inventory import describe_hooks_left, remove_hooks_since

        found = []
        for model, allowed, before in self._watched.values():
            text = describe_hooks_left(model, baseline=allowed)
            if text is not None:
                found.append(text)
            remove_hooks_since(model, before)
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
    """``modelaudit.hooks.capture`` that fails the test if it leaves hooks on the model."""
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
            try:
                from modelaudit.loading import resolve_device

                self._device = resolve_device(self.opts.device)
            except ModelAuditError as exc:
                raise pytest.UsageError(f"--audit-device / audit_device: {exc}") from exc
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
            from modelaudit.loading import load_model_spec

            return load_model_spec(
                self.opts.model, device=device, arch=self.opts.arch, base_dir=self.opts.model_dir
            )
        except ModelAuditError as exc:
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
        self.outputs = [str(html.resolve()), str(data.resolve())]

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
        tr = terminalreporter
        if self.entries:
            from modelaudit.report.summary import summary_lines

            lines = summary_lines(self.entries)
            if lines:
                tr.write_sep("-", "modelaudit metrics")
            for line in lines:
                tr.write_line(line)
        if self.baseline_note:
            tr.write_line(f"modelaudit: {self.baseline_note}")
        for error in self.errors:
            tr.write_line(f"modelaudit: ERROR {error}", red=True, bold=True)
        if self.outputs:
            tr.write_line(f"modelaudit report: {self.outputs[0]}")
            tr.write_line(f"modelaudit records: {self.outputs[1]}")
