"""Metric baselines for release gates: "attention must not get worse than last release".

A baseline is a JSON file of metric values, each with the direction in which it is better
and a relative tolerance. A new run compares every recorded metric with its entry:

- no entry: the check fails and says how to create one (``--audit-update-baseline``);
- worse than the baseline by more than ``tolerance * |baseline|``: fails with the obtained
  value, the baseline and the delta;
- otherwise it passes (``"improved"`` when better by more than the tolerance).

When the entry stores per-sample values (``samples``) and the run has as many, the gate
is paired: the per-sample gains (``current_i - baseline_i``, sign-flipped when lower is
better) are resampled :data:`BOOTSTRAP_RESAMPLES` times with the fixed seed
:data:`BOOTSTRAP_SEED` (:func:`paired_bootstrap`), giving a 95% confidence interval of the
mean gain. The metric regresses only when the drop is both large (beyond the tolerance, as
above) and significant (the whole interval below 0), so rerun noise on a few samples no
longer fails a release while a consistent drop still does; ``"improved"`` likewise. With a
different number of samples, or a plain number on either side, the means are compared as
above and the comparison's ``note`` says why. When the run's fingerprint
(:func:`modelaudit.fingerprints.fingerprint`) differs from the stored one, the comparison
still runs and its ``note`` names what differs.

File schema (``version`` 1)::

    {
      "version": 1,
      "metrics": {
        "tests/test_gate.py::test_attention::mass_in_box": {
          "value": 0.7132,
          "direction": "higher",
          "tolerance": 0.05,
          "samples": [0.69, 0.75, 0.7182, 0.6864],
          "n": 4,
          "fingerprint": {"model": "3f2a9c0d5e6b7a81", "method": "gradcam",
                          "modelaudit": "0.1.0", "torch": "2.4.1", "torchvision": "0.19.1"}
        }
      },
      "metadata": {}
    }

``direction`` is ``"higher"`` (higher is better) or ``"lower"``; ``tolerance`` is a
non-negative number relative to ``|value|`` (so a baseline of exactly 0 allows no change
in the bad direction); ``samples`` (the per-sample values, rounded to 6 significant
digits, ``value`` being their mean), ``n`` (their count) and ``fingerprint`` (strings,
what the value was measured on) are optional; ``metadata`` is optional and free-form.
Anything else (bad JSON,
unknown keys, a missing field, a non-finite value, an unknown version) raises
:class:`~modelaudit.errors.BaselineError`: a broken file is never a silent pass. Files are
written atomically (a temporary file in the same directory, then ``os.replace``).
:func:`update_baseline_file` (what ``--audit-update-baseline`` runs) holds a file lock,
``<name>.lock`` next to the baseline, while it re-reads the file, merges the new entries
and writes it back, so concurrent updaters (one pytest run per test file) all keep their
metrics.

Example:
    >>> from modelaudit.baseline import Baseline
    >>> base = Baseline()
    >>> base.compare("t::iou", 0.8, direction="higher").status
    'missing'
    >>> base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    >>> base.compare("t::iou", 0.78, direction="higher").status
    'ok'
    >>> base.compare("t::iou", 0.70, direction="higher").status
    'regressed'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import filelock

from modelaudit._atomic import atomic_write_text
from modelaudit._format import format_number, format_percent
from modelaudit.errors import BaselineError, InvalidInputError
from modelaudit.fingerprints import describe_difference, validate_fingerprint

__all__ = [
    "BASELINE_VERSION",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "LOCK_TIMEOUT",
    "Baseline",
    "BaselineEntry",
    "Comparison",
    "Direction",
    "Status",
    "compare_to_entry",
    "lock_path",
    "normalize_direction",
    "paired_bootstrap",
    "round_samples",
    "update_baseline_file",
    "validate_tolerance",
]

BASELINE_VERSION = 1
"""Schema version written into (and required from) baseline files."""
LOCK_TIMEOUT = 60.0
"""Seconds :func:`update_baseline_file` waits for another updater to release the lock."""
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the paired bootstrap (:func:`paired_bootstrap`)."""
BOOTSTRAP_SEED = 0
"""The bootstrap's fixed seed: the same values always give the same verdict."""
CONFIDENCE = 0.95
"""Coverage of the paired gate's confidence interval of the mean gain."""

