"""Gradient checks: hooks see what autograd sees, hooks do not rewrite gradients, gradcheck.

- :func:`assert_hook_grads_match_autograd`: gradients recorded by full backward hooks equal
  ``torch.autograd.grad`` at each layer output;
- :func:`assert_hooks_preserve_gradients`: the model's own module hooks leave the gradients
  with respect to inputs and parameters unchanged (the failure names the hook), and autograd
  agrees with finite differences of the forward (catching a ``Tensor.register_hook`` made
  inside ``forward()``, which no hook inventory lists);
- :func:`assert_gradcheck`: a module's backward agrees with finite differences (float64).

Example (the seed: ``a = x + w; y = a * (w + 1)`` at w=1, x=2, so dy/dw = 5, dy/dx = 2;
the rewriting hook makes dy/da = 6 * 2 = 12, so dy/dx = 12 and dy/dw = 12 + 3 = 15):
    >>> import torch, torch.nn as nn
    >>> from modelaudit.checks.gradients import assert_hooks_preserve_gradients
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
    modelaudit.errors.AuditFailure: assert_hooks_preserve_gradients: every gradient must be the same with and without the model's own hooks (atol=1e-06, rtol=0.0001) and agree with finite differences of the forward (float64, atol=1e-06, rtol=0.001); 2 of 2 gradients fail.
      failing gradients:
        input: with hooks 12 vs without 2 (largest |difference| 10)
        parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)
      responsible hook(s), each enabled on its own:
        forward hook watch_a on 'add': input: with it 12 vs without 2 (largest |difference| 10)

The same hook registered inside ``forward()``, on a scalar model (no classes, no target):
    >>> class Tutorial(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.tensor(1.0))
    ...     def forward(self, x):
    ...         a = x + self.w
    ...         a.register_hook(rewrite)
    ...         return a * (self.w + 1)
    >>> assert_hooks_preserve_gradients(Tutorial(), torch.tensor(2.0))
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_hooks_preserve_gradients: every gradient must be the same with and without the model's own hooks (atol=1e-06, rtol=0.0001) and agree with finite differences of the forward (float64, atol=1e-06, rtol=0.001); 2 of 2 gradients fail.
      failing gradients:
        input: autograd 12 vs finite differences 2 along its gradient (|difference| 10)
        parameter 'w': autograd 15 vs finite differences 5 along its gradient (|difference| 10)
      autograd disagrees with finite differences of the forward for input, parameter 'w' (the model has no module hooks): code inside forward() changes gradients, e.g. a Tensor.register_hook that rewrites them, or a custom autograd.Function with a wrong backward (assert_gradcheck checks one module). Remove it, or register such hooks only while you need them (and remove them in a finally).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelaudit.checks.record import AuditRecord, conclude
from modelaudit.errors import InvalidInputError
from modelaudit.hooks.gradients import (
    FiniteDifferenceProbes,
    GradientEffects,
    Inputs,
    finite_difference_probes,
    hook_grad_gaps,
    hook_gradient_effects,
)
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = [
    "assert_gradcheck",
    "assert_hook_grads_match_autograd",
    "assert_hooks_preserve_gradients",
]


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

    See :func:`~modelaudit.hooks.gradients.hook_grad_gaps`. They differ when the model
    carries hooks that rewrite gradients (e.g. guided-backprop hooks left behind) or when
    hooks cannot see a layer properly.

    Args:
        model: the model.
        inputs: the model's input tensor (or a sequence of positional input tensors).
        layers: the layers to check (anything ``resolve_layers`` accepts).
        target: what to differentiate (see :mod:`modelaudit.targets`); default the
            predicted class.
        atol: absolute tolerance.
        rtol: relative tolerance (of the autograd value).

    Returns:
        The passing record: one item per layer, its largest difference as the value.

    Raises:
        AuditFailure: naming each layer (and call) whose gradients differ, with the largest
            absolute difference and both values there.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
        >>> record = assert_hook_grads_match_autograd(net, torch.randn(2, 4), ["0", "1"])
        >>> record.passed, record.items, record.values
        (True, ("'0'", "'1'"), (0.0, 0.0))
    """
    __tracebackhide__ = True
    gaps = hook_grad_gaps(model, inputs, layers, target, atol=atol, rtol=rtol)
    names = gaps.layers
    notes = []
    if gaps.problems and gaps.own_backward:
        notes.append(
            "the model carries its own backward hooks, which rewrite the gradients hooks see: "
            + "; ".join(h.describe() for h in gaps.own_backward)
        )
    return conclude(
        AuditRecord(
            check="hook_grads_match_autograd",
            assertion="assert_hook_grads_match_autograd",
            passed=not gaps.problems,
            values=tuple(gaps.largest[n] for n in names),
            items=tuple(repr(n) for n in names),
            unit="layer",
            direction="lower",
            obtained=max(gaps.largest.values(), default=0.0),
            failing=tuple(i for i, n in enumerate(names) if n in gaps.problems),
            rule=(
                "gradients recorded by hooks must equal torch.autograd.grad at every layer "
                f"(atol={atol:g}, rtol={rtol:g})"
            ),
            reasons=tuple("; ".join(gaps.problems.get(n, [])) for n in names),
            notes=tuple(notes),
            details={"largest_difference": gaps.largest, "atol": atol, "rtol": rtol},
        )
    )


