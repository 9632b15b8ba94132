"""Run-wide settings that the pytest plugin (or a user) sets and the library reads.

Settings live in a :class:`contextvars.ContextVar`, so they are safe across threads and
restored exactly when a :func:`use_settings` block exits.

Example:
    >>> from modelaudit.settings import current_settings, use_settings
    >>> before = current_settings()
    >>> with use_settings(report_dir="my-report"):
    ...     str(current_settings().report_dir)
    'my-report'
    >>> current_settings() == before
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

__all__ = ["Settings", "current_settings", "use_settings"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the library needs to know about the run.

    Attributes:
        report_dir: where assertions write overlay PNGs of failing samples (None: nowhere).
        device: default device for models and inputs the library creates.
        tolerance: default relative tolerance of baseline comparisons.
    """

    report_dir: Path | None = None
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    tolerance: float = 0.05


_SETTINGS: ContextVar[Settings] = ContextVar("modelaudit_settings", default=Settings())  # noqa: B039 (frozen)


def current_settings() -> Settings:
    """Return the settings in force."""
    return _SETTINGS.get()


@contextlib.contextmanager
def use_settings(**changes: Any) -> Iterator[Settings]:
    """Override some settings inside a ``with`` block; the previous ones come back after."""
    if "report_dir" in changes and changes["report_dir"] is not None:
        changes["report_dir"] = Path(changes["report_dir"])
    if "device" in changes:
        changes["device"] = torch.device(changes["device"])
    token = _SETTINGS.set(dataclasses.replace(_SETTINGS.get(), **changes))
    try:
        yield _SETTINGS.get()
    finally:
        _SETTINGS.reset(token)
