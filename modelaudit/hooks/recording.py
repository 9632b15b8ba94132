"""Record what layers receive, return and get as gradients, with hooks that live for one block.

:func:`capture` registers, on each chosen layer, a forward-pre hook (what the layer
received), a forward hook (what it returned) and, with ``grads=True`` or
``grad_inputs=True``, a *full* backward hook (``register_full_backward_hook``; never the
deprecated ``register_backward_hook``, whose gradients are wrong for modules made of several
operations: see below). Every hook is removed in a ``finally``; the model comes back as it
was.

Conventions:

- A *pass* starts each time ``model`` itself is called. ``calls`` and the records describe
  the latest pass; a layer that runs several times in one pass is handled by ``calls=``.
- Recorded tensors are detached copies: in-place operations after the layer (ReLU with
  ``inplace=True`` in DenseNet and ResNet) cannot change them.
- ``grads[name]`` is the gradient of whatever was differentiated with respect to the layer's
  output (a tuple for layers returning several tensors); ``grad_inputs[name]``
  (``grad_inputs=True``) is the gradient with respect to the layer's positional tensor
  inputs (a tuple for several inputs). An input that does not require grad gets ``None``
  when no input of the layer does (a plain image fed to the first layer), else zeros. Torch fires a full backward hook
  once gradients with respect to the layer's *inputs* are computed, or, when no input of
  the layer requires grad (the first layer of a model fed a plain image), as soon as the
  gradient with respect to its output exists; both cases are recorded the same way, and
  torch's warning about the second is silenced inside the block. Run the backward pass
  inside the block: hooks are inert after it ends.
- ``capture`` puts back everything it changes (hooks, the ``inplace`` flags it switches
  off for ``grads=True``, torch's full-backward-hook flag). It does not undo what your
  code in the block does: a ``.backward()`` there accumulates into ``.grad`` as usual (use
  ``torch.autograd.grad`` or :func:`~modelaudit.hooks.state.preserved_state`).
- Known torch limit: with ``grads=True``, code that changes a hooked layer's output in
  place (``out += identity`` in a ResNet block, ``F.relu(x, inplace=True)`` after
  DenseNet's ``norm5``) raises torch's error, with a note saying which layer to pick instead.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.hooks.recording import capture
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> x = torch.randn(5, 3)
    >>> with capture(net, ["0", "2"], grads=True) as cap:
    ...     net(x).sum().backward()
    >>> cap.outputs["0"].shape, cap.grads["2"].shape
    (torch.Size([5, 4]), torch.Size([5, 2]))
    >>> bool((cap.grads["2"] == 1).all())   # d(sum)/d(output) is all ones
    True

Why full backward hooks: the legacy ``register_backward_hook`` reports, as ``grad_input``,
the gradient with respect to the inputs of the module's *last* operation. For a module
computing ``x * 2 + 1`` that is d/d(x * 2) = 1 per unit of output gradient, not d/dx = 2:
    >>> import warnings
    >>> class Affine(nn.Module):
    ...     def forward(self, x):
    ...         return x * 2 + 1
    >>> net = nn.Sequential(Affine())
    >>> seen = {}
    >>> h = net[0].register_backward_hook(lambda mod, gi, go: seen.update(legacy=gi[0]))
    >>> x = torch.tensor([3.0], requires_grad=True)
    >>> with warnings.catch_warnings():   # torch warns that this hook misses grad_input
    ...     warnings.simplefilter("ignore")
    ...     (net(x) * 5).sum().backward()
    >>> h.remove()
    >>> float(seen["legacy"]), float(x.grad)   # the legacy hook: 5; the truth: 5 * 2 = 10
    (5.0, 10.0)
    >>> with capture(net, "0", grads=True, grad_inputs=True) as cap:
    ...     (net(torch.tensor([3.0], requires_grad=True)) * 5).sum().backward()
    >>> float(cap.grads["0"]), float(cap.grad_inputs["0"])   # d/d output, d/d input
    (5.0, 10.0)
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple, cast

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from modelaudit.errors import HookError, InvalidInputError
from modelaudit.hooks._tree import keeper, map_tensors
from modelaudit.hooks.layers import LayerSpec, resolve_layers

__all__ = ["CallsPolicy", "Capture", "HookEvent", "RecordMissingError", "capture"]

CallsPolicy = Literal["last", "all", "error"]
_POLICIES = ("last", "all", "error")

# torch warns each time a full backward hook fires from the output side; capture expects it.
_OUTPUT_SIDE_WARNING = (
    r"Full backward hook is firing when gradients are computed with respect to module outputs"
)
_INPLACE_ERROR = re.compile(r"BackwardHookFunction.*modified inplace", re.DOTALL)


class HookEvent(NamedTuple):
    """One hook firing, in the order they happened.

    Attributes:
        kind: ``"forward_pre"``, ``"forward"`` or ``"backward"``.
        layer: the qualified layer name.
        call: which call of the layer in the current pass (0 for the first).
    """

    kind: str
    layer: str
    call: int


class RecordMissingError(HookError, KeyError):
    """Nothing was recorded under that layer name; the message says why and what to do."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LayerRecords(dict[str, Any]):
    """A ``dict`` of records by layer name whose missing keys explain themselves."""

    def __init__(self, explain: Callable[[str], str]) -> None:
        super().__init__()
        self._explain = explain

    def __missing__(self, key: str) -> Any:
        raise RecordMissingError(self._explain(key))