def assert_hooks_preserve_gradients(
    model: nn.Module,
    inputs: Inputs,
    target: Target = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    finite_differences: bool = True,
    fd_atol: float = 1e-6,
    fd_rtol: float = 1e-3,
    max_parameters: int = 6,
) -> AuditRecord:
    """Check that hooks do not change gradients wrt inputs and parameters.

    Two measurements, one item per gradient (each input, each floating-point parameter,
    frozen ones included):

    1. the model's module hooks on vs off
       (:func:`~modelaudit.hooks.gradients.hook_gradient_effects`); on a difference, each
       hook is enabled on its own to find which one(s) change gradients;
    2. with ``finite_differences=True``, autograd against central finite differences of the
       forward, in float64 on an ``eval()`` deep copy with module hooks off
       (:func:`~modelaudit.hooks.gradients.finite_difference_probes`). This catches what
       (1) cannot see: a ``Tensor.register_hook`` made inside ``forward()`` (or a wrong
       custom backward) runs identically with module hooks on and off. The cost is
       bounded: on the first sample of a batch, one backward plus two forwards of the copy
       per probed tensor (the inputs and at most ``max_parameters`` parameters, spread
       evenly from the first to the last), one direction each.

    Models whose output is not (N, classes) logits (a scalar, a loss) are differentiated as
    ``output.sum()`` when ``target`` is None. Dropout and batch norm: every pass runs in
    eval mode. A kink (ReLU at 0, a max-pool tie) within the finite-difference step is told
    apart from a rewritten gradient by probing again at a nearby point.

    Args:
        model: the model (left exactly as it was: mode, ``requires_grad``, ``.grad``, hooks).
        inputs: the model's input tensor (or a sequence of positional input tensors).
        target: what to differentiate (see :mod:`modelaudit.targets`); default the
            predicted class (``output.sum()`` for a non-logit output).
        atol: absolute tolerance of hooks on vs off.
        rtol: relative tolerance of hooks on vs off (of the value without hooks).
        finite_differences: also compare autograd with finite differences.
        fd_atol: absolute tolerance of autograd vs finite differences.
        fd_rtol: relative tolerance of autograd vs finite differences.
        max_parameters: the most parameters the finite-difference probe looks at.

    Returns:
        The passing record: one item per gradient, its largest difference as the value.

    Raises:
        AuditFailure: naming each gradient that changed (e.g. ``parameter 'fc.weight'``),
            its values with and without hooks, or autograd's against finite differences,
            and the hook(s) responsible when a module hook is.
        InvalidInputError: bad inputs, nothing to differentiate, or a model that cannot
            be deep-copied for the probe (pass ``finite_differences=False``).

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> h = net.register_forward_hook(lambda m, args, out: None)   # harmless
        >>> assert_hooks_preserve_gradients(net, torch.randn(4, 3)).passed
        True
    """
    __tracebackhide__ = True
    fx = hook_gradient_effects(model, inputs, target, atol=atol, rtol=rtol)
    fd = (
        finite_difference_probes(
            model, inputs, target, atol=fd_atol, rtol=fd_rtol, max_parameters=max_parameters
        )
        if finite_differences
        else None
    )
    return conclude(
        _preserve_gradients_record(
            fx, fd, _preserve_gradients_rule(atol, rtol, fd_atol, fd_rtol, fd is not None)
        )
    )


