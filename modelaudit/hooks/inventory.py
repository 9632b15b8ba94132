"""Count, list and temporarily disable the hooks a model carries.

Torch keeps a module's hooks in ordered dicts on the module (``_forward_hooks``,
``_forward_pre_hooks``, ``_backward_hooks``, ``_state_dict_hooks``...) and a tensor's in
``_backward_hooks`` / ``_post_accumulate_grad_hooks``. :func:`hook_count` and
:func:`hooks_left` read those dicts, so they see hooks registered by anyone (a leaked hook
from an explanation tool included), not only modelaudit's own. The verdict on them is
:func:`modelaudit.assert_no_hooks_left`.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.hooks.inventory import hook_count, hooks_left
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> handle = net[1].register_forward_hook(lambda module, args, output: None)
    >>> hook_count(net)["forward"]
    1
    >>> hooks_left(net)
    {"'1'": (1, 'forward x1 (<lambda>)')}
    >>> handle.remove()
    >>> hooks_left(net)
    {}
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from torch import nn

from modelaudit.hooks.layers import check_module

__all__ = [
    "HookId",
    "ModuleHook",
    "describe_hooks_left",
    "disabled_hooks",
    "hook_count",
    "hook_ids",
    "hooks_by_module",
    "hooks_left",
    "list_hooks",
    "remove_hooks_since",
]

_HOOK_ATTR = re.compile(r"^_(?P<kind>[a-z_]+?)_hooks(?P<flag>_with_kwargs|_always_called)?$")
# The kinds every nn.Module has in this torch version, so hook_count's keys are stable.
_MODULE_KINDS: tuple[str, ...] = tuple(
    m["kind"] + (m["flag"] or "")
    for attr in vars(nn.Module())
    if (m := _HOOK_ATTR.match(attr)) is not None
)
# Hooks on a module's own parameters and buffers (Tensor.register_hook and
# Tensor.register_post_accumulate_grad_hook).
_TENSOR_KINDS = {
    "parameter_grad": "_backward_hooks",
    "parameter_post_accumulate_grad": "_post_accumulate_grad_hooks",
}
# Kinds that change what a forward or backward pass computes (what disabled_hooks stashes).
RUNTIME_KINDS: tuple[str, ...] = ("forward_pre", "forward", "backward_pre", "backward")


def _module_kind_attrs(module: nn.Module) -> dict[str, str]:
    """``{kind: attribute}`` of every hook dict on ``module`` (flag dicts included)."""
    out = {}
    for attr, value in vars(module).items():
        m = _HOOK_ATTR.match(attr)
        if m is not None and isinstance(value, dict):
            out[m["kind"] + (m["flag"] or "")] = attr
    return out


def _display(name: str) -> str:
    return repr(name) if name else "the model itself"


def hooks_by_module(model: nn.Module) -> dict[str, dict[str, int]]:
    """Non-zero hook counts per qualified module name and kind.

    Hooks on a module's own parameters and buffers count under that module as
    ``parameter_grad`` / ``parameter_post_accumulate_grad``. The root is named ``""``.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> h = net[0].weight.register_hook(lambda grad: grad)
        >>> hooks_by_module(net)
        {'0': {'parameter_grad': 1}}
        >>> h.remove()
    """
    out: dict[str, dict[str, int]] = {}
    for name, module in check_module(model, "hooks_by_module").named_modules():
        counts: dict[str, int] = {}
        for kind, attr in _module_kind_attrs(module).items():
            n = len(getattr(module, attr))
            if n:
                counts[kind] = n
        tensors = [*module._parameters.values(), *module._buffers.values()]
        for kind, attr in _TENSOR_KINDS.items():
            n = sum(len(getattr(t, attr, None) or ()) for t in tensors if t is not None)
            if n:
                counts[kind] = n
        if counts:
            out[name] = counts
    return out


def hook_count(model: nn.Module) -> dict[str, int]:
    """Total hooks per kind over every submodule (and their parameters and buffers).

    Keys are stable: every kind an ``nn.Module`` has in this torch version (``forward``,
    ``forward_pre``, ``backward``, ``backward_pre``, ``state_dict``, ``state_dict_pre``,
    ``load_state_dict_pre``, ``load_state_dict_post``...), the flag kinds
    ``forward_with_kwargs``, ``forward_always_called`` and ``forward_pre_with_kwargs`` (which
    mark hooks also counted under their main kind), and ``parameter_grad`` /
    ``parameter_post_accumulate_grad`` for tensor hooks on parameters and buffers.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> h = net[0].register_full_backward_hook(lambda m, gi, go: None)
        >>> {k: v for k, v in hook_count(net).items() if v}
        {'backward': 1}
        >>> h.remove()
        >>> sum(hook_count(net).values())
        0
    """
    totals = dict.fromkeys((*_MODULE_KINDS, *_TENSOR_KINDS), 0)
    for counts in hooks_by_module(model).values():
        for kind, n in counts.items():
            totals[kind] = totals.get(kind, 0) + n
    return totals


@dataclasses.dataclass(frozen=True)
class ModuleHook:
    """One hook registered on a module.

    Attributes:
        module: qualified name of the module (``""`` for the model itself).
        kind: ``"forward"``, ``"forward_pre"``, ``"backward"``, ``"backward_pre"``, ...
        id: the key of the hook in the module's hook dict (its handle's ``id``).
        fn: the hook callable.
        legacy: a backward hook registered with the deprecated ``register_backward_hook``.
    """

    module: str
    kind: str
    id: int
    fn: Callable[..., Any] = dataclasses.field(compare=False)
    legacy: bool = False

    def describe(self) -> str:
        """``"forward hook double_grad on 'features.0'"``-style text for error messages."""
        fn_name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        kind = self.kind.replace("_", " ")
        legacy = " (deprecated register_backward_hook)" if self.legacy else ""
        return f"{kind} hook {fn_name}{legacy} on {_display(self.module)}"


def list_hooks(model: nn.Module, kinds: Collection[str] = RUNTIME_KINDS) -> list[ModuleHook]:
    """Every module hook of the given ``kinds`` in the model, in model and call order.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> h = net[0].register_forward_pre_hook(lambda m, args: None)
        >>> [(hook.module, hook.kind) for hook in list_hooks(net)]
        [('0', 'forward_pre')]
        >>> h.remove()
    """
    out = []
    for name, module in check_module(model, "list_hooks").named_modules():
        attrs = _module_kind_attrs(module)
        for kind in kinds:
            attr = attrs.get(kind)
            if attr is None:
                continue
            legacy = kind == "backward" and getattr(module, "_is_full_backward_hook", None) is False
            for hook_id, fn in getattr(module, attr).items():
                out.append(ModuleHook(name, kind, hook_id, fn, legacy))
    return out


def hooks_left(
    model: nn.Module, *, baseline: Mapping[str, Mapping[str, int]] | None = None
) -> dict[str, tuple[int, str]]:
    """The hooks each module carries beyond ``baseline``: ``{module: (count, description)}``.

    Modules are named as messages show them (``"'layer1.0'"``, ``"the model itself"``); a
    description reads ``"forward x1 (<function>)"``. ``*_with_kwargs`` and
    ``*_always_called`` flags are described but not counted.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> before = hooks_by_module(net)
        >>> h = net[0].register_forward_hook(lambda m, args, out: None)
        >>> hooks_left(net, baseline=before)
        {"'0'": (1, 'forward x1 (<lambda>)')}
    """
    baseline = baseline or {}
    left: dict[str, tuple[int, str]] = {}
    for name, counts in hooks_by_module(model).items():
        allowed = baseline.get(name, {})
        extra = {k: n - allowed.get(k, 0) for k, n in counts.items() if n > allowed.get(k, 0)}
        if not extra:
            continue
        module = model.get_submodule(name)
        fns = {
            getattr(h.fn, "__qualname__", repr(h.fn))
            for h in list_hooks(module, [k for k in extra if not k.endswith(_FLAGS)])
            if h.module == ""
        }
        parts = ", ".join(f"{k} x{n}" for k, n in extra.items())
        named = f" ({', '.join(sorted(fns))})" if fns else ""
        count = sum(
            n for k, n in extra.items() if not k.endswith(("_with_kwargs", "_always_called"))
        )
        left[_display(name)] = (count, f"{parts}{named}")
    return left


def describe_hooks_left(
    model: nn.Module, *, baseline: Mapping[str, Mapping[str, int]] | None = None
) -> str | None:
    """Say which hooks the model carries beyond ``baseline``; ``None`` when there are none.

    One line for callers that report leaks their own way (the ``audit_capture`` fixture).

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> before = hooks_by_module(net)
        >>> h = net[0].register_forward_hook(lambda m, args, out: None)
        >>> describe_hooks_left(net, baseline=before)
        "1 hook(s) left on the model: '0': forward x1 (<lambda>)"
        >>> h.remove()
        >>> describe_hooks_left(net) is None
        True
    """
    left = hooks_left(model, baseline=baseline)
    if not left:
        return None
    total = sum(n for n, _ in left.values())
    return f"{total} hook(s) left on the model: " + "; ".join(
        f"{name}: {text}" for name, (_, text) in left.items()
    )


@contextlib.contextmanager
def disabled_hooks(
    model: nn.Module,
    *,
    kinds: Collection[str] = RUNTIME_KINDS,
    keep: Callable[[ModuleHook], bool] | None = None,
) -> Iterator[list[ModuleHook]]:
    """Temporarily remove the model's module hooks of ``kinds``; put them back, always.

    The hook dicts themselves are emptied and refilled (same objects, same order), so
    handles the model's owner holds stay valid.

    Args:
        model: the model.
        kinds: hook kinds to disable (default: forward-pre, forward, backward-pre, backward).
        keep: a predicate choosing hooks to leave active (to test one hook on its own).

    Yields:
        The hooks that were disabled.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Linear(1, 1)
        >>> h = net.register_forward_hook(lambda m, args, out: out * 0 + 7)
        >>> net(torch.ones(1, 1)).item()
        7.0
        >>> with disabled_hooks(net) as off:
        ...     net(torch.ones(1, 1)).item() == (net.weight + net.bias).item(), len(off)
        (True, 1)
        >>> net(torch.ones(1, 1)).item()
        7.0
    """
    saved: list[tuple[dict[Any, Any], list[tuple[Any, Any]]]] = []
    disabled: list[ModuleHook] = []
    try:
        for name, module in model.named_modules():
            attrs = _module_kind_attrs(module)
            for kind in kinds:
                main = attrs.get(kind)
                if main is None or not getattr(module, main):
                    continue
                hooks = list_hooks(module, [kind])
                hooks = [dataclasses.replace(h, module=name) for h in hooks]
                kept = {h.id for h in hooks if keep is not None and keep(h)}
                disabled += [h for h in hooks if h.id not in kept]
                for flag in ("", "_with_kwargs", "_always_called"):
                    attr = attrs.get(kind + flag)
                    if attr is None:
                        continue
                    table = getattr(module, attr)
                    saved.append((table, list(table.items())))
                    for key in [k for k in table if k not in kept]:
                        del table[key]
        yield disabled
    finally:
        for table, items in reversed(saved):
            table.clear()
            table.update(items)


HookId = tuple[str, str, int]
"""``(owner, kind, id)`` of one hook: the qualified name of the module (``""`` for the model
itself) or of the parameter/buffer it is on, its kind as in :func:`hook_count`, and the
``id`` of the handle its ``register_*`` call returned."""

_FLAGS = ("_with_kwargs", "_always_called")


def _hook_tables(
    model: nn.Module,
) -> Iterator[tuple[str, str, dict[Any, Any], list[dict[Any, Any]]]]:
    """``(owner, kind, hook dict, flag dicts)`` for every hook dict of the model."""
    for name, module in model.named_modules():
        attrs = _module_kind_attrs(module)
        for kind, attr in attrs.items():
            if kind.endswith(_FLAGS):
                continue  # flag dicts mirror ids of their main dict
            flags = [getattr(module, attrs[kind + f]) for f in _FLAGS if kind + f in attrs]
            yield name, kind, getattr(module, attr), flags
        for tname, tensor in [*module._parameters.items(), *module._buffers.items()]:
            if tensor is None:
                continue
            owner = f"{name}.{tname}" if name else tname
            for kind, attr in _TENSOR_KINDS.items():
                table = getattr(tensor, attr, None)
                if isinstance(table, dict):
                    yield owner, kind, table, []


def hook_ids(model: nn.Module) -> frozenset[HookId]:
    """Snapshot of every hook the model carries now (module, parameter and buffer hooks).

    Pass it to :func:`remove_hooks_since` later to remove exactly the hooks added since.
    Global hooks (``torch.nn.modules.module.register_module_forward_hook``) are not part
    of a model and not included.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> h = net[0].register_forward_hook(lambda m, args, out: None)
        >>> hook_ids(net) == {("0", "forward", h.id)}
        True
        >>> h.remove()
        >>> hook_ids(net)
        frozenset()
    """
    return frozenset(
        (owner, kind, hook_id) for owner, kind, table, _ in _hook_tables(model) for hook_id in table
    )


def remove_hooks_since(model: nn.Module, before: Collection[HookId]) -> list[HookId]:
    """Remove every hook not in the snapshot ``before`` (from :func:`hook_ids`).

    Hooks that were there at the snapshot stay, in their order; the removed ones are gone
    as if their handles' ``remove()`` had been called (their ``with_kwargs`` and
    ``always_call`` marks included). Use it to clean up after code that leaked hooks.

    Args:
        model: the model.
        before: the snapshot taken earlier with :func:`hook_ids`.

    Returns:
        The ids of the removed hooks, in model order.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Linear(1, 1)
        >>> own = net.register_forward_hook(lambda m, args, out: out)
        >>> before = hook_ids(net)
        >>> leak = net.register_forward_hook(lambda m, args, out: out * 0)
        >>> remove_hooks_since(net, before) == [("", "forward", leak.id)]
        True
        >>> hook_ids(net) == before
        True
    """
    keep = frozenset(before)
    removed: list[HookId] = []
    for owner, kind, table, flags in _hook_tables(model):
        for hook_id in [h for h in table if (owner, kind, h) not in keep]:
            del table[hook_id]
            for flag in flags:
                flag.pop(hook_id, None)
            removed.append((owner, kind, hook_id))
    return removed
