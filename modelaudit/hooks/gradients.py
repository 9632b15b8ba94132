"""Gradient measurements: hook gradients vs autograd, what the model's own hooks change.

Measurements only; the verdicts are in :mod:`modelaudit.checks.gradients`.

- :func:`hook_grad_gaps`: the gradients :func:`~modelaudit.hooks.capture` records through
  full backward hooks against ``torch.autograd.grad`` of the same score with respect to the
  same layer outputs, computed with the model's own backward hooks disabled.
- :func:`hook_gradient_effects`: gradients with respect to inputs and parameters with the
  model's own module hooks on and off, and which hook alone changes them.

Both put the model in eval mode and give it back exactly as it was (mode,
``requires_grad``, ``.grad``): gradients come from ``torch.autograd.grad``, never
``.backward()``.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.hooks.gradients import hook_grad_gaps
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    >>> hook_grad_gaps(net, torch.randn(2, 4), ["0", "1"]).largest
    {'0': 0.0, '1': 0.0}
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from modelaudit._format import format_number
from modelaudit.errors import InvalidInputError
from modelaudit.hooks._tree import map_tensors
from modelaudit.hooks.inventory import ModuleHook, disabled_hooks, list_hooks
from modelaudit.hooks.layers import LayerSpec, resolve_layers
from modelaudit.hooks.recording import capture
from modelaudit.hooks.state import preserved_state
from modelaudit.targets import Target, resolve_class_targets, target_scores

__all__ = ["Gap", "GradientEffects", "HookGradGaps", "hook_grad_gaps", "hook_gradient_effects"]

Inputs = torch.Tensor | Sequence[torch.Tensor]


def _as_tuple(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    xs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    if not xs or not all(isinstance(x, torch.Tensor) for x in xs):
        raise InvalidInputError(
            "inputs must be a tensor or a sequence of tensors (the model's positional arguments)."
        )
    for i, x in enumerate(xs):
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise InvalidInputError(f"input {i} contains NaN or infinite values.")
    return xs


def _driven(xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Copies of the inputs; floating ones require grad, so every layer's hooks fire."""
    return tuple(
        x.detach().clone().requires_grad_(True) if x.is_floating_point() else x for x in xs
    )


@dataclasses.dataclass
class Gap:
    """The largest elementwise difference between two tensors, with the values there."""

    worst: float
    left: float
    right: float
    where: tuple[int, ...]
    failed: bool

    def text(self, left: str, right: str) -> str:
        at = f" at index {self.where}" if self.where else ""
        return (
            f"{left} {format_number(self.left)} vs {right} {format_number(self.right)}{at} "
            f"(largest |difference| {format_number(self.worst)})"
        )


def _diff(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> Gap:
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    delta = (a64 - b64).abs()
    flat = int(torch.nan_to_num(delta, nan=float("inf")).flatten().argmax()) if delta.numel() else 0
    where = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a64.shape))
        if a64.dim()
        else ()
    )
    bad = ~(delta <= atol + rtol * b64.abs())  # NaN counts as a failure
    return Gap(
        worst=float(delta.flatten()[flat]) if delta.numel() else 0.0,
        left=float(a64.flatten()[flat]) if a64.numel() else 0.0,
        right=float(b64.flatten()[flat]) if b64.numel() else 0.0,
        where=where if a64.numel() > 1 else (),
        failed=bool(bad.any()),
    )


def _tensors(value: Any) -> list[torch.Tensor | None]:
    """A layer output or gradient as a flat list (tensor, or tuple of tensors/None)."""
    if isinstance(value, torch.Tensor) or value is None:
        return [value]
    if isinstance(value, tuple | list):
        return [v if isinstance(v, torch.Tensor) else None for v in value]
    return [None]


# -- hook gradients vs autograd ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HookGradGaps:
    """Hook-recorded layer gradients against autograd's.

    Attributes:
        layers: the layers compared, in model order.
        largest: the largest |hook - autograd| per layer (inf where they cannot be compared).
        problems: one line per layer (call, output) that differs beyond the tolerance.
        own_backward: the model's own backward hooks (what usually explains a difference).
    """

    layers: list[str]
    largest: dict[str, float]
    problems: dict[str, list[str]]
    own_backward: list[ModuleHook]