@dataclasses.dataclass
class _GradientItems:
    """One item per gradient: labels, values, reasons and the failing indices."""

    labels: list[str]
    values: list[float]
    reasons: list[str]
    failing: list[int]


def _gradient_items(fx: GradientEffects, fd: FiniteDifferenceProbes | None) -> _GradientItems:
    """Merge hooks on vs off and autograd vs finite differences, per gradient."""
    probed = fd.probes if fd is not None else {}
    labels = list(fx.gaps) or list(probed)
    labels += [k for k in probed if k not in labels]
    values, reasons, failing = [], [], []
    for i, k in enumerate(labels):
        parts: list[tuple[bool, float, str]] = []
        if k in fx.gaps:
            gap = fx.gaps[k]
            parts.append((gap.failed, gap.worst, gap.text("with hooks", "without")))
        if fd is not None and k in probed:
            probe = fd.worst(k)
            parts.append((probe.failed, probe.difference, probe.text()))
        bad = [p for p in parts if p[0]]
        # a failing part's difference; else hooks on vs off (exact), else finite differences
        values.append(max(p[1] for p in bad) if bad else parts[0][1])
        reasons.append("; ".join(p[2] for p in (bad or parts)))
        if bad:
            failing.append(i)
    return _GradientItems(labels, values, reasons, failing)


def _preserve_gradients_rule(
    atol: float, rtol: float, fd_atol: float, fd_rtol: float, finite_differences: bool
) -> str:
    rule = (
        "every gradient must be the same with and without the model's own hooks "
        f"(atol={atol:g}, rtol={rtol:g})"
    )
    if finite_differences:
        rule += (
            " and agree with finite differences of the forward "
            f"(float64, atol={fd_atol:g}, rtol={fd_rtol:g})"
        )
    return rule


def _preserve_gradients_record(
    fx: GradientEffects, fd: FiniteDifferenceProbes | None, rule: str
) -> AuditRecord:
    """The record of :func:`assert_hooks_preserve_gradients` (not yet concluded)."""
    items = _gradient_items(fx, fd)
    labels, values = items.labels, items.values
    probed = fd.probes if fd is not None else {}
    fd_failed = fd.failed if fd is not None else []
    notes = _culprit_lines(fx) if any(k in fx.gaps and fx.gaps[k].failed for k in labels) else []
    if fd_failed:
        notes += _finite_difference_lines(fd_failed, bool(fx.hooks))
    return AuditRecord(
        check="hooks_preserve_gradients",
        assertion="assert_hooks_preserve_gradients",
        passed=not items.failing,
        values=tuple(values) or (0.0,),
        items=tuple(labels) or ("(the model has no module hooks)",),
        unit="gradient",
        direction="lower",
        obtained=max(values, default=0.0),
        failing=tuple(items.failing),
        rule=rule,
        reasons=tuple(items.reasons) if labels else (),
        notes=tuple(notes),
        details={
            "largest_difference": {k: g.worst for k, g in fx.gaps.items()},
            "hooks": [h.describe() for h in fx.hooks],
            "responsible": [h.describe() for h, _ in fx.culprits],
            "finite_differences": {
                k: {
                    "autograd": fd.worst(k).autograd,
                    "finite_difference": fd.worst(k).finite_difference,
                    "difference": fd.worst(k).difference,
                    "failed": fd.worst(k).failed,
                }
                for k in probed
            }
            if fd is not None
            else {},
            "kinks": sum(p.kink for ps in probed.values() for p in ps),
            "not_probed": fd.skipped if fd is not None else [],
        },
    )


