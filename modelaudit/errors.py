"""Exception types shared by every layer of modelaudit.

All errors raised for bad input derive from :class:`ModelAuditError`, so a user can catch
them in one place; each also derives from the matching built-in (``ValueError``,
``LookupError``, ``RuntimeError``) so ordinary ``except`` clauses keep working.
A failed audit is an :class:`AuditFailure`, an ``AssertionError`` that pytest reports as a
test failure and that carries a structured :class:`~modelaudit.checks.record.AuditRecord`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelaudit.checks.record import AuditRecord

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
    """An audit check failed; ``record`` holds the structured result, ``str()`` its text.

    Raised by every ``assert_*`` through :func:`modelaudit.checks.record.decide`, so pytest
    reports it as an ordinary assertion failure.

    Example:
        >>> from modelaudit.checks.record import AuditRecord
        >>> rec = AuditRecord("mass_in_box", "assert_mass_in_box", False, (0.1,), failing=(0,),
        ...                   bound=0.5, direction="higher", obtained=0.1,
        ...                   rule="mass_in_box >= 0.5 must hold for every sample")
        >>> err = AuditFailure(rec)
        >>> err.record.failing, str(err).splitlines()[0]
        ((0,), 'assert_mass_in_box: mass_in_box >= 0.5 must hold for every sample; 1 of 1 sample fail.')
    """

    def __init__(self, record: AuditRecord) -> None:
        super().__init__(record.message)
        self.record = record
