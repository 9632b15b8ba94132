"""Exception types shared by every layer of modelaudit.

All errors raised for bad input derive from :class:`ModelAuditError`, so a user can catch
them in one place; each also derives from the matching built-in (``ValueError``,
``LookupError``, ``RuntimeError``) so ordinary ``except`` clauses keep working.
A failed audit is an :class:`AuditFailure`, an ``AssertionError`` that pytest reports as a
test failure and that carries a structured :class:`~modelaudit.records.AuditRecord`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelaudit.records import AuditRecord

__all__ = [
    "AuditFailure",
    "BaselineError",
    "HookError",
    "InvalidInputError",
    "LayerNotFoundError",
    "ModelAuditError",
]


class ModelAuditError(Exception):
    """Base class of every error modelaudit raises for bad input or misuse."""


class InvalidInputError(ModelAuditError, ValueError):
    """An argument has the wrong shape, range or value (NaN input, box outside the image...)."""


class LayerNotFoundError(ModelAuditError, LookupError):
    """A layer name, pattern or type matched no module of the model."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class HookError(ModelAuditError, RuntimeError):
    """A hooked layer never ran, ran more often than allowed, or a hook was left behind."""


class BaselineError(ModelAuditError):
    """A baseline file is missing, corrupt or of an unknown schema version."""


class AuditFailure(AssertionError):
    """An audit check failed; ``record`` holds the structured result.

    Example:
        >>> from modelaudit.records import AuditRecord
        >>> rec = AuditRecord(check="mass_in_box", passed=False, values=[0.1], bound=0.5,
        ...                   direction="at_least", obtained=0.1, failing=[0])
        >>> err = AuditFailure("mass in box too low", rec)
        >>> err.record.failing
        [0]
    """

    def __init__(self, message: str, record: AuditRecord | None = None) -> None:
        super().__init__(message)
        self.record = record