def _culprit_lines(fx: GradientEffects) -> list[str]:
    lines = []
    if fx.culprits:
        lines.append("responsible hook(s), each enabled on its own:")
        for hook, own in fx.culprits:
            key, d = max(own.items(), key=lambda kv: kv[1].worst)
            lines.append(f"  {hook.describe()}: {key}: {d.text('with it', 'without')}")
    else:
        lines.append(
            "no single hook changes gradients on its own; their combination does: "
            + "; ".join(h.describe() for h in fx.hooks)
        )
    if fx.output_changed:
        lines.append("the hooks also change the model's output (the forward pass itself).")
    return lines


def _finite_difference_lines(failed: list[str], has_module_hooks: bool) -> list[str]:
    scope = (
        "with the model's module hooks off"
        if has_module_hooks
        else "(the model has no module hooks)"
    )
    return [
        f"autograd disagrees with finite differences of the forward for {', '.join(failed)} "
        f"{scope}: code inside forward() changes gradients, e.g. a Tensor.register_hook "
        "that rewrites them, or a custom autograd.Function with a wrong backward "
        "(assert_gradcheck checks one module). Remove it, or register such hooks only "
        "while you need them (and remove them in a finally)."
    ]


def assert_gradcheck(
    module: nn.Module,
    *example_inputs: torch.Tensor,
    parameters: bool = False,
    **gradcheck_kwargs: Any,
) -> AuditRecord:
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
        The passing record.

    Raises:
        AuditFailure: they disagree; the notes carry gradcheck's numerical and analytical
            Jacobians.

    Example:
        >>> import torch, torch.nn as nn
        >>> assert_gradcheck(nn.Linear(3, 2), torch.randn(4, 3), parameters=True).passed
        True
    """
    __tracebackhide__ = True
    if not example_inputs:
        raise InvalidInputError("assert_gradcheck needs at least one example input.")
    run, checked = _float64_twin(module, example_inputs, parameters)
    from torch.autograd.gradcheck import GradcheckError

    name = type(module).__name__
    try:
        torch.autograd.gradcheck(run, checked, raise_exception=True, **gradcheck_kwargs)
        error = ""
    except GradcheckError as exc:
        error = str(exc)
    return conclude(
        AuditRecord(
            check="gradcheck",
            assertion="assert_gradcheck",
            passed=not error,
            values=(0.0 if error else 1.0,),
            items=(name,),
            unit="module",
            failing=(0,) if error else (),
            rule=f"the backward of {name} must agree with finite differences of its forward "
            "(float64, on a copy)",
            reasons=("backward disagrees with finite differences" if error else "",),
            notes=tuple(error.splitlines()),
            details={"module": name},
        )
    )


def _float64_twin(
    module: nn.Module, example_inputs: tuple[torch.Tensor, ...], parameters: bool
) -> tuple[Callable[..., Any], tuple[torch.Tensor, ...]]:
    """A float64 copy of ``module`` as a function of the checked tensors, and those tensors."""
    twin = copy.deepcopy(module).double()
    xs = tuple(
        x.detach().double().requires_grad_(True) if x.is_floating_point() else x
        for x in example_inputs
    )
    if not parameters:
        checked = xs
        run: Callable[..., Any] = twin
    else:
        named = [(n, p) for n, p in twin.named_parameters() if p.is_floating_point()]
        keys = [n for n, _ in named]
        checked = (*xs, *(p.detach().clone().requires_grad_(True) for _, p in named))

        def run(*args: torch.Tensor) -> Any:
            return torch.func.functional_call(
                twin, dict(zip(keys, args[len(xs) :])), args[: len(xs)]
            )

    if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in checked):
        raise InvalidInputError("nothing to check: no floating-point input (and parameters=False).")
    return run, checked
