"""Record metric values, check them against a baseline, attach images: the ``audit`` fixture.

:class:`AuditRecorder` is what the pytest fixture ``audit`` returns, and it works without
pytest too (a notebook, a script gating a release). Each metric gets the id
``"<test id>::<name>"`` in the baseline file. The verdict is
:func:`~modelaudit.checks.baseline.assert_within_baseline`'s, like every other check: a
frozen :class:`~modelaudit.checks.record.AuditRecord`, emitted to the report and raised
inside an :class:`~modelaudit.errors.AuditFailure` when a metric fails.

Example:
    >>> from modelaudit.baseline import Baseline
    >>> from modelaudit.report.recorder import AuditRecorder
    >>> base = Baseline()
    >>> base.set("demo::iou", 0.60, direction="higher", tolerance=0.05)
    >>> audit = AuditRecorder("demo", baseline=base)
    >>> audit.metric("iou", 0.62).passed, audit.comparisons[0].status
    (True, 'ok')
    >>> audit.metric("drop", 0.1, direction="lower")
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_within_baseline: every metric must stay within its tolerance of the baseline; 1 of 1 metric fail.
    ...
        drop: no baseline entry (demo::drop); obtained 0.1
    Create the baseline: re-run pytest with --audit-update-baseline (and commit the file)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelaudit.baseline import (
    Baseline,
    Comparison,
    Status,
    compare_to_entry,
    normalize_direction,
    validate_tolerance,
)
from modelaudit.checks.baseline import assert_within_baseline
from modelaudit.checks.record import AuditRecord
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.report.entries import Attachment, encode_png
from modelaudit.report.overlay import overlay as render_overlay
from modelaudit.report.overlay import save_png

__all__ = ["AuditRecorder"]

DEFAULT_UPDATE_HINT = "re-run pytest with --audit-update-baseline (and commit the file)"


class AuditRecorder:
    """Collects one test's metrics and images and gates metrics on a baseline.

    Args:
        test_id: prefix of the metric ids (the pytest node id in the plugin).
        baseline: a :class:`~modelaudit.baseline.Baseline`, a zero-argument callable that
            loads one (called on first use, so tests that record no metric never read the
            file), or None: values are then recorded and reported but not gated.
        update: update mode: nothing is gated; every value is marked ``"updated"`` for the
            caller to write (the pytest plugin writes them all at the end of the run).
        tolerance: default relative tolerance of new metrics.
        report_dir: where attached images are also saved as PNG files (None: not saved).
        on_property: called with ``(name, value)`` for each number worth exporting (the
            plugin passes pytest's ``record_property``, so metrics reach JUnit XML).
        update_hint: how to update the baseline; a failure's last line is "Create the
            baseline: <hint>" (missing entries) or "If the change is intended, update the
            baseline: <hint>".
    """

    def __init__(
        self,
        test_id: str,
        *,
        baseline: Baseline | Callable[[], Baseline] | None = None,
        update: bool = False,
        tolerance: float = 0.05,
        report_dir: str | os.PathLike[str] | None = None,
        on_property: Callable[[str, object], None] | None = None,
        update_hint: str = DEFAULT_UPDATE_HINT,
    ) -> None:
        self.test_id = test_id
        self._baseline = baseline
        self.update = update
        self.tolerance = validate_tolerance(tolerance)
        self.report_dir = None if report_dir is None else Path(report_dir)
        self._on_property = on_property
        self.update_hint = update_hint
        self.comparisons: list[Comparison] = []
        self.attachments: list[Attachment] = []
        self.records: list[AuditRecord] = []

    def baseline(self) -> Baseline | None:
        """The baseline in use (loaded on first call), or None when none is configured."""
        if callable(self._baseline):
            self._baseline = self._baseline()
        return self._baseline

    def key(self, name: str) -> str:
        """The baseline id of metric ``name`` in this test."""
        return f"{self.test_id}::{name}"

    def _compare(
        self, name: str, value: float, direction: str, tolerance: float | None
    ) -> Comparison:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"metric name must be a non-empty string, got {name!r}")
        if any(c.name == name for c in self.comparisons):
            raise InvalidInputError(
                f"metric {name!r} was already recorded in this test; give each metric its own name"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # 0-d tensors and numpy scalars
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"metric {name!r} must be a number, got {type(value).__name__}"
                ) from exc
        wanted = normalize_direction(direction)
        tol = None if tolerance is None else validate_tolerance(tolerance)
        key = self.key(name)
        base = self.baseline()
        entry = None if base is None else base.entries.get(key)
        source = None if base is None else base.source
        result = compare_to_entry(
            key,
            float(value),
            entry,
            direction=wanted,
            tolerance=tol if tol is not None else (None if entry else self.tolerance),
            name=name,
            source=source,
        )
        if result.status != "invalid" and (self.update or base is None):
            status: Status = "updated" if self.update else "recorded"
            result = Comparison(
                key, name, result.value, wanted, result.tolerance, result.baseline, status, source
            )
        self.comparisons.append(result)
        self._export(result)
        return result

    def _export(self, c: Comparison) -> None:
        if self._on_property is None:
            return
        self._on_property(f"audit.{c.name}", c.value if math.isfinite(c.value) else "nan")
        if c.baseline is not None:
            self._on_property(f"audit.{c.name}.baseline", c.baseline)
        self._on_property(f"audit.{c.name}.status", c.status)

    def metric(
        self,
        name: str,
        value: float,
        *,
        direction: str = "higher",
        tolerance: float | None = None,
        check: bool = True,
    ) -> AuditRecord:
        """Record a metric and check it against the baseline.

        Args:
            name: short name, unique within the test.
            value: the number (a 0-d tensor or numpy scalar is fine).
            direction: ``"higher"`` or ``"lower"`` is better.
            tolerance: relative tolerance; default: the stored entry's for an existing
                entry, the recorder's default for a new one.
            check: raise on failure (False: only record; the report still shows it).

        Returns:
            The gate's :class:`~modelaudit.checks.record.AuditRecord`; the comparison is
            ``record.details["comparisons"][0]`` (a dict) and in :attr:`comparisons`.

        Raises:
            AuditFailure: missing baseline entry, regression beyond tolerance, or a NaN
                value, when ``check`` is True.
        """
        __tracebackhide__ = True
        return self._gate([self._compare(name, value, direction, tolerance)], check=check)

    def metrics(
        self,
        values: Mapping[str, float],
        *,
        direction: str = "higher",
        tolerance: float | None = None,
        check: bool = True,
    ) -> AuditRecord:
        """Record several metrics, then decide once, listing every one that did not pass.

        Example:
            >>> audit = AuditRecorder("demo")  # no baseline: recorded, never gated
            >>> audit.metrics({"a": 0.5, "b": 0.7}).items
            ('a', 'b')
            >>> [c.status for c in audit.comparisons]
            ['recorded', 'recorded']
        """
        __tracebackhide__ = True
        results = [self._compare(n, v, direction, tolerance) for n, v in values.items()]
        return self._gate(results, check=check)

    def _gate(self, results: list[Comparison], *, check: bool) -> AuditRecord:
        __tracebackhide__ = True
        failing = [c for c in results if not c.passed]
        missing = bool(failing) and all(c.status == "missing" for c in failing)
        lead = (
            "Create the baseline" if missing else "If the change is intended, update the baseline"
        )
        try:
            return assert_within_baseline(results, hint=f"{lead}: {self.update_hint}")
        except AuditFailure as failure:
            if check:
                raise
            return failure.record

    def attach(self, name: str, image: Any) -> Attachment:
        """Attach an image to the report (and save it as ``<name>.png`` in ``report_dir``).

        Args:
            name: caption; unique names make the saved files unique.
            image: uint8 (H, W[, 3]), floats in [0, 1], a (C, H, W) tensor, or the path of
                an existing PNG file.
        """
        if isinstance(image, str | os.PathLike):
            import imageio.v3 as iio

            image = iio.imread(Path(image))
        attachment = Attachment(name=str(name), png=encode_png(image))
        if self.report_dir is not None:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "image"
            attachment.path = str(save_png(image, self.report_dir / f"{slug}.png"))
        self.attachments.append(attachment)
        return attachment

    def overlay(
        self,
        name: str,
        image: Any,
        heatmap: Any,
        *,
        box: Any = None,
        mask: Any = None,
        alpha: float = 0.5,
        colormap: str = "inferno",
    ) -> Any:
        """Render :func:`~modelaudit.report.overlay.overlay`, attach it, and return it."""
        picture = render_overlay(image, heatmap, box=box, mask=mask, alpha=alpha, colormap=colormap)
        self.attach(name, picture)
        return picture

    def record(self, record: AuditRecord) -> AuditRecord:
        """Add an audit record to the report by hand (checks emit theirs themselves)."""
        self.records.append(record)
        return record