class Capture:
    """What :func:`capture` recorded; filled in while the ``with`` block runs.

    Attributes:
        layers: the captured layer names, in model order.
        outputs: ``{layer: output}``: a tensor, or the same structure the layer returned
            (tuple, list, dict) with each tensor recorded.
        inputs: ``{layer: input}``: the positional arguments the forward-pre hook saw; the
            tensor itself when there was exactly one argument, else the tuple (non-tensor
            arguments kept as they are; keyword arguments are not recorded).
        grads: ``{layer: gradient with respect to the output}`` (a tuple for tuple outputs,
            ``None`` for outputs that got no gradient).
        grad_inputs: ``{layer: gradient with respect to the input}``: one per positional
            tensor argument (the tensor itself when there is one, else a tuple); an input
            that does not require grad gets ``None`` (no input requires grad) or zeros.
        calls: ``{layer: number of calls in the latest pass}``.
        passes: how many times ``model`` itself was called.
        events: every hook firing, in order (:class:`HookEvent`).

    With ``calls="all"`` each record is a list with one entry per call of the pass.
    """

    def __init__(
        self,
        layers: list[str],
        *,
        inputs: bool,
        outputs: bool,
        grads: bool,
        calls: CallsPolicy,
        grad_inputs: bool = False,
    ) -> None:
        self.layers: tuple[str, ...] = tuple(layers)
        self.outputs = LayerRecords(lambda key: self._explain(key, "outputs"))
        self.inputs = LayerRecords(lambda key: self._explain(key, "inputs"))
        self.grads = LayerRecords(lambda key: self._explain(key, "grads"))
        self.grad_inputs = LayerRecords(lambda key: self._explain(key, "grad_inputs"))
        self.calls: dict[str, int] = dict.fromkeys(layers, 0)
        self.passes = 0
        self.events: list[HookEvent] = []
        self._wanted = {
            "inputs": inputs,
            "outputs": outputs,
            "grads": grads,
            "grad_inputs": grad_inputs,
        }
        self._policy = calls
        self._fired: dict[str, int] = dict.fromkeys(layers, 0)
        self._ran: set[str] = set()
        self._active = True

    def __repr__(self) -> str:
        kept = [k for k, on in self._wanted.items() if on]
        return f"Capture(layers={list(self.layers)}, recording={kept}, passes={self.passes})"

    # -- recording (called by the hooks) -------------------------------------------------

    def _new_pass(self) -> None:
        self.passes += 1
        for name in self.layers:
            self.calls[name] = 0
            self._fired[name] = 0
        for records in (self.inputs, self.outputs, self.grads, self.grad_inputs):
            records.clear()

    def _store(self, records: LayerRecords, name: str, call: int, value: Any) -> None:
        if self._policy != "all":
            records[name] = value
            return
        per_call = records.setdefault(name, [])
        per_call.extend([None] * (call + 1 - len(per_call)))
        per_call[call] = value

    def _explain(self, key: str, kind: str) -> str:
        if key not in self.layers:
            return f"{key!r} is not a captured layer; captured layers: {', '.join(map(repr, self.layers))}."
        if not self._wanted[kind]:
            return (
                f"{kind} were not recorded: pass {kind}=True to modelaudit.hooks.capture "
                "(ma.capture)."
            )
        if self.calls.get(key, 0) == 0:
            return (
                f"layer {key!r} did not run in the latest forward pass "
                f"({self.passes} pass(es) seen inside the block)."
            )
        if kind in ("grads", "grad_inputs"):
            return (
                f"no gradient reached layer {key!r}. Run the backward pass (y.backward() or "
                "torch.autograd.grad) inside the `with` block; the layer's output must require "
                "grad (no torch.no_grad(), and the input or a parameter before the layer must "
                "require grad) and the differentiated value must depend on it."
            )
        return f"nothing was recorded for layer {key!r}."