def _grab_into(sink: list[Any]) -> Callable[[nn.Module, Any, Any], Any]:
    """A forward hook keeping the layer's output and passing a clone downstream.

    The clone shields the kept tensor from in-place operations after the layer (an
    in-place ReLU, ``out += identity``): autograd.grad with respect to a tensor modified in
    place would differentiate with respect to its new value.
    """

    def hook(module: nn.Module, args: Any, out: Any) -> Any:
        sink.append(out)
        return map_tensors(torch.clone, out)

    return hook


def _hooked_pass(
    model: nn.Module, drv: tuple[torch.Tensor, ...], names: list[str], target: Target
) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Pass 1: gradients at each layer output as full backward hooks see them."""
    wrt = [x for x in drv if x.requires_grad] + [p for p in model.parameters() if p.requires_grad]
    if not wrt:
        raise InvalidInputError(
            "nothing to differentiate: the inputs are not floating point and no parameter "
            "requires grad."
        )
    with capture(model, names, outputs=False, grads=True, calls="all") as cap:
        score = target_scores(model(*drv), target).sum()
        torch.autograd.grad(score, wrt, allow_unused=True)
    return {n: cap.grads.get(n) or [] for n in names}, dict(cap.calls)


def _reference_pass(
    model: nn.Module, drv: tuple[torch.Tensor, ...], names: list[str], target: Target
) -> tuple[dict[str, list[Any]], dict[tuple[str, int, int], torch.Tensor | None]]:
    """Pass 2: ``autograd.grad`` at each layer output, the model's backward hooks off."""
    raw: dict[str, list[Any]] = {n: [] for n in names}
    modules = dict(model.named_modules())
    with disabled_hooks(model, kinds=("backward", "backward_pre")):
        handles = [modules[n].register_forward_hook(_grab_into(raw[n])) for n in names]
        try:
            score = target_scores(model(*drv), target).sum()
        finally:
            for h in handles:
                h.remove()
        slots = [
            (n, call, i, t)
            for n in names
            for call, out in enumerate(raw[n])
            for i, t in enumerate(_tensors(out))
            if t is not None and t.requires_grad
        ]
        refs = (
            torch.autograd.grad(score, [t for *_, t in slots], allow_unused=True) if slots else ()
        )
    return raw, {(n, call, i): g for (n, call, i, _), g in zip(slots, refs)}


def _layer_problems(
    name: str,
    outs: list[Any],
    recorded: list[Any],
    reference: dict[tuple[str, int, int], torch.Tensor | None],
    atol: float,
    rtol: float,
) -> tuple[float, list[str]]:
    """(largest difference, problem lines) of one layer over its calls and outputs."""
    worst, problems = 0.0, []
    for call, out in enumerate(outs):
        label = f"call {call}" if len(outs) > 1 else ""
        got = _tensors(recorded[call]) if call < len(recorded) else [None] * len(_tensors(out))
        for i, t in enumerate(_tensors(out)):
            if t is None:
                continue
            part = " ".join(
                p for p in (label, f"output {i}" if len(_tensors(out)) > 1 else "") if p
            )
            part = f"{part}: " if part else ""
            ref, hook = reference.get((name, call, i)), got[i] if i < len(got) else None
            if hook is None and ref is None:
                continue  # no gradient flows there, and the hook saw none: consistent
            if hook is None:
                problems.append(f"{part}the hook recorded no gradient, autograd gives one")
                worst = float("inf")
                continue
            ref_t = torch.zeros_like(hook) if ref is None else ref
            if hook.shape != ref_t.shape:
                problems.append(
                    f"{part}hook gradient shape {tuple(hook.shape)} != {tuple(ref_t.shape)}"
                )
                worst = float("inf")
                continue
            d = _diff(hook, ref_t, atol, rtol)
            worst = max(worst, d.worst)
            if d.failed:
                problems.append(f"{part}{d.text('hook', 'autograd')}")
    return worst, problems


