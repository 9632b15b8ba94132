"""Gradient checks: hooks see what autograd sees, hooks do not rewrite gradients, gradcheck.

- :func:`assert_hook_grads_match_autograd`: gradients recorded by full backward hooks equal
  ``torch.autograd.grad`` at each layer output;
- :func:`assert_hooks_preserve_gradients`: the model's own module hooks leave the gradients
  with respect to inputs and parameters unchanged, and the failure names the hook;
- :func:`assert_gradcheck`: a module's backward agrees with finite differences (float64).

Example (the seed: ``a = x + w; y = a * (w + 1)`` at w=1, x=2, so dy/dw = 5, dy/dx = 2):
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
    modelaudit.errors.AuditFailure: assert_hooks_preserve_gradients: every gradient must be the same with and without the model's own hooks (atol=1e-06, rtol=0.0001); 2 of 2 gradients fail.
      failing gradients:
        input: with hooks 12 vs without 2 (largest |difference| 10)
        parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)
      responsible hook(s), each enabled on its own:
        forward hook watch_a on 'add': input: with it 12 vs without 2 (largest |difference| 10)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelaudit.checks.record import AuditRecord, conclude
from modelaudit.errors import InvalidInputError
from modelaudit.hooks.gradients import (
    GradientEffects,
    Inputs,
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
) -> AuditRecord:
    """Check that the model's own hooks do not change gradients wrt inputs and parameters.

    Computes ``d score / d inputs`` and ``d score / d parameters`` (all floating-point
    parameters, frozen ones included) with every module hook of the model active and with
    them disabled (:func:`~modelaudit.hooks.gradients.hook_gradient_effects`); on a
    difference, each hook is enabled on its own to find which one(s) change gradients.

    Args:
        model: the model.
        inputs: the model's input tensor (or a sequence of positional input tensors).
        target: what to differentiate (see :mod:`modelaudit.targets`); default the
            predicted class of the hooked pass.
        atol: absolute tolerance.
        rtol: relative tolerance (of the value without hooks).

    Returns:
        The passing record: one item per gradient, its largest difference as the value.

    Raises:
        AuditFailure: naming each gradient that changed, its values with and without hooks
            where they differ most, and the hook(s) responsible.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> h = net.register_forward_hook(lambda m, args, out: None)   # harmless
        >>> assert_hooks_preserve_gradients(net, torch.randn(4, 3)).passed
        True
    """
    __tracebackhide__ = True
    fx = hook_gradient_effects(model, inputs, target, atol=atol, rtol=rtol)
    labels = list(fx.gaps)
    failing = tuple(i for i, k in enumerate(labels) if fx.gaps[k].failed)
    return conclude(
        AuditRecord(
            check="hooks_preserve_gradients",
            assertion="assert_hooks_preserve_gradients",
            passed=not failing,
            values=tuple(fx.gaps[k].worst for k in labels) or (0.0,),
            items=tuple(labels) or ("(the model has no module hooks)",),
            unit="gradient",
            direction="lower",
            obtained=max((g.worst for g in fx.gaps.values()), default=0.0),
            failing=failing,
            rule=(
                "every gradient must be the same with and without the model's own hooks "
                f"(atol={atol:g}, rtol={rtol:g})"
            ),
            reasons=tuple(fx.gaps[k].text("with hooks", "without") for k in labels),
            notes=tuple(_culprit_lines(fx) if failing else ()),
            details={
                "largest_difference": {k: g.worst for k, g in fx.gaps.items()},
                "hooks": [h.describe() for h in fx.hooks],
                "responsible": [h.describe() for h, _ in fx.culprits],
            },
        )
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