def _check_policy(calls: str) -> None:
    if calls not in _POLICIES:
        raise InvalidInputError(
            f"calls={calls!r} is not a policy; use one of {', '.join(map(repr, _POLICIES))}."
        )


def _make_hooks(
    cap: Capture, name: str, keep: Callable[[torch.Tensor], Any]
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        if not cap._active:
            return
        call = cap.calls[name]
        cap.events.append(HookEvent("forward_pre", name, call))
        if cap._wanted["inputs"]:
            seen = args[0] if len(args) == 1 else args
            cap._store(cap.inputs, name, call, map_tensors(keep, seen))

    def forward_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not cap._active:
            return
        call = cap.calls[name]
        if call >= 1 and cap._policy == "error":
            raise HookError(
                f"layer {name!r} ran more than once in one forward pass of the model (a shared "
                "or reused module). Pass calls='all' to record every call, or calls='last' to "
                "keep the last one."
            )
        cap.calls[name] = call + 1
        cap._ran.add(name)
        cap.events.append(HookEvent("forward", name, call))
        if cap._wanted["outputs"]:
            cap._store(cap.outputs, name, call, map_tensors(keep, output))

    def backward_hook(module: nn.Module, grad_input: Any, grad_output: tuple[Any, ...]) -> None:
        if not cap._active:
            return
        # Autograd runs the calls of one pass backwards: the k-th firing is call n-1-k.
        n = cap.calls[name]
        fired = cap._fired[name]
        cap._fired[name] = fired + 1
        call = n - 1 - fired % n if n else 0
        cap.events.append(HookEvent("backward", name, call))
        if cap._policy != "all" and n and call != n - 1:
            return  # "last": only the last call's gradient is kept
        if cap._wanted["grads"]:
            grad = grad_output[0] if len(grad_output) == 1 else tuple(grad_output)
            cap._store(cap.grads, name, call, map_tensors(keep, grad))
        if cap._wanted["grad_inputs"]:
            grad_in = grad_input[0] if len(grad_input) == 1 else tuple(grad_input)
            cap._store(cap.grad_inputs, name, call, map_tensors(keep, grad_in))

    return pre_hook, forward_hook, backward_hook


@contextlib.contextmanager
def _silence_output_side_warning() -> Iterator[None]:
    warnings.filterwarnings("ignore", message=_OUTPUT_SIDE_WARNING, category=UserWarning)
    entry = warnings.filters[0]
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            cast(list[Any], warnings.filters).remove(entry)
        mutated = getattr(warnings, "_filters_mutated", None)
        if callable(mutated):
            mutated()


@contextlib.contextmanager
def _out_of_place(model: nn.Module) -> Iterator[None]:
    """Switch modules with ``inplace=True`` to out-of-place (full backward hooks need it)."""
    switched = [m for m in model.modules() if getattr(m, "inplace", None) is True]
    try:
        for m in switched:
            m.inplace = False  # type: ignore[assignment]
        yield
    finally:
        for m in switched:
            m.inplace = True  # type: ignore[assignment]


@contextlib.contextmanager
def capture(
    model: nn.Module,
    layers: LayerSpec,
    *,
    inputs: bool = False,
    outputs: bool = True,
    grads: bool = False,
    grad_inputs: bool = False,
    reduce: Callable[[torch.Tensor], Any] | None = None,
    to_cpu: bool = False,
    calls: CallsPolicy = "last",
    strict: bool = True,
) -> Iterator[Capture]:
    """Record inputs, outputs and gradients of ``layers`` while the block runs.

    Args:
        model: the model; a new pass starts each time it is called.
        layers: anything :func:`~modelaudit.hooks.layers.resolve_layers` accepts: names,
            glob patterns (``"layer4.*"``), module classes, modules, predicates, or a list.
        inputs: record what each layer received (forward-pre hook).
        outputs: record what each layer returned (forward hook).
        grads: record the gradient with respect to each layer's output (full backward
            hook). Modules with ``inplace=True`` (ReLU...) run out-of-place inside the
            block, because full backward hooks forbid in-place changes of hooked tensors.
        grad_inputs: record the gradient with respect to each layer's positional tensor
            inputs (``grad_input`` of the same full backward hook; ``None`` or zeros for
            an input that does not require grad). In-place modules run out-of-place, as for
            ``grads``.
        reduce: applied to each (detached) tensor before it is kept, e.g.
            ``lambda t: t.shape`` or ``lambda t: t.mean((2, 3))``, so full tensors need not
            be held.
        to_cpu: move recorded tensors to the CPU.
        calls: for a layer that runs more than once in one pass: ``"last"`` keeps the last
            call, ``"all"`` keeps a list (one entry per call), ``"error"`` raises
            :class:`~modelaudit.errors.HookError` naming the layer.
        strict: on a normal exit, raise :class:`~modelaudit.errors.HookError` naming any
            requested layer that never ran inside the block.

    Yields:
        A :class:`Capture` filled in as the model runs.

    Raises:
        LayerNotFoundError: a layer name or pattern matched nothing (with close names).
        HookError: a layer never ran, ran twice with ``calls="error"``, or already has a
            deprecated ``register_backward_hook`` hook that torch cannot mix with ``grads``.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True))
        >>> with capture(net, nn.Conv2d, inputs=True, reduce=lambda t: tuple(t.shape)) as cap:
        ...     _ = net(torch.randn(1, 1, 5, 5))
        >>> cap.inputs["0"], cap.outputs["0"], cap.calls["0"]
        ((1, 1, 5, 5), (1, 2, 3, 3), 1)
    """
    _check_policy(calls)
    if reduce is not None and not callable(reduce):
        raise TypeError(f"reduce must be a callable tensor -> value; got {type(reduce).__name__}")
    resolved = resolve_layers(model, layers)
    cap = Capture(
        list(resolved),
        inputs=inputs,
        outputs=outputs,
        grads=grads,
        calls=calls,
        grad_inputs=grad_inputs,
    )
    finished = False
    with _hooked(model, resolved, cap, keeper(reduce, to_cpu), grads or grad_inputs):
        yield cap
        finished = True
    if finished and strict:
        _check_all_ran(cap)


@contextlib.contextmanager
def _hooked(
    model: nn.Module,
    resolved: dict[str, nn.Module],
    cap: Capture,
    keep: Callable[[torch.Tensor], Any],
    backward: bool,
) -> Iterator[None]:
    """Keep :func:`capture`'s hooks on ``resolved`` for the block; remove them after."""
    handles: list[RemovableHandle] = []
    full_flags: list[tuple[nn.Module, bool | None]] = []
    with contextlib.ExitStack() as stack:
        try:
            _register_hooks(model, resolved, cap, keep, handles, full_flags)
            if backward:
                stack.enter_context(_out_of_place(model))
                stack.enter_context(_silence_output_side_warning())
            yield
        except RuntimeError as exc:
            if backward and _INPLACE_ERROR.search(str(exc)) and hasattr(exc, "add_note"):
                exc.add_note(_inplace_note(cap.layers))
            raise
        finally:
            cap._active = False
            _remove_hooks(handles, full_flags)


def _register_hooks(
    model: nn.Module,
    resolved: dict[str, nn.Module],
    cap: Capture,
    keep: Callable[[torch.Tensor], Any],
    handles: list[RemovableHandle],
    full_flags: list[tuple[nn.Module, bool | None]],
) -> None:
    """Register the pass counter on ``model`` and the hooks of every layer.

    Handles go to ``handles`` and each hooked module's previous backward-hook mode to
    ``full_flags`` as they are made, so the caller can undo a registration that fails halfway.
    """
    handles.append(
        model.register_forward_pre_hook(
            lambda m, a: cap._new_pass() if cap._active else None, prepend=True
        )
    )
    backward = cap._wanted["grads"] or cap._wanted["grad_inputs"]
    for name, module in resolved.items():
        pre_hook, forward_hook, backward_hook = _make_hooks(cap, name, keep)
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(forward_hook))
        if backward:
            if module._is_full_backward_hook is False and module._backward_hooks:
                raise HookError(
                    f"layer {name!r} already has a hook registered with the deprecated "
                    "register_backward_hook; torch cannot mix it with the full backward "
                    "hook grads=True / grad_inputs=True needs. Remove that hook (or capture "
                    "without gradients)."
                )
            full_flags.append((module, module._is_full_backward_hook))
            # A legacy hook that was registered and then removed leaves torch's flag at
            # False, and torch would refuse the full hook; no legacy hook is left, so clear
            # it for the block (_remove_hooks puts False back).
            module._is_full_backward_hook = module._is_full_backward_hook or None
            handles.append(module.register_full_backward_hook(backward_hook))


