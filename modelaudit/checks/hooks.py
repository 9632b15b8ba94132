"""Hook hygiene check: nothing is left hooked on a model after the code under test ran.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.checks.hooks import assert_no_hooks_left
    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> assert_no_hooks_left(net).passed
    True
    >>> h = net[0].register_forward_hook(lambda m, args, out: None)
    >>> assert_no_hooks_left(net)
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_no_hooks_left: no hook may be left on the model beyond those it had; 1 of 1 module fail.
      failing modules:
        '0': forward x1 (<lambda>)
    Remove them with the handle their register_* call returned (handle.remove()), ideally in a `finally`, or register them inside `with modelaudit.capture(model, layers):`.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from modelaudit.checks.record import AuditRecord, conclude
from modelaudit.hooks.inventory import hooks_left

__all__ = ["assert_no_hooks_left"]

REMOVE_HINT = (
    "Remove them with the handle their register_* call returned (handle.remove()), ideally "
    "in a `finally`, or register them inside `with modelaudit.capture(model, layers):`."
)


def assert_no_hooks_left(
    model: nn.Module, *, baseline: Mapping[str, Mapping[str, int]] | None = None
) -> AuditRecord:
    """Fail if any submodule carries a hook beyond ``baseline``.

    Args:
        model: the model to check.
        baseline: hooks the model is allowed to have, as returned by
            :func:`modelaudit.hooks_by_module` before the code under test ran (a model may
            legitimately use hooks, e.g. the old ``spectral_norm``).

    Returns:
        The passing record.

    Raises:
        AuditFailure: naming every module with extra hooks, their kinds, counts and functions.
    """
    __tracebackhide__ = True
    left = hooks_left(model, baseline=baseline)
    names = list(left)
    return conclude(
        AuditRecord(
            check="no_hooks_left",
            assertion="assert_no_hooks_left",
            passed=not left,
            values=tuple(float(n) for n, _ in left.values()) or (0.0,),
            items=tuple(names) or ("(model)",),
            unit="module",
            direction="lower",
            obtained=float(sum(n for n, _ in left.values())),
            failing=tuple(range(len(names))),
            rule="no hook may be left on the model beyond those it had",
            reasons=tuple(text for _, text in left.values()),
            hint=REMOVE_HINT if left else "",
            details={"hooks_left": {name: text for name, (_, text) in left.items()}},
        )
    )
