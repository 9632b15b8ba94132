"""One run's report bookkeeping, without pytest: outcomes, records, entries, files, baselines.

The pytest plugin feeds an :class:`AuditCollector` through plain calls: :meth:`start_test`
before a test's setup, :meth:`add_records` with the records its checks emitted,
:meth:`add_recorder` for the ``audit`` fixture, :meth:`report_phase` per setup / call /
teardown, and :meth:`finish_test` after teardown, which turns the test into a
:class:`~modelaudit.report.entries.TestEntry` (drawing its samples once, and writing the
failing samples' overlays as PNGs into the test's folder). Under pytest-xdist each worker
sends :meth:`worker_payload`, the controller merges them (:meth:`merge`) and alone
calls :meth:`close` (baseline update, ``report.html``, ``records.json``). The same calls
work from a script or a notebook.

Example:
    >>> from modelaudit.checks.record import AuditRecord
    >>> collector = AuditCollector()
    >>> collector.start_test("t.py::test_a", audited=True)
    >>> _ = collector.add_records("t.py::test_a", [AuditRecord(
    ...     "iou", "assert_iou", False, (0.2,), failing=(0,), bound=0.5, direction="higher",
    ...     obtained=0.2, rule="iou >= 0.5 must hold for every sample")])
    >>> collector.report_phase("t.py::test_a", "call", "failed", 0.1, message="AuditFailure")
    >>> collector.finish_test("t.py::test_a").outcome
    'failed'
    >>> print("\\n".join(collector.summary_lines()))
    gate   value is  value  bound or baseline  chance  verdict
    t.py::test_a
      iou  value       0.2  >= 0.5             -       FAIL
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelaudit.baseline import Comparison
    from modelaudit.checks.record import AuditRecord
    from modelaudit.report.entries import RecordView, TestEntry
    from modelaudit.report.recorder import AuditRecorder

__all__ = [
    "MAX_RECORDS_PER_TEST",
    "REPORT_HTML",
    "REPORT_JSON",
    "AuditCollector",
    "folder_name",
    "keep_records",
    "next_outcome",
    "shown_path",
]

MAX_RECORDS_PER_TEST = 10
"""Records kept per test (Hypothesis tests emit one per example): failing ones first."""
REPORT_HTML = "report.html"
REPORT_JSON = "records.json"


def folder_name(nodeid: str) -> str:
    """A file-name-safe, unique folder name for a test.

    Example:
        >>> folder_name("tests/test_a.py::test_x[1-2]")[:-8]
        'tests_test_a.py_test_x_1-2-'
    """
    digest = hashlib.sha1(nodeid.encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', nodeid).strip('._')[:80]}-{digest}"


def next_outcome(previous: str, when: str, outcome: str, *, xfail: bool = False) -> str:
    """Fold one phase's result (``passed`` / ``failed`` / ``skipped``) into a test's outcome.

    A failure in the call phase is ``failed``, in setup or teardown ``error``; ``xfail``
    marks a report of an expected failure (pytest's ``wasxfail``).

    Example:
        >>> next_outcome("passed", "setup", "failed"), next_outcome("failed", "teardown", "failed")
        ('error', 'failed')
        >>> next_outcome("passed", "call", "skipped", xfail=True)
        'xfailed'
    """
    if xfail:
        return "xfailed" if outcome == "skipped" else "xpassed"
    if outcome == "skipped":
        return "skipped" if previous == "passed" else previous
    if outcome == "failed":
        return "failed" if when == "call" else ("error" if previous == "passed" else previous)
    return previous


def shown_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the current directory) when it lies below
    it, else absolute: what terminal lines and links print.

    Example:
        >>> shown_path(Path("/a/b/report.html"), Path("/a")), shown_path(Path("/x/y"), Path("/a"))
        ('b/report.html', '/x/y')
    """
    import os

    here = (base or Path.cwd()).resolve()
    full = Path(os.path.abspath(path))
    try:
        return full.relative_to(here).as_posix()
    except ValueError:
        return str(full)


def keep_records(records: Sequence[AuditRecord], limit: int) -> list[AuditRecord]:
    """At most ``limit`` records, in their order: the last failing ones, then the last others.

    Example:
        >>> from modelaudit.checks.record import AuditRecord
        >>> recs = [AuditRecord(str(i), "a", i != 1, (1.0,)) for i in range(5)]
        >>> [r.check for r in keep_records(recs, 2)]
        ['1', '4']
    """
    if len(records) <= limit:
        return list(records)
    failing = [i for i, r in enumerate(records) if not r.passed][-limit:] if limit else []
    room = limit - len(failing)
    passing = [i for i, r in enumerate(records) if r.passed][-room:] if room > 0 else []
    return [records[i] for i in sorted(failing + passing)]


def _mirrored(record: AuditRecord, keys: set[str]) -> bool:
    """Whether ``record`` is a baseline gate over metrics whose keys are all in ``keys``."""
    compared = record.details.get("comparisons")
    if record.assertion != "assert_within_baseline" or not compared:
        return False
    return all(isinstance(c, Mapping) and c.get("key") in keys for c in compared)


@dataclasses.dataclass
class _Running:
    audited: bool
    outcome: str = "passed"
    duration: float = 0.0
    message: str = ""
    records: list[AuditRecord] = dataclasses.field(default_factory=list)
    recorder: AuditRecorder | None = None


class AuditCollector:
    """Collects one run's tests into report entries and writes the report and baseline.

    Args:
        report_dir: where ``report.html``, ``records.json`` and per-test folders (overlay
            PNGs of failing samples, attached images) go; None: no files, and no pictures
            are drawn (the entries still feed the terminal summary and baseline updates).
        max_samples: samples drawn per failing record, worst first (a passing one: at
            most :data:`~modelaudit.report.options.PASSING_EXAMPLES`).
        max_records: records kept per test (:func:`keep_records`).
        tensorboard_dir: where :meth:`close` also writes TensorBoard event files
            (:func:`~modelaudit.report.tensorboard.write_tensorboard`); None: not.

    Attributes:
        entries: the finished tests.
        notes: terminal lines about what was written.
        errors: problems that fail the run (the baseline could not be updated).
        warnings: files that could not be written (the report, overlays, TensorBoard):
            reported, never a change of verdict.
    """

    def __init__(
        self,
        report_dir: Path | None = None,
        *,
        max_samples: int = 8,
        max_records: int = MAX_RECORDS_PER_TEST,
        tensorboard_dir: Path | None = None,
    ) -> None:
        self.report_dir = report_dir
        self.tensorboard_dir = tensorboard_dir
        self.max_samples = max_samples
        self.max_records = max_records
        self.entries: list[TestEntry] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._running: dict[str, _Running] = {}
        self._merged = False

    def test_dir(self, nodeid: str) -> Path | None:
        """The test's folder in the report (None without a report)."""
        return None if self.report_dir is None else self.report_dir / "tests" / folder_name(nodeid)

    # -- one test ---------------------------------------------------------------------------

    def start_test(self, nodeid: str, *, audited: bool) -> None:
        """Begin a test (``audited``: it asked for modelaudit); remove its stale files."""
        self._running.setdefault(nodeid, _Running(audited))
        folder = self.test_dir(nodeid)
        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    def add_records(self, nodeid: str, records: Iterable[AuditRecord]) -> list[tuple[str, Any]]:
        """Keep the records a test emitted; return their JUnit properties.

        The properties are ``audit.check.<check>`` (obtained) and ``...passed`` for the
        last :attr:`max_records` records, leaving out the ``audit`` fixture's baseline
        gates (their metrics are exported by the fixture itself).
        """
        run = self._running.setdefault(nodeid, _Running(audited=False))
        new = list(records)
        run.records.extend(new)
        keys = {c.key for c in run.recorder.comparisons} if run.recorder else set()
        props: list[tuple[str, Any]] = []
        for r in [r for r in new if not _mirrored(r, keys)][-self.max_records :]:
            props += [
                (f"audit.check.{r.check}", r.obtained),
                (f"audit.check.{r.check}.passed", r.passed),
            ]
        return props

    def add_recorder(self, nodeid: str, recorder: AuditRecorder) -> None:
        """Take the test's metrics, attachments and hand-added records from ``recorder``."""
        self._running.setdefault(nodeid, _Running(audited=True)).recorder = recorder

    def report_phase(
        self,
        nodeid: str,
        when: str,
        outcome: str,
        duration: float,
        *,
        xfail: bool = False,
        message: str = "",
    ) -> None:
        """Fold a phase's result into the test (see :func:`next_outcome`); keep the first
        failure text (its last 4000 characters)."""
        run = self._running.get(nodeid)
        if run is None:
            return
        run.duration += duration
        run.outcome = next_outcome(run.outcome, when, outcome, xfail=xfail)
        if outcome == "failed" and not run.message:
            run.message = message[-4000:]

    def finish_test(self, nodeid: str) -> TestEntry | None:
        """End a test: its entry (None when it neither asked for modelaudit nor emitted
        records). Samples are drawn now and the tensors released."""
        run = self._running.pop(nodeid, None)
        recorder = None if run is None else run.recorder
        records = [] if run is None else [*run.records, *(recorder.records if recorder else [])]
        if run is None or not (run.audited or records):
            return None
        from modelaudit.report.entries import TestEntry, record_view

        kept = keep_records(records, self.max_records)
        drawn = self.report_dir is not None
        views = [record_view(r, max_samples=self._samples_of(r), overview=drawn) for r in kept]
        self._save_overlays(nodeid, views)
        entry = TestEntry(
            nodeid=nodeid,
            outcome=run.outcome,
            duration=run.duration,
            message=run.message if run.outcome != "passed" else "",
            metrics=list(recorder.comparisons) if recorder else [],
            records=views,
            attachments=list(recorder.attachments) if recorder else [],
            omitted_records=len(records) - len(kept),
            audited=run.audited,
        )
        self.entries.append(entry)
        return entry

    def _samples_of(self, record: AuditRecord) -> int:
        """Samples drawn for ``record``: :attr:`max_samples` when it failed, at most
        :data:`~modelaudit.report.options.PASSING_EXAMPLES` when it passed, 0 without a
        report."""
        from modelaudit.report.options import PASSING_EXAMPLES

        if self.report_dir is None:
            return 0
        return self.max_samples if not record.passed else min(PASSING_EXAMPLES, self.max_samples)

    def _save_overlays(self, nodeid: str, views: Sequence[RecordView]) -> None:
        """Write failed checks' failing samples (already drawn) as ``<check>-<index>.png``
        and their overview as ``<check>-overview.png``; a write error becomes a warning."""
        folder = self.test_dir(nodeid)
        if folder is None:
            return
        try:
            self._write_overlays(folder, views)
        except OSError as exc:  # a report problem never changes a test's verdict
            for view in views:
                view.files, view.overview_file = [], None
            self._warn(f"overlay PNGs of {nodeid} not written to {folder}: {exc}")

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _write_overlays(self, folder: Path, views: Sequence[RecordView]) -> None:
        from modelaudit._atomic import atomic_write_bytes

        used: set[str] = set()
        for view in views:
            if view.record.get("passed"):
                continue  # a passing check's weak samples are in the HTML report only
            rows = [s for s in view.samples if s.passed is False and s.overlay_png]
            if not rows and not view.overview_png:
                continue
            base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(view.record.get("check"))) or "check"
            stem, n = base, 1
            while stem in used:
                n += 1
                stem = f"{base}_{n}"
            used.add(stem)
            root = self.report_dir or folder
            for row in rows:
                path = folder / f"{stem}-{row.index}.png"
                atomic_write_bytes(path, base64.b64decode(row.overlay_png or ""))
                view.files.append(path.relative_to(root).as_posix())
            if view.overview_png:
                path = folder / f"{stem}-overview.png"
                atomic_write_bytes(path, base64.b64decode(view.overview_png))
                view.overview_file = path.relative_to(root).as_posix()

    # -- xdist ------------------------------------------------------------------------------

    def worker_payload(self) -> dict[str, Any]:
        """What a pytest-xdist worker sends the controller: plain JSON types only."""
        return json.loads(json.dumps({"entries": [e.to_dict() for e in self.entries]}))

    def merge(self, payload: Mapping[str, Any]) -> None:
        """Add a worker's :meth:`worker_payload` (entries are then sorted by node id)."""
        from modelaudit.report.entries import TestEntry

        self.entries.extend(TestEntry.from_dict(d) for d in payload.get("entries", []))
        self._merged = True

    # -- the end of the run -----------------------------------------------------------------

    def update_baseline(self, path: Path) -> str:
        """Merge every metric marked ``updated`` into the baseline file, under its lock.

        Other entries of the file, including those another run wrote meanwhile, are kept
        (see :func:`modelaudit.baseline.update_baseline_file`); each entry gets its
        per-sample values and fingerprint. Only a clean run writes: when a test failed or
        errored, or a test started and never finished (an interrupted run), the file is
        left untouched and the note says why.
        """
        from modelaudit.baseline import update_baseline_file

        updates: list[Comparison] = [
            c for e in self.entries for c in e.metrics if c.status == "updated"
        ]
        failed = [e.nodeid for e in self.entries if e.failed]
        if self._running or failed:
            why = (
                f"the run was interrupted ({len(self._running)} test(s) did not finish)"
                if self._running
                else f"{len(failed)} test(s) failed, e.g. {failed[0]}"
            )
            note = (
                f"baseline {path} NOT updated: {why}; fix or deselect the failing tests, "
                "then re-run with --audit-update-baseline"
            )
        elif not updates:
            note = f"no metrics recorded: baseline {path} left unchanged"
        else:
            stored = update_baseline_file(path, updates)
            note = f"baseline updated: {path} ({stored} metrics written)"
        self.notes.append(f"modelaudit: {note}")
        return note

    def write(self, *, notes: Sequence[str] = ()) -> list[Path]:
        """Write ``report.html`` and ``records.json`` (nothing without a report or entries).

        Raises:
            ModelAuditError: naming the report folder and the cause, when a file cannot
                be written (nothing half-written is left: writes are atomic).
        """
        if self.report_dir is None or not self.entries:
            return []
        from modelaudit.errors import ModelAuditError
        from modelaudit.report.export import write_json
        from modelaudit.report.html import write_html

        if self._merged:
            self.entries.sort(key=lambda e: e.nodeid)
        try:
            html = write_html(self.entries, self.report_dir / REPORT_HTML, notes=notes)
            data = write_json(self.entries, self.report_dir / REPORT_JSON)
        except OSError as exc:
            raise ModelAuditError(
                f"the report could not be written to {self.report_dir} ({exc.strerror or exc}); "
                "pass a writable --audit-report-dir=DIR, or --audit-report-dir=none"
            ) from None
        self.notes += [
            f"modelaudit report: {shown_path(html)}",
            f"modelaudit records: {shown_path(data)}",
        ]
        drawn = sum(len(v.files) for e in self.entries for v in e.records)
        if drawn:
            where = shown_path(self.report_dir / "tests")
            samples = "sample" if drawn == 1 else "samples"
            self.notes.append(f"modelaudit overlays written to {where} ({drawn} failing {samples})")
        return [html, data]

    def link(self, nodeid: str, base: Path) -> str | None:
        """Where a failing test's section of the report will be, relative to ``base``
        (``audit-report/report.html#t-...``); None without a report or when the test
        neither asked for modelaudit nor emitted records."""
        from modelaudit.report.entries import section_id

        run = self._running.get(nodeid)
        if self.report_dir is None or run is None or not (run.audited or run.records):
            return None
        return f"{shown_path(self.report_dir / REPORT_HTML, base)}#{section_id(nodeid)}"

    def write_tensorboard(self) -> Path | None:
        """Write the entries to :attr:`tensorboard_dir` (nothing without one or entries).

        Raises:
            ModelAuditError: naming ``--audit-tensorboard``, when TensorBoard is missing
                or the directory cannot be written.
        """
        if self.tensorboard_dir is None or not self.entries:
            return None
        from modelaudit.errors import ModelAuditError
        from modelaudit.report.tensorboard import write_tensorboard

        where = self.tensorboard_dir
        try:
            scalars, images = write_tensorboard(self.entries, where)
        except (ModelAuditError, OSError) as exc:
            raise ModelAuditError(
                f"--audit-tensorboard={where}: no TensorBoard event files written: {exc}"
            ) from None
        self.notes.append(
            f"modelaudit tensorboard: {shown_path(where)} ({scalars} scalars, {images} images)"
        )
        return where

    def close(self, *, baseline: Path | None = None, notes: Sequence[str] = ()) -> bool:
        """Update ``baseline`` (when given), then write the report and the TensorBoard
        event files; False if the baseline could not be updated.

        Nothing is raised, so a test run ends normally, and one step failing does not stop
        the next. A baseline problem goes to :attr:`errors` (the run fails: the release
        gate was not stored); a report or TensorBoard problem to :attr:`warnings` (the
        tests' verdicts never depend on whether their pictures could be written).
        """
        steps: list[tuple[Callable[[], object], list[str]]] = [
            (lambda: self.write(notes=notes), self.warnings),
            (self.write_tensorboard, self.warnings),
        ]
        if baseline is not None:
            steps.insert(0, (lambda: self.update_baseline(baseline), self.errors))
        for step, problems in steps:
            try:
                step()
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        return not self.errors

    def summary_lines(self) -> list[str]:
        """The terminal table of metrics and checks (empty when there is nothing to show)."""
        from modelaudit.report.summary import summary_lines

        return summary_lines(self.entries) if self.entries else []
