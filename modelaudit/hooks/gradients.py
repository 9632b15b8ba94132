"""Gradient measurements: hook gradients vs autograd, what the model's own hooks change.

Measurements only; the verdicts are in :mod:`modelaudit.checks.gradients`.

- :func:`hook_grad_gaps`: the gradients :func:`~modelaudit.hooks.capture` records through
  full backward hooks against ``torch.autograd.grad`` of the same score with respect to the
  same layer outputs, computed with the model's own backward hooks disabled.
- :func:`hook_gradient_effects`: gradients with respect to inputs and parameters with the
  model's own module hooks on and off, and which hook alone changes them.
- :func:`finite_difference_probes`: autograd's directional derivatives of the score against
  central finite differences, in float64 on an ``eval()`` deep copy with its module hooks
  off. It sees what no hook inventory can: a ``Tensor.register_hook`` made inside
  ``forward()`` rewrites gradients identically with module hooks on and off.

All give the model back exactly as it was (mode, ``requires_grad``, ``.grad``, values):
gradients come from ``torch.autograd.grad``, never ``.backward()``, and the probe works on
a copy.

Models whose output is not (N, classes) logits (a scalar, a loss) are differentiated as
``output.sum()`` when no target is given.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.hooks.gradients import hook_grad_gaps
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    >>> hook_grad_gaps(net, torch.randn(2, 4), ["0", "1"]).largest
    {'0': 0.0, '1': 0.0}
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
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

__all__ = [
    "FiniteDifferenceProbes",
    "Gap",
    "GradientEffects",
    "HookGradGaps",
    "Probe",
    "finite_difference_probes",
    "hook_grad_gaps",
    "hook_gradient_effects",
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


def _score(out: Any, target: Target) -> torch.Tensor:
    """The summed score to differentiate; ``output.sum()`` for non-logit outputs, no target."""
    if target is None and isinstance(out, torch.Tensor) and out.dim() != 2:
        return out.sum()
    return target_scores(out, target).sum()


def _fixed_target(out: Any, target: Target) -> Target:
    """``target`` with ``None`` resolved to the predicted classes of ``out`` (logits only)."""
    if target is None and isinstance(out, torch.Tensor) and out.dim() == 2:
        return resolve_class_targets(out.detach(), None)
    return target


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


def check_tolerances(**tolerances: float) -> None:
    """Raise a clear error for a tolerance that is not a finite number >= 0.

    Example:
        >>> check_tolerances(atol=1e-6, rtol=0.0)
        >>> check_tolerances(atol=float("nan"))
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: atol must be a finite number >= 0 (a NaN or negative tolerance makes the comparison meaningless); got nan
    """
    for name, value in tolerances.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value >= 0):
            raise InvalidInputError(
                f"{name} must be a finite number >= 0 (a NaN or negative tolerance makes the "
                f"comparison meaningless); got {value!r}"
            )


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
    check_tolerances(atol=atol, rtol=rtol)
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
    grads = torch.autograd.grad(_score(out, target), wrt, allow_unused=True)
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
    check_tolerances(atol=atol, rtol=rtol)
    xs = _as_tuple(inputs)
    with preserved_state(model, eval_mode=True):
        for p in model.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        hooks = list_hooks(model)
        if not hooks:  # nothing to disable: both passes would be the same computation
            return GradientEffects([], {}, [], False)
        out_on, on = _input_param_grads(model, xs, target)
        target = _fixed_target(out_on, target)  # the same classes in every pass
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


# -- autograd against finite differences -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Probe:
    """One directional derivative of the score: autograd against central finite differences.

    Attributes:
        label: the tensor probed (``"input"``, ``"parameter 'fc.weight'"``...).
        direction: ``"gradient"`` (autograd's own gradient, unit norm: the derivative is
            the gradient's norm; tensors of one element), ``"gradient+random"`` (the sum of
            the unit gradient and a unit Gaussian direction, normalised: the first
            direction of larger tensors) or ``"random"`` (a unit Gaussian direction).
        autograd: autograd's gradient dotted with the direction.
        finite_difference: ``(s(t + h v) - s(t - h v)) / 2h``.
        failed: they disagree at the probe point and again at a nearby point.
        kink: they disagree at the probe point but agree at a nearby point (a kink of ReLU
            or max-pool lies within the step): not counted as a failure.
        difference: ``|autograd - finite_difference|`` where the probe was judged (the
            nearby point for a kink).
    """

    label: str
    direction: str
    autograd: float
    finite_difference: float
    failed: bool
    kink: bool
    difference: float

    def text(self) -> str:
        along = {
            "gradient": "its gradient",
            "gradient+random": "its gradient plus a random direction",
        }.get(self.direction, "a random direction")
        return (
            f"autograd {format_number(self.autograd)} vs finite differences "
            f"{format_number(self.finite_difference)} along {along} "
            f"(|difference| {format_number(abs(self.autograd - self.finite_difference))})"
        )


@dataclasses.dataclass(frozen=True)
class FiniteDifferenceProbes:
    """What :func:`finite_difference_probes` measured.

    Attributes:
        probes: ``{label: [Probe, ...]}`` for every probed tensor, inputs first, then
            parameters in model order.
        skipped: parameters not probed (more than ``max_parameters``).
        step: the finite-difference step ``h``.
    """

    probes: dict[str, list[Probe]]
    skipped: list[str]
    step: float

    def worst(self, label: str) -> Probe:
        """The probe of ``label`` that failed with the largest difference (else the largest)."""
        return max(self.probes[label], key=lambda p: (p.failed, p.difference))

    @property
    def failed(self) -> list[str]:
        """Labels with a failed probe."""
        return [k for k, ps in self.probes.items() if any(p.failed for p in ps)]


def _double_twin(model: nn.Module) -> nn.Module:
    """A float64, eval-mode deep copy of ``model`` whose parameters all require grad."""
    try:
        twin = copy.deepcopy(model)
    except Exception as exc:  # any object in the model may refuse to be copied
        raise InvalidInputError(
            f"the finite-difference probe needs a deep copy of the model, and copying failed "
            f"({type(exc).__name__}: {exc}). Make the model deep-copyable, or skip the probe "
            "with finite_differences=False."
        ) from exc
    twin.double().eval()
    for p in twin.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    return twin


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices in ``range(n)`` spread evenly, first and last included."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0][:k]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _first_samples(
    xs: tuple[torch.Tensor, ...], target: Target, samples: int | None
) -> tuple[tuple[torch.Tensor, ...], Target] | None:
    """The first ``samples`` samples of a batch (and of a per-sample target), or None.

    Only when every input has two or more dimensions and all share a first size larger
    than ``samples`` (a batch, as everywhere in the package).
    """
    if samples is None or not xs or any(x.dim() < 2 for x in xs):
        return None
    n = xs[0].shape[0]
    if n <= samples or any(x.shape[0] != n for x in xs):
        return None
    if target is None or callable(target) or isinstance(target, int):
        return tuple(x[:samples] for x in xs), target
    idx = torch.as_tensor(target)
    if idx.dim() == 0:
        return tuple(x[:samples] for x in xs), target
    if idx.shape[0] != n:
        return None  # a malformed target: let the full pass say so
    return tuple(x[:samples] for x in xs), idx[:samples]


def finite_difference_probes(
    model: nn.Module,
    inputs: Inputs,
    target: Target = None,
    *,
    directions: int = 1,
    step: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-3,
    max_parameters: int = 6,
    samples: int | None = 1,
    seed: int = 0,
) -> FiniteDifferenceProbes:
    """Autograd's directional derivatives of the score against central finite differences.

    Works on a float64 ``eval()`` deep copy of ``model`` with its module hooks disabled
    (the model itself is never run, changed or hooked). The score is
    ``target_scores(output, target).sum()`` (``output.sum()`` for a non-logit output
    without a target; ``target=None`` is the class predicted by the copy, then fixed). For
    each floating-point input and each parameter (at most ``max_parameters``, spread
    evenly from the first to the last), it compares ``grad . v`` with
    ``(s(t + h v) - s(t - h v)) / 2h`` along ``directions`` unit directions ``v``. The
    first is the gradient's own direction plus a random Gaussian one (the gradient part
    catches a rescaled gradient, the random part one whose changed entries are zeroed);
    further ones are random; a tensor of one element gets the gradient's direction only.

    Cost, bounded: one forward and backward, plus two forwards per direction and probed
    tensor, of the copy on the first ``samples`` samples of a batch (inputs of two or more
    dimensions sharing their first size; ``None``: the whole batch; the whole batch also
    when the copy cannot run on the part). A gradient change confined to a few entries of a
    large tensor, or to parameters not probed, can escape a handful of directions.

    A directional derivative of a piecewise-linear model is exact, except where a kink
    (ReLU at 0, a max-pool tie) lies within ``h`` of the probe point. So a disagreement
    beyond ``atol + rtol * max(|autograd|, |finite difference|)`` is checked again at a
    nearby point (each entry moved by 1e-3 times (1 + the tensor's mean |entry|)): it is a
    failure only if it persists there, otherwise a kink. A rewritten gradient disagrees
    everywhere.

    Dropout and batch norm: the copy is in eval mode (dropout off, batch norm on its
    running statistics), since finite differences of a random forward are noise.

    Raises:
        InvalidInputError: bad inputs, nothing to differentiate, a model that cannot be
            deep-copied, or bad probe settings.

    Example (the seed ``y = (x + w) * (w + 1)`` at w=1, x=2, with a tensor hook that turns
    dy/da into 6 dy/da inside ``forward()``):
        >>> import torch, torch.nn as nn
        >>> class Hooked(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = nn.Parameter(torch.tensor(1.0))
        ...     def forward(self, x):
        ...         a = x + self.w
        ...         a.register_hook(lambda grad: grad * 6)
        ...         return a * (self.w + 1)
        >>> fd = finite_difference_probes(Hooked(), torch.tensor(2.0))
        >>> [(k, fd.worst(k).autograd, round(fd.worst(k).finite_difference, 6)) for k in fd.probes]
        [('input', 12.0, 2.0), ("parameter 'w'", 15.0, 5.0)]
        >>> fd.failed
        ['input', "parameter 'w'"]
    """
    _check_probe_settings(directions, step, atol, rtol)
    xs = _as_tuple(inputs)
    twin = _double_twin(model)
    params, skipped = _chosen_parameters(twin, max_parameters)
    run = _ProbeRun(twin, step, atol, rtol, torch.Generator().manual_seed(seed))
    with disabled_hooks(twin):
        probes = run.probe_all(xs, target, samples, params, directions)
    return FiniteDifferenceProbes(probes, skipped, step)


def _check_probe_settings(directions: int, step: float, atol: float, rtol: float) -> None:
    """Raise :class:`InvalidInputError` on bad probe settings."""
    if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
        raise InvalidInputError(f"directions must be a positive int; got {directions!r}")
    if not step > 0 or not atol >= 0 or not rtol >= 0:
        raise InvalidInputError(
            f"step must be > 0 and atol, rtol >= 0; got step={step}, atol={atol}, rtol={rtol}"
        )


def _chosen_parameters(
    twin: nn.Module, max_parameters: int
) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """The (label, parameter) pairs to probe, spread evenly, and the labels skipped."""
    named = [(f"parameter {n!r}", p) for n, p in twin.named_parameters() if p.requires_grad]
    chosen = _spread(len(named), max_parameters)
    skipped = [label for i, (label, _) in enumerate(named) if i not in set(chosen)]
    return [named[i] for i in chosen], skipped


@dataclasses.dataclass
class _ProbeRun:
    """The float64 copy, its inputs and fixed target, and the probe settings."""

    twin: nn.Module
    step: float
    atol: float
    rtol: float
    gen: torch.Generator
    drv: tuple[torch.Tensor, ...] = ()
    fixed: Target = None

    def score(self) -> float:
        return float(_score(self.twin(*self.drv), self.fixed).detach())

    def grad_of(self, t: torch.Tensor) -> torch.Tensor:
        (g,) = torch.autograd.grad(_score(self.twin(*self.drv), self.fixed), t, allow_unused=True)
        return torch.zeros_like(t) if g is None else g.detach()

    def central(self, t: torch.Tensor, v: torch.Tensor) -> float:
        kept = t.detach().clone()
        with torch.no_grad():
            t.copy_(kept + self.step * v)
        plus = self.score()
        with torch.no_grad():
            t.copy_(kept - self.step * v)
        minus = self.score()
        with torch.no_grad():
            t.copy_(kept)
        return (plus - minus) / (2 * self.step)

    def gaussian(self, t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=self.gen, dtype=torch.float64).to(t.device)

    def probe_all(
        self,
        xs: tuple[torch.Tensor, ...],
        target: Target,
        samples: int | None,
        params: list[tuple[str, torch.Tensor]],
        directions: int,
    ) -> dict[str, list[Probe]]:
        """Probe every floating-point input, then ``params`` (module hooks already off)."""
        self.drv, out, target = _probe_pass(self.twin, xs, target, samples)
        self.fixed = _fixed_target(out, target)
        tensors = [
            (f"input {i}" if len(self.drv) > 1 else "input", x)
            for i, x in enumerate(self.drv)
            if x.requires_grad
        ] + params
        if not tensors:
            raise InvalidInputError(
                "nothing to differentiate: no floating-point input and no floating-point parameter."
            )
        grads = torch.autograd.grad(
            _score(out, self.fixed), [t for _, t in tensors], allow_unused=True
        )
        probes: dict[str, list[Probe]] = {}
        for (label, t), g in zip(tensors, grads):
            g = torch.zeros_like(t) if g is None else g.detach()
            probes[label] = [
                self.judge(label, kind, t, g, v)
                for kind, v in _directions(g, t.numel(), directions, self.gaussian)
            ]
        return probes

    def judge(
        self, label: str, kind: str, t: torch.Tensor, g: torch.Tensor, v: torch.Tensor
    ) -> Probe:
        """One probe along ``v``; a disagreement is checked again at a nearby point."""
        ad, fd = float((g * v).sum()), self.central(t, v)
        if _close(ad, fd, self.atol, self.rtol):
            return Probe(label, kind, ad, fd, False, False, abs(ad - fd))
        # Disagreement: look again at a nearby point; a kink will have moved away.
        kept = t.detach().clone()
        with torch.no_grad():
            t.add_(1e-3 * (1 + kept.abs().mean()) * self.gaussian(t).sign())
        try:
            ad2, fd2 = float((self.grad_of(t) * v).sum()), self.central(t, v)
        finally:
            with torch.no_grad():
                t.copy_(kept)
        persists = not _close(ad2, fd2, self.atol, self.rtol)
        diff = abs(ad - fd) if persists else abs(ad2 - fd2)
        return Probe(label, kind, ad, fd, persists, not persists, diff)


def _probe_pass(
    twin: nn.Module, xs: tuple[torch.Tensor, ...], target: Target, samples: int | None
) -> tuple[tuple[torch.Tensor, ...], Any, Target]:
    """Float64 inputs that require grad, the copy's output on them, and the target.

    The first ``samples`` samples when the copy runs on them, else the whole batch.
    """

    def driven(part: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(
            x.detach().double().clone().requires_grad_(True) if x.is_floating_point() else x
            for x in part
        )

    part = _first_samples(xs, target, samples)
    if part is not None:
        drv = driven(part[0])
        try:
            return drv, twin(*drv), part[1]
        except Exception:  # a model that cannot run on part of the batch: use all of it
            pass
    drv = driven(xs)
    return drv, twin(*drv), target


def _directions(
    g: torch.Tensor, numel: int, count: int, gaussian: Callable[[torch.Tensor], torch.Tensor]
) -> list[tuple[str, torch.Tensor]]:
    """The probe directions of one tensor (unit norm), named as in :class:`Probe`."""
    norm = float(g.norm())
    if numel == 1:
        return [("gradient", g / norm if norm > 0 else torch.ones_like(g))]
    dirs: list[tuple[str, torch.Tensor]] = []
    first = _unit(gaussian(g))
    if norm > 0:
        dirs.append(("gradient+random", _unit(g / norm + first)))
    else:
        dirs.append(("random", first))
    while len(dirs) < count:
        dirs.append(("random", _unit(gaussian(g))))
    return dirs