def hook_grad_gaps(
    model: nn.Module,
    inputs: Inputs,
    layers: LayerSpec,
    target: Target = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> HookGradGaps:
    """Compare hook-recorded gradients with ``torch.autograd.grad`` at each layer output.

    Pass 1 records, with :func:`~modelaudit.hooks.capture` (full backward hooks, the model
    as it is), the gradient of ``target_scores(model(inputs), target).sum()`` with respect
    to each layer's output, for every call of the layer. Pass 2 computes the same gradients
    with ``torch.autograd.grad(score, layer outputs)`` while the model's own backward hooks
    are disabled: the true derivatives.
    """
    xs = _as_tuple(inputs)
    names = list(resolve_layers(model, layers))
    with preserved_state(model, eval_mode=True):
        drv = _driven(xs)
        recorded, calls = _hooked_pass(model, drv, names, target)
        own_backward = list_hooks(model, ["backward", "backward_pre"])
        raw, reference = _reference_pass(model, drv, names, target)
    largest: dict[str, float] = {}
    problems: dict[str, list[str]] = {}
    for n in names:
        found: list[str] = []
        if len(raw[n]) != calls.get(n, 0):
            found.append(
                f"ran {calls.get(n, 0)} time(s) in the hooked pass but {len(raw[n])} in the "
                "reference pass (a non-deterministic model?)"
            )
        largest[n], more = _layer_problems(n, raw[n], recorded[n], reference, atol, rtol)
        found += more
        if found:
            problems[n] = found
    return HookGradGaps(names, largest, problems, own_backward)


# -- what the model's own hooks change -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GradientEffects:
    """Gradients wrt inputs and parameters with the model's own hooks on vs off.

    Attributes:
        hooks: the model's module hooks.
        gaps: per gradient (``"input"``, ``"parameter 'fc.weight'"``...), on vs off.
        culprits: each hook that changes gradients when enabled alone, with its gaps.
        output_changed: the hooks also change the model's output.
    """

    hooks: list[ModuleHook]
    gaps: dict[str, Gap]
    culprits: list[tuple[ModuleHook, dict[str, Gap]]]
    output_changed: bool


def _input_param_grads(
    model: nn.Module, xs: tuple[torch.Tensor, ...], target: Target
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's output and ``{label: d score / d tensor}`` for inputs and parameters."""
    drv = _driven(xs)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    labels = [
        f"input {i}" if len(drv) > 1 else "input" for i, x in enumerate(drv) if x.requires_grad
    ]
    labels += [f"parameter {n!r}" for n, _ in params]
    wrt = [x for x in drv if x.requires_grad] + [p for _, p in params]
    if not wrt:
        raise InvalidInputError(
            "nothing to differentiate: no floating-point input and no floating-point parameter."
        )
    out = model(*drv)
    grads = torch.autograd.grad(target_scores(out, target).sum(), wrt, allow_unused=True)
    result = {
        label: (torch.zeros_like(t) if g is None else g.detach())
        for label, t, g in zip(labels, wrt, grads)
    }
    return out.detach() if isinstance(out, torch.Tensor) else torch.zeros(()), result


def hook_gradient_effects(
    model: nn.Module,
    inputs: Inputs,
    target: Target = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> GradientEffects:
    """Gradients wrt inputs and parameters with every module hook on, then off.

    Forward-pre, forward, backward-pre and backward hooks are stashed and put back in a
    ``finally``. On a difference, each hook is enabled on its own to find the culprits.
    """
    xs = _as_tuple(inputs)
    with preserved_state(model, eval_mode=True):
        for p in model.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        hooks = list_hooks(model)
        if not hooks:  # nothing to disable: both passes would be the same computation
            return GradientEffects([], {}, [], False)
        out_on, on = _input_param_grads(model, xs, target)
        if target is None:  # differentiate the same classes in every pass
            target = resolve_class_targets(out_on, None)
        with disabled_hooks(model):
            out_off, off = _input_param_grads(model, xs, target)
        gaps = {k: _diff(on[k], off[k], atol, rtol) for k in on}
        culprits = []
        if any(g.failed for g in gaps.values()):
            for hook in hooks:
                with disabled_hooks(model, keep=functools.partial(operator.eq, hook)):
                    _, alone = _input_param_grads(model, xs, target)
                own = {k: d for k in alone if (d := _diff(alone[k], off[k], atol, rtol)).failed}
                if own:
                    culprits.append((hook, own))
    changed = out_on.shape != out_off.shape or _diff(out_on, out_off, atol, rtol).failed
    return GradientEffects(hooks, gaps, culprits, changed)
