"""The JSON export of a run, for dashboards: every test's outcome, metrics and records.

Schema (``version`` 1)::

    {"version": 1, "generated": "<ISO 8601 time>",
     "summary": {"passed": 3, "failed": 1, ...},
     "tests": [{"nodeid": ..., "outcome": ..., "duration": ..., "message": ...,
                "metrics": [Comparison.to_dict(), ...],
                "records": [AuditRecord.to_json() + {"overlay_files": [...]}, ...],
                "attachments": [{"name": ..., "path": ...}, ...]}]}

Records are exactly :meth:`~modelaudit.checks.record.AuditRecord.to_json` (check,
assertion, passed, values, items, unit, bound, direction, rule, message...) plus
``overlay_files``, the PNGs written for failing samples. Images are left out (they are in
the HTML report and those files); non-finite numbers are written as null, so the file is
strict JSON.

Example:
    >>> from modelaudit.report.entries import TestEntry
    >>> doc = export_dict([TestEntry("t::a", "failed")])
    >>> doc["version"], doc["summary"], doc["tests"][0]["outcome"]
    (1, {'failed': 1}, 'failed')
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelaudit._atomic import atomic_write_text
from modelaudit.report.entries import TestEntry, sort_entries

__all__ = ["EXPORT_VERSION", "export_dict", "write_json"]

EXPORT_VERSION = 1


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def export_dict(entries: Iterable[TestEntry]) -> dict[str, Any]:
    """The JSON document for ``entries`` (failing tests first)."""
    ordered = sort_entries(entries)
    summary: dict[str, int] = {}
    for e in ordered:
        summary[e.outcome] = summary.get(e.outcome, 0) + 1
    tests = [
        {
            "nodeid": e.nodeid,
            "outcome": e.outcome,
            "duration": e.duration,
            "message": e.message,
            "metrics": [m.to_dict() for m in e.metrics],
            "records": [{**v.record, "overlay_files": list(v.files)} for v in e.records],
            "attachments": [{"name": a.name, "path": a.path} for a in e.attachments],
        }
        for e in ordered
    ]
    return _clean(
        {
            "version": EXPORT_VERSION,
            "generated": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "summary": summary,
            "tests": tests,
        }
    )


def write_json(entries: Iterable[TestEntry], path: str | os.PathLike[str]) -> Path:
    """Write :func:`export_dict` to ``path`` atomically; return the path.

    Example:
        >>> import tempfile, pathlib, json
        >>> out = write_json([], pathlib.Path(tempfile.mkdtemp()) / "records.json")
        >>> json.loads(out.read_text())["tests"]
        []
    """
    text = json.dumps(export_dict(entries), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)