def _remove_hooks(
    handles: list[RemovableHandle], full_flags: list[tuple[nn.Module, bool | None]]
) -> None:
    """Remove ``handles`` (newest first) and give modules back their backward-hook mode."""
    for handle in reversed(handles):
        handle.remove()
    for module, flag in full_flags:
        if not module._backward_hooks:
            module._is_full_backward_hook = flag


def _inplace_note(layers: tuple[str, ...]) -> str:
    """The note added to torch's error when a hooked output is changed in place."""
    return (
        "modelaudit.hooks.capture(grads=True or grad_inputs=True) uses full backward hooks, "
        "and torch forbids modifying a hooked layer's output in place. Code after one of the layers "
        f"{list(layers)} changes its output in place (e.g. `out += identity` in "
        "a ResNet block; in-place modules were already switched off): capture the "
        "gradient of a later layer instead (e.g. the enclosing block)."
    )


def _check_all_ran(cap: Capture) -> None:
    """Raise :class:`~modelaudit.errors.HookError` naming requested layers that never ran."""
    never = [n for n in cap.layers if n not in cap._ran]
    if never:
        hint = (
            " The model was never called inside the block."
            if cap.passes == 0
            else " The forward pass did not call them (a branch that is skipped, or a module "
            "that is defined but unused); pass strict=False to allow it."
        )
        raise HookError(
            f"requested layer(s) never ran while capturing: {', '.join(map(repr, never))}.{hint}"
        )