Direction = Literal["higher", "lower"]
Status = Literal["ok", "improved", "regressed", "missing", "invalid", "updated", "recorded"]

_PASSING: frozenset[str] = frozenset({"ok", "improved", "updated", "recorded"})
_ENTRY_KEYS = frozenset({"value", "direction", "tolerance"})
_OPTIONAL_KEYS = frozenset({"samples", "n", "fingerprint"})
# an indented JSON array of numbers only (strings never hold a raw newline): one line
_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[0-9][0-9.eE+-]*,\n\s*)*-?[0-9][0-9.eE+-]*)\n\s*\]")
_TOP_KEYS = frozenset({"version", "metrics", "metadata"})


def normalize_direction(direction: str) -> Direction:
    """Return ``direction`` if it is ``"higher"`` or ``"lower"`` (which way is better).

    Example:
        >>> normalize_direction("lower")
        'lower'
    """
    if direction in ("higher", "lower"):
        return cast(Direction, direction)
    raise InvalidInputError(
        f"direction must be 'higher' (higher is better) or 'lower', got {direction!r}"
    )


def validate_tolerance(tolerance: object) -> float:
    """Return a relative tolerance as a float; raise for anything but a finite number >= 0.

    The one validator of baseline tolerances (the plugin's ``--audit-tolerance``, the
    ``audit`` fixture, baseline files).

    Example:
        >>> validate_tolerance(0.05)
        0.05
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise InvalidInputError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInputError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return float(tolerance)


def round_samples(values: Iterable[float]) -> tuple[float, ...]:
    """Per-sample values as stored in a baseline file: 6 significant digits each.

    Example:
        >>> round_samples([0.123456789, 2.0, 1 / 3])
        (0.123457, 2.0, 0.333333)
    """
    return tuple(float(f"{float(v):.6g}") for v in values)


@dataclasses.dataclass(frozen=True)
class BaselineEntry:
    """One stored metric: its value, the better direction and the relative tolerance.

    Attributes:
        value: the stored value (the mean of ``samples`` when there are samples).
        direction: ``"higher"`` or ``"lower"`` is better.
        tolerance: relative tolerance.
        samples: the per-sample values (6 significant digits), or None (a plain number).
        fingerprint: what the value was measured on
            (:func:`modelaudit.fingerprints.fingerprint`), or None.

    Example:
        >>> BaselineEntry(0.5, "higher", 0.05, samples=(0.4, 0.6))
        BaselineEntry(value=0.5, direction='higher', tolerance=0.05, n=2)
        >>> BaselineEntry(0.5, "higher", 0.05, samples=(0.4, 0.6)).to_dict()["n"]
        2
    """

    value: float
    direction: Direction
    tolerance: float
    samples: tuple[float, ...] | None = None
    fingerprint: dict[str, str] | None = dataclasses.field(default=None, hash=False)

    @property
    def n(self) -> int | None:
        """How many per-sample values are stored (None without samples)."""
        return None if self.samples is None else len(self.samples)

    def __repr__(self) -> str:
        extra = "" if self.samples is None else f", n={len(self.samples)}"
        extra += "" if self.fingerprint is None else f", fingerprint={self.fingerprint!r}"
        return (
            f"BaselineEntry(value={self.value!r}, direction={self.direction!r}, "
            f"tolerance={self.tolerance!r}{extra})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the file (``samples``/``n``/``fingerprint`` if set)."""
        out: dict[str, Any] = {
            "value": self.value,
            "direction": self.direction,
            "tolerance": self.tolerance,
        }
        if self.samples is not None:
            out["samples"], out["n"] = list(self.samples), len(self.samples)
        if self.fingerprint is not None:
            out["fingerprint"] = dict(self.fingerprint)
        return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one metric value with its baseline.

    Attributes:
        key: the metric id in the baseline file (``"<test id>::<name>"`` in pytest).
        name: the metric's short name.
        value: the value obtained now (NaN allowed: status ``"invalid"``); the mean of
            ``samples`` when there are samples.
        direction: ``"higher"`` or ``"lower"`` is better.
        tolerance: the relative tolerance applied.
        baseline: the stored value, or None when there is none.
        status: ``ok``, ``improved``, ``regressed``, ``missing``, ``invalid`` (NaN or
            infinite value), ``updated`` (written by an update run) or ``recorded`` (no
            baseline file configured: the value is reported, not gated).
        source: the baseline file, for messages.
        note: an extra explanation (the direction differs from the stored one, the means
            only were compared and why, the fingerprint differs and how).
        samples: this run's per-sample values (6 significant digits), or None.
        ci: the paired gate's 95% confidence interval of the mean ``delta`` (same units
            and sign as :attr:`delta`), or None when the means only were compared.
        fingerprint: what this run measured (:func:`modelaudit.fingerprints.fingerprint`),
            stored with the value by an update run.
        changed: the parts of the fingerprint that differ from the stored one (``"model"``,
            ``"data"``, ``"method"``, ``"layer"``, ``"versions"``).
    """

    key: str
    name: str
    value: float
    direction: Direction
    tolerance: float
    baseline: float | None
    status: Status
    source: str | None = None
    note: str = ""
    samples: tuple[float, ...] | None = None
    ci: tuple[float, float] | None = None
    fingerprint: dict[str, str] | None = dataclasses.field(default=None, hash=False)
    changed: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether this comparison lets the test pass."""
        return self.status in _PASSING

    @property
    def delta(self) -> float | None:
        """``value - baseline`` (None without a baseline)."""
        if self.baseline is None or not math.isfinite(self.value):
            return None
        return self.value - self.baseline

    @property
    def allowed(self) -> float | None:
        """The largest change in the bad direction that still passes (``tol * |baseline|``)."""
        return None if self.baseline is None else self.tolerance * abs(self.baseline)

    def reason(self) -> str:
        """This comparison in one line, as a failure lists it.

        Example:
            >>> Comparison("t::m", "m", 0.5, "higher", 0.05, 0.8, "regressed", "b.json").reason()
            'regressed: obtained 0.5, baseline 0.8 (t::m in b.json), delta -0.3 (-37.5%; allowed: -0.04)'
            >>> Comparison("t::m", "m", 0.52, "higher", 0.05, 0.6, "regressed", samples=(0.52,) * 64,
            ...            ci=(-0.1, -0.06)).reason()
            'regressed: mean 0.52 vs baseline 0.6 on the same 64 samples (t::m), delta -0.08 (95% CI -0.1 to -0.06; allowed: -0.03)'
        """
        where = f"{self.key} in {self.source}" if self.source else self.key
        if self.status == "invalid":
            return f"{self.value} is not a finite number: a baseline can neither check nor store it"
        if self.status == "missing":
            return f"no baseline entry ({where}); obtained {format_number(self.value)}"
        if self.status in ("recorded", "updated"):
            return f"{self.status}: {format_number(self.value)}"
        assert self.baseline is not None and self.delta is not None and self.allowed is not None
        sign = -1.0 if self.direction == "higher" else 1.0
        allowed = f"allowed: {format_number(sign * self.allowed, signed=True)}"
        delta = format_number(self.delta, signed=True)
        if self.ci is not None and self.samples is not None:
            low, high = (format_number(x) for x in self.ci)
            text = (
                f"{self.status}: mean {format_number(self.value)} vs baseline "
                f"{format_number(self.baseline)} on the same {len(self.samples)} samples "
                f"({where}), delta {delta} ({round(100 * CONFIDENCE)}% CI {low} to {high}; "
                f"{allowed})"
            )
        else:
            rel = (
                f"{format_percent(self.delta / abs(self.baseline), signed=True)}; "
                if self.baseline
                else ""
            )
            text = (
                f"{self.status}: obtained {format_number(self.value)}, baseline "
                f"{format_number(self.baseline)} ({where}), delta {delta} ({rel}{allowed})"
            )
        return f"{text}; {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (non-finite numbers become None), plus delta and passed."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out["value"] = self.value if math.isfinite(self.value) else None
        out["samples"] = None if self.samples is None else list(self.samples)
        out["ci"] = None if self.ci is None else list(self.ci)
        out["changed"] = list(self.changed)
        out["delta"] = self.delta
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of :meth:`to_dict` (extra keys such as ``delta`` are ignored)."""
        value, samples, ci = data.get("value"), data.get("samples"), data.get("ci")
        fingerprint = data.get("fingerprint")
        return cls(
            key=str(data["key"]),
            name=str(data["name"]),
            value=float("nan") if value is None else float(value),
            direction=normalize_direction(data["direction"]),
            tolerance=float(data["tolerance"]),
            baseline=None if data.get("baseline") is None else float(data["baseline"]),
            status=cast(Status, data["status"]),
            source=data.get("source"),
            note=str(data.get("note") or ""),
            samples=None if samples is None else tuple(float(x) for x in samples),
            ci=None if ci is None else (float(ci[0]), float(ci[1])),
            fingerprint=None if fingerprint is None else dict(fingerprint),
            changed=tuple(str(x) for x in data.get("changed") or ()),
        )


def paired_bootstrap(
    differences: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of paired ``differences``.

    The resampling indices are ``numpy.random.default_rng(seed).integers(0, n, size=
    (resamples, n))`` (drawn in blocks of rows, which gives the same stream), the interval
    is ``numpy.quantile`` of the resampled means at ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2``: the same inputs always give the same interval.

    Raises:
        InvalidInputError: no differences, a non-finite one, or a bad ``resamples`` /
            ``confidence``.

    Example:
        >>> paired_bootstrap([-0.1, -0.1, -0.1])  # equal differences: no uncertainty
        (-0.1, -0.1)
        >>> low, high = paired_bootstrap([0.02, -0.03, 0.01, -0.01, 0.04, -0.02])
        >>> low < 0 < high
        True
    """
    import numpy as np

    diffs = np.asarray(differences, dtype=np.float64).reshape(-1)
    if diffs.size == 0 or not np.isfinite(diffs).all():
        raise InvalidInputError("paired_bootstrap needs at least one difference, all finite")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InvalidInputError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])  # every resample has this mean, exactly
    n = diffs.size
    rng = np.random.default_rng(seed)
    block = max(1, 1_000_000 // n)  # rows per block: bounded memory for large n
    means = np.empty(resamples)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        means[start : start + rows] = diffs[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _paired_status(
    gain: float, allowed: float, differences: Sequence[float], sign: float
) -> tuple[Status, tuple[float, float]]:
    """The paired gate: large (``gain`` beyond ``allowed``) and significant (CI off 0)."""
    low, high = paired_bootstrap(differences)
    gain_low, gain_high = sorted((sign * low, sign * high))
    if gain < -allowed and gain_high < 0:
        return "regressed", (low, high)
    if gain > allowed and gain_low > 0:
        return "improved", (low, high)
    return "ok", (low, high)


def _means_only_note(stored: BaselineEntry, samples: Sequence[float] | None) -> str:
    if stored.samples is None and samples is None:
        return ""
    if stored.samples is None:
        return (
            "the baseline stores no per-sample values: compared the means only (update "
            "the baseline to compare sample by sample)"
        )
    run = "one value" if samples is None else str(len(samples))
    return (
        f"the baseline has {len(stored.samples)} samples, this run {run}: compared the means only"
    )


def compare_to_entry(
    key: str,
    value: float,
    entry: BaselineEntry | None,
    *,
    direction: str = "higher",
    tolerance: float | None = None,
    name: str | None = None,
    source: str | None = None,
    samples: Sequence[float] | None = None,
    fingerprint: Mapping[str, str] | None = None,
) -> Comparison:
    """Compare ``value`` with a stored entry (or with nothing).

    The tolerance applied is ``tolerance`` when given, else the entry's, else 0.05. The
    direction must agree with the entry's: a changed direction changes what the gate
    means, so it fails as ``"regressed"`` (with a note) until the baseline is updated.
    With ``samples`` (``value`` is their mean) and an entry with as many samples, the
    gate is paired (see the module docstring); otherwise the means are compared.

    Example:
        >>> e = BaselineEntry(0.5, "lower", 0.1)
        >>> compare_to_entry("k", 0.54, e, direction="lower").status
        'ok'
        >>> compare_to_entry("k", 0.56, e, direction="lower").status
        'regressed'
        >>> paired = BaselineEntry(0.5, "higher", 0.05, samples=(0.4, 0.5, 0.6))
        >>> compare_to_entry("k", 0.4, paired, samples=(0.3, 0.4, 0.5)).status
        'regressed'
        >>> compare_to_entry("k", 0.4, paired, samples=(0.4, 0.5, 0.3)).status  # one drop
        'ok'
    """
    short = name if name is not None else key.rsplit("::", 1)[-1]
    wanted = normalize_direction(direction)
    if tolerance is not None:
        tol = validate_tolerance(tolerance)
    elif entry is not None:
        tol = entry.tolerance
    else:
        tol = 0.05
    number = float(value)
    kept = None if samples is None else round_samples(samples)
    current = None if fingerprint is None else dict(fingerprint)
    changed: tuple[str, ...] = ()
    fp_note = ""
    if entry is not None and entry.fingerprint is not None and current is not None:
        changed, fp_note = describe_difference(entry.fingerprint, current)

    def result(
        status: Status, base: float | None, note: str = "", ci: tuple[float, float] | None = None
    ) -> Comparison:
        note = "; ".join(x for x in (note, fp_note) if x)
        return Comparison(
            key, short, number, wanted, tol, base, status, source, note, kept, ci, current, changed
        )

    if not math.isfinite(number):
        return result("invalid", None if entry is None else entry.value)
    if entry is None:
        return result("missing", None)
    if entry.direction != wanted:
        note = f"the baseline says {entry.direction} is better, the test now says {wanted}"
        return result("regressed", entry.value, note)
    allowed = tol * abs(entry.value)
    sign = 1.0 if wanted == "higher" else -1.0
    gain = sign * (number - entry.value)
    if kept is not None and entry.samples is not None and len(kept) == len(entry.samples):
        diffs = [c - b for c, b in zip(kept, entry.samples, strict=True)]
        status, ci = _paired_status(gain, allowed, diffs, sign)
        return result(status, entry.value, ci=ci)
    note = _means_only_note(entry, kept)
    if gain < -allowed:
        return result("regressed", entry.value, note)
    if gain > allowed:
        return result("improved", entry.value, note)
    return result("ok", entry.value, note)


class Baseline:
    """A mapping of metric id -> :class:`BaselineEntry`, loaded from / saved to JSON.

    Args:
        entries: initial entries.
        path: the file it was loaded from (used by :meth:`save` and in messages).
        metadata: free-form JSON object kept in the file.
        exists: whether ``path`` existed when loaded (messages say so when it did not).
    """

    def __init__(
        self,
        entries: Mapping[str, BaselineEntry] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        exists: bool = True,
    ) -> None:
        self.entries: dict[str, BaselineEntry] = dict(entries or {})
        self.path = None if path is None else Path(path)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.exists = exists

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __getitem__(self, key: str) -> BaselineEntry:
        return self.entries[key]

    def __repr__(self) -> str:
        return f"Baseline({len(self)} metrics, path={str(self.path) if self.path else None!r})"

    @property
    def source(self) -> str | None:
        """How messages name the file (notes when it does not exist yet)."""
        if self.path is None:
            return None
        return str(self.path) if self.exists else f"{self.path} (file does not exist yet)"

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, missing_ok: bool = True) -> Baseline:
        """Read and validate a baseline file; a missing file gives an empty baseline.

        Raises:
            BaselineError: unreadable, not JSON, or not of the documented schema; or
                missing while ``missing_ok`` is False.

        Example:
            >>> import tempfile, pathlib
            >>> bad = pathlib.Path(tempfile.mkdtemp()) / "b.json"
            >>> _ = bad.write_text('{"version": 1, "metrics": {"a": {"value": "x"}}}')
            >>> Baseline.load(bad)
            Traceback (most recent call last):
            ...
            modelaudit.errors.BaselineError: baseline file ...b.json is invalid: metric 'a': ...
        """
        file = Path(path)
        if not file.exists():
            if missing_ok:
                return cls(path=file, exists=False)
            raise BaselineError(f"baseline file {file} does not exist")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"cannot read baseline file {file}: {exc}") from exc
        fix = "fix it by hand, or delete it and re-create it with --audit-update-baseline"
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise BaselineError(
                f"baseline file {file} is not valid JSON (line {exc.lineno}, column "
                f"{exc.colno}: {exc.msg}); {fix}"
            ) from exc
        except ValueError as exc:
            raise BaselineError(f"baseline file {file} is invalid: {exc}; {fix}") from exc
        try:
            return cls.from_dict(data, path=file)
        except BaselineError as exc:
            raise BaselineError(f"baseline file {file} is invalid: {exc}; {fix}") from exc

    @classmethod
    def from_dict(cls, data: Any, *, path: str | os.PathLike[str] | None = None) -> Baseline:
        """Validate a parsed baseline document (see the module docstring for the schema).

        Raises:
            BaselineError: naming the first problem found.
        """
        if not isinstance(data, dict):
            raise BaselineError(f"the top level must be a JSON object, got {_kind(data)}")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise BaselineError(f"unknown top-level keys {unknown}; allowed: {sorted(_TOP_KEYS)}")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise BaselineError(
                f"'version' must be the integer {BASELINE_VERSION}, got {version!r}"
            )
        if version != BASELINE_VERSION:
            newer = " (written by a newer modelaudit?)" if version > BASELINE_VERSION else ""
            raise BaselineError(
                f"unsupported version {version}{newer}; this modelaudit reads version "
                f"{BASELINE_VERSION}"
            )
        metrics = data.get("metrics")
        if not isinstance(metrics, dict):
            raise BaselineError(f"'metrics' must be a JSON object, got {_kind(metrics)}")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BaselineError(f"'metadata' must be a JSON object, got {_kind(metadata)}")
        entries = {key: _entry(key, raw) for key, raw in metrics.items()}
        return cls(entries, path=path, metadata=metadata, exists=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (metrics sorted by id)."""
        out: dict[str, Any] = {
            "version": BASELINE_VERSION,
            "metrics": {k: self.entries[k].to_dict() for k in sorted(self.entries)},
        }
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the baseline atomically to ``path`` (default: where it was loaded from).

        Example:
            >>> import tempfile, pathlib
            >>> target = pathlib.Path(tempfile.mkdtemp()) / "baseline.json"
            >>> b = Baseline(path=target)
            >>> b.set("t::m", 0.25, direction="lower", tolerance=0.1)
            >>> Baseline.load(b.save())["t::m"]
            BaselineEntry(value=0.25, direction='lower', tolerance=0.1)
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise BaselineError("no path to save the baseline to; pass save(path)")
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
        text = _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
        written = atomic_write_text(target, text)
        self.path, self.exists = written, True
        return written

    def set(
        self,
        key: str,
        value: float,
        *,
        direction: str,
        tolerance: float,
        samples: Sequence[float] | None = None,
        fingerprint: Mapping[str, str] | None = None,
    ) -> None:
        """Store (or replace) one entry, validating it (samples rounded to 6 digits)."""
        raw: dict[str, Any] = {"value": value, "direction": direction, "tolerance": tolerance}
        if samples is not None:
            raw["samples"] = list(round_samples(samples))
            raw["n"] = len(raw["samples"])
        if fingerprint is not None:
            raw["fingerprint"] = dict(fingerprint)
        self.entries[key] = _entry(key, raw)

    def compare(
        self,
        key: str,
        value: float,
        *,
        direction: str = "higher",
        tolerance: float | None = None,
        name: str | None = None,
        samples: Sequence[float] | None = None,
        fingerprint: Mapping[str, str] | None = None,
    ) -> Comparison:
        """Compare ``value`` with the entry ``key``; see :func:`compare_to_entry`."""
        return compare_to_entry(
            key,
            value,
            self.entries.get(key),
            direction=direction,
            tolerance=tolerance,
            name=name,
            source=self.source,
            samples=samples,
            fingerprint=fingerprint,
        )

    def apply(self, comparisons: list[Comparison]) -> int:
        """Store the values of ``comparisons`` (finite ones) with their per-sample values and
        fingerprints; return how many were stored."""
        stored = 0
        for c in comparisons:
            if math.isfinite(c.value):
                self.set(
                    c.key,
                    c.value,
                    direction=c.direction,
                    tolerance=c.tolerance,
                    samples=c.samples,
                    fingerprint=c.fingerprint,
                )
                stored += 1
        return stored


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards updates of the baseline ``path``: ``<name>.lock`` beside it.

    Example:
        >>> lock_path("gates/baseline.json").as_posix()
        'gates/baseline.json.lock'
    """
    file = Path(path)
    return file.with_name(f"{file.name}.lock")


def update_baseline_file(
    path: str | os.PathLike[str],
    comparisons: list[Comparison],
    *,
    timeout: float = LOCK_TIMEOUT,
) -> int:
    """Merge the finite values of ``comparisons`` into the baseline file ``path``.

    Under an exclusive lock on :func:`lock_path` the file is re-read, the entries are
    stored (replacing entries with the same ids, keeping all others) and the file is
    written atomically, so concurrent updaters never lose each other's entries. The lock
    is released when this process ends, even when it is killed.

    Returns:
        How many entries were stored.

    Raises:
        BaselineError: the lock was not free within ``timeout`` seconds, the lock file
            cannot be created, or the existing file is invalid.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "baseline.json"
        >>> c = compare_to_entry("t::m", 0.5, None)
        >>> update_baseline_file(target, [c]), Baseline.load(target)["t::m"].value
        (1, 0.5)
    """
    file = Path(path)
    lock = lock_path(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(lock, timeout=timeout):
            baseline = Baseline.load(file)
            stored = baseline.apply(comparisons)
            baseline.save(file)
    except filelock.Timeout as exc:
        raise BaselineError(
            f"cannot update baseline file {file}: its lock {lock} is still held by another "
            f"process after {timeout:g} s (another `pytest --audit-update-baseline` run?). "
            "Let that run finish, or stop it, then re-run the update"
        ) from exc
    except (OSError, NotImplementedError) as exc:
        raise BaselineError(
            f"cannot lock baseline file {file} for the update (lock file {lock}): {exc}. "
            "The baseline's directory must be writable and support file locks"
        ) from exc
    return stored


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed in a baseline file (values must be finite)")


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _entry(key: object, raw: object) -> BaselineEntry:
    if not isinstance(key, str) or not key:
        raise BaselineError(f"metric ids must be non-empty strings, got {key!r}")
    if not isinstance(raw, dict):
        raise BaselineError(f"metric {key!r}: expected an object, got {_kind(raw)}")
    missing = sorted(_ENTRY_KEYS - set(raw))
    extra = sorted(set(raw) - _ENTRY_KEYS - _OPTIONAL_KEYS)
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unknown {extra}"] if extra else []
        )
        raise BaselineError(
            f"metric {key!r}: {' and '.join(parts)} keys; each metric needs exactly "
            f"{sorted(_ENTRY_KEYS)} (and may have {sorted(_OPTIONAL_KEYS)})"
        )
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BaselineError(f"metric {key!r}: 'value' must be a finite number, got {value!r}")
    try:
        direction = normalize_direction(raw["direction"])
        tolerance = validate_tolerance(raw["tolerance"])
    except InvalidInputError as exc:
        raise BaselineError(f"metric {key!r}: {exc}") from exc
    samples = _entry_samples(key, raw)
    fingerprint = None
    if "fingerprint" in raw:
        try:
            fingerprint = validate_fingerprint(raw["fingerprint"], name="'fingerprint'")
        except InvalidInputError as exc:
            raise BaselineError(f"metric {key!r}: {exc}") from exc
    return BaselineEntry(float(value), direction, tolerance, samples, fingerprint)


def _entry_samples(key: str, raw: Mapping[str, Any]) -> tuple[float, ...] | None:
    if "samples" not in raw and "n" not in raw:
        return None
    samples, n = raw.get("samples"), raw.get("n")
    if not isinstance(samples, list) or not samples:
        raise BaselineError(
            f"metric {key!r}: 'samples' must be a non-empty array of numbers (with 'n', "
            f"their count), got {_kind(samples)}"
        )
    for i, x in enumerate(samples):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise BaselineError(
                f"metric {key!r}: 'samples' must hold finite numbers, got {x!r} at index {i}"
            )
    if isinstance(n, bool) or not isinstance(n, int) or n != len(samples):
        raise BaselineError(
            f"metric {key!r}: 'n' must be the number of samples ({len(samples)}), got {n!r}"
        )
    return tuple(float(x) for x in samples)
