"""Audit records: the structured result of every check, and how they reach a report.

Assertions build an :class:`AuditRecord` for each check, pass or fail, and :func:`emit` it.
Whoever wants the records (the pytest plugin, a notebook) opens :func:`collect_records` and
receives every record emitted inside the block. Records carry plain numbers for JSON and,
optionally, small CPU tensors (images, heat maps, boxes) for the HTML report's overlays.

Example:
    >>> from modelaudit.records import AuditRecord, collect_records, emit
    >>> with collect_records() as got:
    ...     _ = emit(AuditRecord(check="pointing_game", passed=True, values=[1.0, 1.0],
    ...                      bound=0.9, direction="at_least", obtained=1.0))
    >>> [r.check for r in got]
    ['pointing_game']
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Literal

import torch

__all__ = ["AuditRecord", "SampleViews", "collect_records", "emit"]

Direction = Literal["at_least", "at_most"]


@dataclasses.dataclass
class SampleViews:
    """What the report needs to draw each sample: CPU tensors, detached.

    Attributes:
        images: (N, C, H, W) inputs in [0, 1] (or None when the check saw no images).
        maps: (N, H, W) heat maps in [0, 1].
        boxes: (N, 4) XYXY pixel boxes, or None.
        masks: (N, H, W) boolean masks, or None.
    """

    images: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None


@dataclasses.dataclass
class AuditRecord:
    """The result of one check.

    Attributes:
        check: the check's name, e.g. ``"mass_in_box"``.
        passed: whether the bound held under the aggregation rule.
        values: the metric per sample (or a single value).
        bound: the threshold the check compared against (None for checks without one).
        direction: ``"at_least"`` (higher is better) or ``"at_most"``.
        obtained: the aggregated value compared with ``bound``.
        failing: indices of the samples whose own value broke the bound.
        aggregate: how per-sample values were combined (``"all"``, ``"mean"``, ``"fraction"``).
        chance: the value a uniform (uninformative) map would get, when defined.
        message: the human-readable explanation (the failure text when it failed).
        overlays: paths of overlay PNGs written for this record.
        details: anything else worth keeping (method, layer, per-step values...).
        samples: tensors for the report; not serialised to JSON.
    """

    check: str
    passed: bool
    values: list[float]
    bound: float | None = None
    direction: Direction | None = None
    obtained: float | None = None
    failing: list[int] = dataclasses.field(default_factory=list)
    aggregate: str = "all"
    chance: float | None = None
    message: str = ""
    overlays: list[str] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    samples: SampleViews | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN and infinities become None)."""
        out = dataclasses.asdict(dataclasses.replace(self, samples=None))
        out.pop("samples")
        return _json_safe(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.detach().cpu().tolist())
    return value


_COLLECTORS: ContextVar[tuple[list[AuditRecord], ...]] = ContextVar(
    "modelaudit_collectors", default=()
)


def emit(record: AuditRecord) -> AuditRecord:
    """Hand ``record`` to every open :func:`collect_records` block and return it."""
    for sink in _COLLECTORS.get():
        sink.append(record)
    return record


@contextlib.contextmanager
def collect_records() -> Iterator[list[AuditRecord]]:
    """Collect every record emitted inside the block (blocks nest; each gets all)."""
    sink: list[AuditRecord] = []
    token = _COLLECTORS.set((*_COLLECTORS.get(), sink))
    try:
        yield sink
    finally:
        _COLLECTORS.reset(token)
