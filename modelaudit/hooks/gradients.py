"""Gradient audits: hook gradients vs autograd, hooks that rewrite gradients, gradcheck.

- :func:`assert_hook_grads_match_autograd`: the gradients :func:`~modelaudit.hooks.capture`
  records through full backward hooks equal ``torch.autograd.grad`` of the same score with
  respect to the same layer outputs, computed with the model's own backward hooks disabled.
- :func:`assert_hooks_preserve_gradients`: the model's own module hooks (forward, pre,
  backward) leave the gradients with respect to inputs and parameters unchanged.
- :func:`gradcheck_module`: ``torch.autograd.gradcheck`` in float64 on a copy of a module.

All three put the model in eval mode and give it back exactly as it was (mode,
``requires_grad``, ``.grad``): gradients come from ``torch.autograd.grad``, never
``.backward()``.

Example (the seed: ``a = x + w; y = a * (w + 1)`` at w=1, x=2, so dy/dw = 5, dy/dx = 2):
    >>> import torch, torch.nn as nn
    >>> from modelaudit.hooks.gradients import assert_hooks_preserve_gradients
    >>> class AddW(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.ones(1))
    ...     def forward(self, x):
    ...         return x + self.w
    >>> class Seed(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.add = AddW()
    ...     def forward(self, x):
    ...         return self.add(x) * (self.add.w + 1)
    >>> model = Seed()
    >>> def rewrite(grad):
    ...     grad *= 2
    ...     return grad * 3
    >>> def watch_a(module, args, a):   # a forward hook that hooks the tensor a
    ...     a.register_hook(rewrite)
    >>> h = model.add.register_forward_hook(watch_a)
    >>> assert_hooks_preserve_gradients(model, torch.full((1, 1), 2.0))
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: the model's own hooks change gradients (atol=1e-06, rtol=0.0001):
      input: with hooks 12 vs without 2 (largest |difference| 10)
      parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)
    responsible hook(s), each enabled on its own:
      forward hook watch_a on 'add': input: with it 12 vs without 2 (largest |difference| 10)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.hooks._tree import map_tensors
from modelaudit.hooks.inventory import ModuleHook, disabled_hooks, list_hooks
from modelaudit.hooks.layers import LayerSpec, resolve_layers
from modelaudit.hooks.recording import capture
from modelaudit.hooks.state import preserved_state
from modelaudit.records import AuditRecord, emit
from modelaudit.targets import Target, resolve_class_targets, target_scores

__all__ = [
    "assert_hook_grads_match_autograd",
    "assert_hooks_preserve_gradients",
    "gradcheck_module",
]

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
class _Diff:
    """The largest elementwise difference between two tensors, with the values there."""

    worst: float
    left: float
    right: float
    where: tuple[int, ...]
    failed: bool

    def text(self, left: str, right: str) -> str:
        at = f" at index {self.where}" if self.where else ""
        return f"{left} {self.left:.6g} vs {right} {self.right:.6g}{at} (largest |difference| {self.worst:.6g})"


def _diff(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> _Diff:
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    delta = (a64 - b64).abs()
    flat = int(torch.nan_to_num(delta, nan=float("inf")).flatten().argmax()) if delta.numel() else 0
    where = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a64.shape))
        if a64.dim()
        else ()
    )
    bad = ~(delta <= atol + rtol * b64.abs())  # NaN counts as a failure
    return _Diff(
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


def assert_hook_grads_match_autograd(
    model: nn.Module,
    inputs: Inputs,
    layers: LayerSpec,
    target: Target = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> AuditRecord:
    """Check that hook-recorded gradients equal ``torch.autograd.grad`` at each layer output.

    Pass 1 records, with :func:`~modelaudit.hooks.capture` (full backward hooks, the model
    as it is), the gradient of ``target_scores(model(inputs), target).sum()`` with respect
    to each layer's output, for every call of the layer. Pass 2 computes the same gradients
    with ``torch.autograd.grad(score, layer outputs)`` while the model's own backward hooks
    are disabled: the true derivatives. They differ when the model carries hooks that rewrite
    gradients (e.g. guided-backprop hooks left behind) or when hooks cannot see a layer
    properly.

    Args:
        model: the model.
        inputs: the model's input tensor (or a sequence of positional input tensors).
        layers: the layers to check (anything ``resolve_layers`` accepts).
        target: what to differentiate (see :mod:`modelaudit.targets`); default the
            predicted class.
        atol: absolute tolerance.
        rtol: relative tolerance (of the autograd value).

    Returns:
        The passing :class:`~modelaudit.records.AuditRecord` (largest difference per layer).

    Raises:
        AuditFailure: naming each layer (and call) whose gradients differ, with the largest
            absolute difference and both values there.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
        >>> record = assert_hook_grads_match_autograd(net, torch.randn(2, 4), ["0", "1"])
        >>> record.passed, record.details["largest_difference"]
        (True, {'0': 0.0, '1': 0.0})
    """
    xs = _as_tuple(inputs)
    names = list(resolve_layers(model, layers))
    with preserved_state(model, eval_mode=True):
        drv = _driven(xs)
        wrt = [x for x in drv if x.requires_grad] + [
            p for p in model.parameters() if p.requires_grad
        ]
        if not wrt:
            raise InvalidInputError(
                "nothing to differentiate: the inputs are not floating point and no parameter "
                "requires grad."
            )
        with capture(model, names, outputs=False, grads=True, calls="all") as cap:
            score = target_scores(model(*drv), target).sum()
            torch.autograd.grad(score, wrt, allow_unused=True)
        recorded = {n: cap.grads.get(n) or [] for n in names}
        calls_hooked = dict(cap.calls)

        raw: dict[str, list[Any]] = {n: [] for n in names}
        own_backward = list_hooks(model, ["backward", "backward_pre"])
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
                torch.autograd.grad(score, [t for *_, t in slots], allow_unused=True)
                if slots
                else ()
            )
    reference: dict[tuple[str, int, int], torch.Tensor | None] = {
        (n, call, i): g for (n, call, i, _), g in zip(slots, refs)
    }

    problems: list[str] = []
    largest: dict[str, float] = {}
    for n in names:
        worst = 0.0
        if len(raw[n]) != calls_hooked.get(n, 0):
            problems.append(
                f"{n!r}: ran {calls_hooked.get(n, 0)} time(s) in the hooked pass but {len(raw[n])} "
                "in the reference pass (a non-deterministic model?)"
            )
        for call, out in enumerate(raw[n]):
            label = f"{n!r}" + (f" call {call}" if len(raw[n]) > 1 else "")
            got = (
                _tensors(recorded[n][call])
                if call < len(recorded[n])
                else [None] * len(_tensors(out))
            )
            for i, t in enumerate(_tensors(out)):
                if t is None:
                    continue
                part = label + (f" output {i}" if len(_tensors(out)) > 1 else "")
                ref = reference.get((n, call, i))
                hook = got[i] if i < len(got) else None
                if hook is None and ref is None:
                    continue  # no gradient flows there, and the hook saw none: consistent
                if hook is None:
                    problems.append(f"{part}: the hook recorded no gradient, autograd gives one")
                    worst = float("inf")
                    continue
                ref_t = torch.zeros_like(hook) if ref is None else ref
                if hook.shape != ref_t.shape:
                    problems.append(
                        f"{part}: hook gradient shape {tuple(hook.shape)} != {tuple(ref_t.shape)}"
                    )
                    worst = float("inf")
                    continue
                d = _diff(hook, ref_t, atol, rtol)
                worst = max(worst, d.worst)
                if d.failed:
                    problems.append(f"{part}: {d.text('hook', 'autograd')}")
        largest[n] = worst
    passed = not problems
    if passed:
        message = f"hook gradients match torch.autograd.grad at {len(names)} layer(s)"
    else:
        message = (
            f"hook gradients differ from torch.autograd.grad (atol={atol:g}, rtol={rtol:g}) at "
            f"{len(problems)} place(s):\n" + "\n".join(f"  {p}" for p in problems)
        )
        if own_backward:
            message += (
                "\nThe model carries its own backward hooks, which rewrite the gradients hooks see: "
                + "; ".join(h.describe() for h in own_backward)
            )
    record = AuditRecord(
        check="hook_grads_match_autograd",
        passed=passed,
        values=list(largest.values()),
        bound=atol,
        direction="at_most",
        obtained=max(largest.values(), default=0.0),
        message=message,
        details={"largest_difference": largest, "rtol": rtol},
    )
    emit(record)
    if not passed:
        raise AuditFailure(message, record)
    return record


# -- hooks preserve gradients ---------------------------------------------------------------


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


def _only(hook: ModuleHook) -> Callable[[ModuleHook], bool]:
    return lambda other: other == hook


def _compare(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float, rtol: float
) -> dict[str, _Diff]:
    return {k: _diff(a[k], b[k], atol, rtol) for k in a}


def assert_hooks_preserve_gradients(
    model: nn.Module,
    inputs: Inputs,
    target: Target = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> AuditRecord:
    """Check that the model's own hooks do not change gradients wrt inputs and parameters.

    Computes ``d score / d inputs`` and ``d score / d parameters`` (all floating-point
    parameters, frozen ones included) once with every module hook of the model active and
    once with them disabled (forward-pre, forward, backward-pre and backward hooks are
    stashed and put back in a ``finally``). On a difference, each hook is then enabled on
    its own to find which one(s) change gradients.

    Args:
        model: the model.
        inputs: the model's input tensor (or a sequence of positional input tensors).
        target: what to differentiate (see :mod:`modelaudit.targets`); default the
            predicted class of the hooked pass.
        atol: absolute tolerance.
        rtol: relative tolerance (of the value without hooks).

    Returns:
        The passing :class:`~modelaudit.records.AuditRecord`.

    Raises:
        AuditFailure: naming the hook(s) and module(s) responsible, each gradient that
            changed, and its values with and without hooks where they differ most.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> h = net.register_forward_hook(lambda m, args, out: None)   # harmless
        >>> assert_hooks_preserve_gradients(net, torch.randn(4, 3)).passed
        True
    """
    xs = _as_tuple(inputs)
    with preserved_state(model, eval_mode=True):
        for p in model.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        hooks = list_hooks(model)
        if not hooks:  # nothing to disable: both passes would be the same computation
            record = AuditRecord(
                check="hooks_preserve_gradients",
                passed=True,
                values=[0.0],
                bound=atol,
                direction="at_most",
                obtained=0.0,
                message="the model has no module hooks",
                details={"largest_difference": {}, "hooks": [], "responsible": []},
            )
            emit(record)
            return record
        out_on, on = _input_param_grads(model, xs, target)
        if target is None:  # differentiate the same classes in every pass
            target = resolve_class_targets(out_on, None)
        with disabled_hooks(model):
            out_off, off = _input_param_grads(model, xs, target)
        diffs = _compare(on, off, atol, rtol)
        changed = {k: d for k, d in diffs.items() if d.failed}
        culprits: list[tuple[ModuleHook, dict[str, _Diff]]] = []
        if changed:
            for hook in hooks:
                with disabled_hooks(model, keep=_only(hook)):
                    _, alone = _input_param_grads(model, xs, target)
                own = {k: d for k, d in _compare(alone, off, atol, rtol).items() if d.failed}
                if own:
                    culprits.append((hook, own))
    largest = max((d.worst for d in diffs.values()), default=0.0)
    passed = not changed
    if passed:
        message = f"the model's {len(hooks)} hook(s) leave gradients unchanged"
    else:
        lines = [f"the model's own hooks change gradients (atol={atol:g}, rtol={rtol:g}):"]
        lines += [f"  {k}: {d.text('with hooks', 'without')}" for k, d in changed.items()]
        if culprits:
            lines.append("responsible hook(s), each enabled on its own:")
            for hook, own in culprits:
                key, d = max(own.items(), key=lambda kv: kv[1].worst)
                lines.append(f"  {hook.describe()}: {key}: {d.text('with it', 'without')}")
        else:
            lines.append(
                "no single hook changes gradients on its own; their combination does: "
                + "; ".join(h.describe() for h in hooks)
            )
        if out_on.shape != out_off.shape or _diff(out_on, out_off, atol, rtol).failed:
            lines.append("the hooks also change the model's output (the forward pass itself).")
        message = "\n".join(lines)
    record = AuditRecord(
        check="hooks_preserve_gradients",
        passed=passed,
        values=[d.worst for d in diffs.values()],
        bound=atol,
        direction="at_most",
        obtained=largest,
        message=message,
        details={
            "largest_difference": {k: d.worst for k, d in diffs.items()},
            "hooks": [h.describe() for h in hooks],
            "responsible": [h.describe() for h, _ in culprits],
        },
    )
    emit(record)
    if not passed:
        raise AuditFailure(message, record)
    return record


# -- gradcheck ------------------------------------------------------------------------------


def gradcheck_module(
    module: nn.Module,
    *example_inputs: torch.Tensor,
    parameters: bool = False,
    **gradcheck_kwargs: Any,
) -> bool:
    """Compare a module's backward with finite differences (``torch.autograd.gradcheck``).

    Runs in float64 on a deep copy of ``module`` (the original is never touched), with
    respect to every floating-point input and, with ``parameters=True``, every parameter.

    Args:
        module: the module (typically wrapping a custom ``torch.autograd.Function``).
        *example_inputs: small example inputs (a few elements each: gradcheck costs one
            forward per element).
        parameters: also check gradients with respect to the parameters.
        **gradcheck_kwargs: passed on (``eps``, ``atol``, ``rtol``, ``nondet_tol``...).

    Returns:
        True when the gradients agree.

    Raises:
        AuditFailure: they do not; the message carries gradcheck's numerical and analytical
            Jacobians.

    Example:
        >>> import torch, torch.nn as nn
        >>> gradcheck_module(nn.Linear(3, 2), torch.randn(4, 3), parameters=True)
        True
    """
    if not example_inputs:
        raise InvalidInputError("gradcheck_module needs at least one example input.")
    twin = copy.deepcopy(module).double()
    xs = tuple(
        x.detach().double().requires_grad_(True) if x.is_floating_point() else x
        for x in example_inputs
    )
    run: Callable[..., Any]
    if parameters:
        named = [(n, p) for n, p in twin.named_parameters() if p.is_floating_point()]
        ps = tuple(p.detach().clone().requires_grad_(True) for _, p in named)
        keys = [n for n, _ in named]

        def run(*args: torch.Tensor) -> Any:
            return torch.func.functional_call(
                twin, dict(zip(keys, args[len(xs) :])), args[: len(xs)]
            )

        checked: tuple[torch.Tensor, ...] = (*xs, *ps)
    else:
        run = twin
        checked = xs
    if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in checked):
        raise InvalidInputError("nothing to check: no floating-point input (and parameters=False).")
    from torch.autograd.gradcheck import GradcheckError

    try:
        torch.autograd.gradcheck(run, checked, raise_exception=True, **gradcheck_kwargs)
    except GradcheckError as exc:
        name = type(module).__name__
        message = (
            f"gradcheck failed for {name}: its backward disagrees with finite differences of "
            f"its forward (float64, on a copy).\n{exc}"
        )
        record = AuditRecord(
            check="gradcheck", passed=False, values=[0.0], message=message, details={"module": name}
        )
        emit(record)
        raise AuditFailure(message, record) from exc
    emit(
        AuditRecord(
            check="gradcheck",
            passed=True,
            values=[1.0],
            message=f"gradcheck passed for {type(module).__name__}",
            details={"module": type(module).__name__},
        )
    )
    return True
