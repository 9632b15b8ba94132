"""Record metric values, check them against a baseline, attach images: the ``audit`` fixture.

:class:`AuditRecorder` is what the pytest fixture ``audit`` returns, and it works without
pytest too (a notebook, a script gating a release). Each metric gets the id
``"<test id>::<name>"`` in the baseline file. The verdict is
:func:`~modelaudit.checks.baseline.assert_within_baseline`'s, like every other check: a
frozen :class:`~modelaudit.checks.record.AuditRecord`, emitted to the report and raised
inside an :class:`~modelaudit.errors.AuditFailure` when a metric fails.

A metric is one number or per-sample values (a 1-D tensor, array or sequence; the metric
is their mean): per-sample values are stored in the baseline by an update run and, when
the stored entry has as many, the gate is paired, so rerun noise on a few samples does not
fail it (see :mod:`modelaudit.baseline`). Each value is stored with a fingerprint of what it
was measured on (:func:`~modelaudit.fingerprints.fingerprint`: the recorder's ``model``, and
the method, layer and images of ``maps=``); a comparison against a different model says so.

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

    Per-sample values, paired with the stored ones:

    >>> base.set("demo::hits", 0.5, direction="higher", tolerance=0.05, samples=[0, 1, 1, 0])
    >>> audit.metric("hits", [0, 1, 0, 1]).passed  # the same mean, other samples: noise
    True
    >>> print(audit.comparisons[-1].reason())
    ok: mean 0.5 vs baseline 0.5 on the same 4 samples (demo::hits), delta +0 (95% CI -0.75 to 0.75; allowed: -0.025)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
from modelaudit.fingerprints import fingerprint as make_fingerprint
from modelaudit.fingerprints import fingerprint_of_maps, validate_fingerprint
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
        model: the model under audit (the plugin passes ``audit_model`` when the test uses
            it): its weights are part of every metric's fingerprint (hashed once per
            model, and again only when its weights change).
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
        model: Any = None,
    ) -> None:
        self.test_id = test_id
        self._baseline = baseline
        self.update = update
        self.tolerance = validate_tolerance(tolerance)
        self.report_dir = None if report_dir is None else Path(report_dir)
        self._on_property = on_property
        self.update_hint = update_hint
        self.model = model
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
        self,
        name: str,
        value: Any,
        direction: str,
        tolerance: float | None,
        fingerprint: Mapping[str, str] | None = None,
        maps: Any = None,
    ) -> Comparison:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"metric name must be a non-empty string, got {name!r}")
        if any(c.name == name for c in self.comparisons):
            raise InvalidInputError(
                f"metric {name!r} was already recorded in this test; give each metric its own name"
            )
        number, samples = _values(name, value)
        wanted = normalize_direction(direction)
        tol = None if tolerance is None else validate_tolerance(tolerance)
        measured_on = self.fingerprint(maps, fingerprint)
        key = self.key(name)
        base = self.baseline()
        entry = None if base is None else base.entries.get(key)
        source = None if base is None else base.source
        result = compare_to_entry(
            key,
            number,
            entry,
            direction=wanted,
            tolerance=tol if tol is not None else (None if entry else self.tolerance),
            name=name,
            source=source,
            samples=samples,
            fingerprint=measured_on,
        )
        if result.status != "invalid" and (self.update or base is None):
            status: Status = "updated" if self.update else "recorded"
            result = dataclasses.replace(result, status=status, note="", ci=None, changed=())
        self.comparisons.append(result)
        self._export(result)
        return result

    def fingerprint(
        self, maps: Any = None, fingerprint: Mapping[str, str] | None = None
    ) -> dict[str, str] | None:
        """What a metric is measured on: :attr:`model`, ``maps``' provenance, ``fingerprint``.

        The keys of ``fingerprint`` win; None when there is nothing to describe (no model,
        no maps, no fingerprint given).

        Example:
            >>> AuditRecorder("t").fingerprint(fingerprint={"data": "v2"})["data"]
            'v2'
            >>> AuditRecorder("t").fingerprint() is None
            True
        """
        given = None if fingerprint is None else validate_fingerprint(fingerprint)
        if maps is not None:
            out = fingerprint_of_maps(maps, self.model)
        elif self.model is not None:
            out = make_fingerprint(self.model)
        elif given is None:
            return None
        else:
            out = make_fingerprint()
        return {**out, **(given or {})}

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
        value: Any,
        *,
        direction: str = "higher",
        tolerance: float | None = None,
        check: bool = True,
        maps: Any = None,
        fingerprint: Mapping[str, str] | None = None,
    ) -> AuditRecord:
        """Record a metric and check it against the baseline.

        ``audit.metric("mass_in_box", ma.mass_in_box(maps, boxes), maps=maps)`` stores the
        per-sample values (paired with the stored ones next time) and what they were
        measured on (the model, and the method, layer and images of ``maps``).

        Args:
            name: short name, unique within the test.
            value: the number (a 0-d tensor or numpy scalar is fine), or per-sample values
                (a 1-D tensor, numpy array or sequence of numbers; the metric is their mean).
            direction: ``"higher"`` or ``"lower"`` is better.
            tolerance: relative tolerance; default: the stored entry's for an existing
                entry, the recorder's default for a new one.
            check: raise on failure (False: only record; the report still shows it).
            maps: the heat maps the values came from (an ``Explanation``): their method,
                layer and inputs join the fingerprint.
            fingerprint: extra or overriding fingerprint entries (``dict[str, str]``, e.g.
                ``modelaudit.fingerprint(data=x)`` or ``{"dataset": "v3"}``).

        Returns:
            The gate's :class:`~modelaudit.checks.record.AuditRecord`; the comparison is
            ``record.details["comparisons"][0]`` (a dict) and in :attr:`comparisons`.

        Raises:
            AuditFailure: missing baseline entry, regression beyond tolerance, or a NaN
                value, when ``check`` is True.
            InvalidInputError: per-sample values that are empty, not 1-D, or not finite; a
                ``fingerprint`` that is not a dict of strings; ``maps`` without provenance.
        """
        __tracebackhide__ = True
        result = self._compare(name, value, direction, tolerance, fingerprint, maps)
        return self._gate([result], check=check)

    def metrics(
        self,
        values: Mapping[str, Any],
        *,
        direction: str = "higher",
        tolerance: float | None = None,
        check: bool = True,
        maps: Any = None,
        fingerprint: Mapping[str, str] | None = None,
    ) -> AuditRecord:
        """Record several metrics, then decide once, listing every one that did not pass.

        Each value is a number or per-sample values, as in :meth:`metric`; ``maps`` and
        ``fingerprint`` apply to all of them.

        Example:
            >>> audit = AuditRecorder("demo")  # no baseline: recorded, never gated
            >>> audit.metrics({"a": 0.5, "b": 0.7}).items
            ('a', 'b')
            >>> [c.status for c in audit.comparisons]
            ['recorded', 'recorded']
        """
        __tracebackhide__ = True
        results = [
            self._compare(n, v, direction, tolerance, fingerprint, maps) for n, v in values.items()
        ]
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


def _values(name: str, value: Any) -> tuple[float, tuple[float, ...] | None]:
    """A metric's value and per-sample values: ``(number, None)`` or ``(mean, samples)``.

    A NaN number is kept (the gate reports it as invalid); per-sample values must be a
    non-empty 1-D collection of finite numbers.

    Example:
        >>> _values("m", 0.5), _values("m", [0.25, 0.75])
        ((0.5, None), (0.5, (0.25, 0.75)))
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"metric {name!r} must be a number, got bool")
    if isinstance(value, int | float):
        return float(value), None
    if hasattr(value, "detach"):  # a tensor, on any device
        value = value.detach().cpu().tolist()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metric {name!r} must be a number or per-sample numbers (a 1-D tensor, array or "
            f"sequence), got {type(value).__name__}"
        ) from exc
    if array.ndim == 0:
        return float(array), None  # 0-d tensors and numpy scalars
    if array.ndim != 1:
        raise InvalidInputError(
            f"metric {name!r}: per-sample values must be 1-D (one number per sample), got "
            f"shape {tuple(array.shape)}; reduce the other dimensions first"
        )
    if array.size == 0:
        raise InvalidInputError(f"metric {name!r}: per-sample values are empty")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidInputError(
            f"metric {name!r}: per-sample values must be finite, got {array[bad[0]]} at index "
            f"{int(bad[0])} ({bad.size} of {array.size} not finite)"
        )
    return math.fsum(array.tolist()) / array.size, tuple(array.tolist())
