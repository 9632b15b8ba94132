"""pytest plugin: hooks and fixtures that wire pytest to the modelaudit library.

Loaded through the ``pytest11`` entry point; glue only. The options are one table,
:data:`modelaudit.report.options.OPTIONS` (``pytest --help`` lists them under
"modelaudit"); a run's bookkeeping, xdist merging, report files and baseline updates are
:class:`~modelaudit.report.collector.AuditCollector`'s; metrics are gated by
:class:`~modelaudit.report.recorder.AuditRecorder`; hooks left behind are found by
:class:`~modelaudit.hooks.watch.HookWatcher`; models load through :mod:`modelaudit.loading`.
Torch, numpy and the report writers are imported only when a run uses them.

Fixtures: ``audit_device`` and ``audit_model`` (session scope; the model is in eval mode
on the device), ``audit_capture`` (``modelaudit.hooks.capture`` that fails the test if a
hook is left on a watched model), and ``audit`` (metrics gated on the baseline, exported to
JUnit XML through ``record_property``, images attached to the report).

Markers: ``audit`` and ``audit_slow``. Under ``CI`` the Hypothesis ``ci`` profile is loaded
unless another profile was chosen; torch's global RNG is seeded from Hypothesis in
``@given`` tests (ini ``audit_seed_torch``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelaudit._hypothesis import load_ci_profile, register_torch_random
from modelaudit.errors import ModelAuditError
from modelaudit.report.options import OPTIONS, AuditOptions

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelaudit.baseline import Baseline
    from modelaudit.hooks.watch import HookWatcher
    from modelaudit.report.recorder import AuditRecorder

__all__ = ["register_torch_random"]

AUDIT_FIXTURES = frozenset({"audit", "audit_model", "audit_capture", "audit_device"})
AUDIT_MARKERS = {
    "audit": "an audit of what a model looks at (select with -m audit)",
    "audit_slow": "a slow model audit (deselect with -m 'not audit_slow')",
}
_SESSION = "modelaudit-session"
_WORKER_KEY = "modelaudit"
_UPDATE_HINT = "re-run pytest with --audit-update-baseline (and commit the baseline file)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelaudit", "modelaudit: audits of what a vision model looks at")
    for option in OPTIONS:
        if option.flag is not None:
            group.addoption(option.flag, **option.flag_kwargs())
        if option.ini:
            parser.addini(option.name, option.help, type=option.ini_type, default=option.default)


def pytest_configure(config: pytest.Config) -> None:
    for marker, text in AUDIT_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", default=None):
        load_ci_profile()  # unless a conftest chose another profile
    _share_cores_among_workers(config)
    try:
        opts = AuditOptions.resolve(
            lambda name: config.getoption(name, default=None),
            config.getini,
            cli_dir=Path(config.invocation_params.dir),
            ini_dir=config.inipath.parent if config.inipath else config.rootpath,
            root=config.rootpath,
        )
        opts.start()  # a bad device or model spec: one usage error; torchrun: join the group
    except ModelAuditError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.pluginmanager.register(_AuditSession(config, opts), _SESSION)


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


def _session(config: pytest.Config) -> _AuditSession:
    session = config.pluginmanager.get_plugin(_SESSION)
    if not isinstance(session, _AuditSession):  # pragma: no cover - configure always runs
        raise RuntimeError("the modelaudit plugin is not configured")
    return session


def _uses_audit(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return bool(names & AUDIT_FIXTURES) or any(item.get_closest_marker(m) for m in AUDIT_MARKERS)


@pytest.fixture(scope="session")
def audit_device(pytestconfig: pytest.Config) -> torch.device:
    """The device chosen with ``--audit-device`` (default cpu)."""
    return _session(pytestconfig).device()


@pytest.fixture(scope="session")
def audit_model(pytestconfig: pytest.Config, audit_device: torch.device) -> nn.Module:
    """The model under audit (``--audit-model``), loaded once, in eval mode, on the device."""
    return _session(pytestconfig).model(audit_device)


@pytest.fixture
def audit_capture(request: pytest.FixtureRequest) -> Iterator[HookWatcher]:
    """``modelaudit.hooks.capture`` that fails the test if it leaves hooks on the model."""
    from modelaudit.hooks.watch import HookWatcher

    watcher = HookWatcher()
    if "audit_model" in request.fixturenames:
        watcher.watch(request.getfixturevalue("audit_model"))
    yield watcher
    failure = watcher.failure()
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.fixture
def audit(request: pytest.FixtureRequest, record_property: Any) -> AuditRecorder:
    """Record metrics (gated on the baseline, fingerprinted with ``audit_model`` if used)."""
    from modelaudit.report.recorder import AuditRecorder

    session, nodeid = _session(request.config), request.node.nodeid
    uses_model = "audit_model" in request.fixturenames
    recorder = AuditRecorder(
        nodeid,
        baseline=session.load_baseline if session.opts.baseline is not None else None,
        update=session.opts.update_baseline,
        tolerance=session.opts.tolerance,
        report_dir=session.collector.test_dir(nodeid),
        on_property=record_property,
        update_hint=_UPDATE_HINT,
        model=request.getfixturevalue("audit_model") if uses_model else None,
    )
    session.collector.add_recorder(nodeid, recorder)
    return recorder


class _AuditSession:
    """The run's plugin object: options, the collector, the device and baseline on first use."""

    def __init__(self, config: pytest.Config, opts: AuditOptions) -> None:
        from modelaudit.report.collector import AuditCollector

        self.config, self.opts = config, opts
        self.is_worker = hasattr(config, "workerinput")
        self.collector = AuditCollector(opts.report_dir, max_samples=opts.max_samples)
        self.collector.tensorboard_dir = opts.tensorboard_dir
        self._device: torch.device | None = None
        self._baseline: Baseline | Exception | None = None

    def device(self) -> torch.device:
        if self._device is None:
            from modelaudit.loading import resolve_device

            self._device = resolve_device(self.opts.device)  # checked in pytest_configure
        return self._device

    def model(self, device: torch.device) -> nn.Module:
        o = self.opts
        if o.model is None:
            pytest.fail(
                "no model under audit: pass --audit-model=NAME (a zoo name such as "
                "shapes-cnn, a pkg.module:factory, or a .pt weights file), set audit_model in "
                "the ini file, or override the audit_model fixture in conftest.py",
                pytrace=False,
            )
        from modelaudit.loading import load_model_spec

        try:
            return load_model_spec(o.model, device=device, arch=o.arch, base_dir=o.model_dir)
        except ModelAuditError as exc:
            error = f"--audit-model={o.model}: {exc}"
        pytest.fail(error, pytrace=False)  # outside `except`: no chained copies of the text

    def load_baseline(self) -> Baseline:
        """The baseline file, read once; a broken file fails every test that gates on it."""
        from modelaudit.baseline import Baseline

        if self._baseline is None:
            assert self.opts.baseline is not None
            try:
                self._baseline = Baseline.load(self.opts.baseline)
            except Exception as exc:
                self._baseline = exc
        if isinstance(self._baseline, Exception):
            raise self._baseline
        return self._baseline

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.opts.seed_torch and "torch" in sys.modules and "hypothesis" in sys.modules:
            register_torch_random()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.collector.start_test(item.nodeid, audited=_uses_audit(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        if "pytester" in getattr(item, "fixturenames", ()) or not (
            _uses_audit(item) or "modelaudit.checks.record" in sys.modules
        ):
            return (yield)  # a pytester test's records belong to its inner session
        from modelaudit.checks.record import collect_records

        with collect_records() as sink:
            try:
                return (yield)
            finally:
                item.user_properties.extend(self.collector.add_records(item.nodeid, sink))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        message = ""
        if report.failed:
            message = call.excinfo.exconly() if call.excinfo else report.longreprtext
            if link := self.collector.link(item.nodeid, self.config.invocation_params.dir):
                report.sections.append(("modelaudit report", link))  # the failure's last line
        self.collector.report_phase(
            item.nodeid,
            report.when or "call",
            report.outcome,
            report.duration,
            xfail=hasattr(report, "wasxfail"),
            message=message,
        )
        if report.when == "teardown":
            self.collector.finish_test(item.nodeid)
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if payload:
            self.collector.merge(payload)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:  # the controller alone writes files
            self.config.workeroutput[_WORKER_KEY] = self.collector.worker_payload()  # type: ignore[attr-defined]
            return
        o = self.opts
        notes = [f"model: {o.model} on {o.device}"] if o.model else []
        notes += [f"baseline: {o.baseline}"] if o.baseline is not None else []
        stopped = session.exitstatus == pytest.ExitCode.INTERRUPTED  # a worker's test unseen
        update = o.baseline if o.update_baseline and not stopped else None
        if not self.collector.close(baseline=update, notes=notes) and not session.exitstatus:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the baseline was not stored

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        lines = self.collector.summary_lines()
        if lines:
            tr.write_sep("-", "modelaudit metrics")
        for line in [*lines, *self.collector.notes]:
            tr.write_line(line)
        for kind, texts in (("ERROR", self.collector.errors), ("WARNING", self.collector.warnings)):
            for text in texts:  # a WARNING is about pictures only: no verdict changed
                tr.write_line(f"modelaudit: {kind} {text}", red=kind == "ERROR", bold=True)
