"""Watch models for hooks left behind: the object behind the ``audit_capture`` fixture.

A :class:`HookWatcher` remembers the hooks each watched model had when watching began (a
model's own hooks, e.g. from ``weight_norm``, are allowed), opens
:func:`modelaudit.hooks.capture` blocks on watched models, and at the end says which hooks
were added and never removed, removing them so the next test starts clean.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> watcher = HookWatcher()
    >>> _ = watcher.watch(net)
    >>> _ = net[0].register_forward_hook(lambda m, args, out: None)
    >>> print(watcher.failure())  # doctest: +ELLIPSIS
    audit_capture: 1 hook(s) left on the model: '0': forward x1 (<lambda>). They have been removed now; ...
    >>> watcher.failure() is None  # removed: nothing left
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from modelaudit.hooks.inventory import HookId

__all__ = ["HookWatcher"]

_ADVICE = (
    "They have been removed now; remove every hook you register yourself (use "
    "`with audit_capture(model, layers):`, or call handle.remove() in a finally)."
)


class HookWatcher:
    """Watches models for hooks added and not removed; callable like ``capture``.

    ``watcher(model, "layer4")`` is ``modelaudit.hooks.capture(model, "layer4")`` on a
    model that is now watched.
    """

    def __init__(self) -> None:
        self._watched: dict[int, tuple[nn.Module, dict[str, dict[str, int]], frozenset[HookId]]]
        self._watched = {}

    def watch(self, model: nn.Module) -> nn.Module:
        """Watch ``model`` (its current hooks are allowed) and return it."""
        from modelaudit.hooks.inventory import hook_ids, hooks_by_module

        if id(model) not in self._watched:
            self._watched[id(model)] = (model, hooks_by_module(model), hook_ids(model))
        return model

    def __call__(self, model: nn.Module, layers: Any, **kwargs: Any) -> Any:
        """Open ``modelaudit.hooks.capture(model, layers, **kwargs)`` on a watched model."""
        from modelaudit.hooks.recording import capture

        self.watch(model)
        return capture(model, layers, **kwargs)

    def leftovers(self) -> list[str]:
        """Describe, then remove, the hooks added to watched models since watching began."""
        from modelaudit.hooks.inventory import describe_hooks_left, remove_hooks_since

        found = []
        for model, allowed, before in self._watched.values():
            text = describe_hooks_left(model, baseline=allowed)
            if text is not None:
                found.append(text)
            remove_hooks_since(model, before)
        return found

    def failure(self) -> str | None:
        """The failure text for hooks left behind (removing them), or None when clean."""
        left = self.leftovers()
        return f"audit_capture: {'; '.join(left)}. {_ADVICE}" if left else None
