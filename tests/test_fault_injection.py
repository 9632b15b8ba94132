"""An exception at any point of an explain or capture call leaves the model as it was.

Hypothesis draws a method (or a capture), the model's starting state (train/eval flag per
module, ``requires_grad`` and an existing ``.grad`` per parameter) and a fault: the k-th
forward call or the k-th backward call of an identity layer spliced into the model, or the
k-th call of a forward hook the test registers on some module. k is drawn from the calls a
clean run of the same call makes, so the fault always fires. Afterwards the model must have
no hook, the same ``.grad`` (none where there was none), bitwise the same weights and
buffers, the same train/eval flags and the same ``requires_grad`` flags; torch's grad mode
and global hooks must be as before, the inputs untouched, and the injected exception must
reach the caller (itself, or as the cause or context of the error raised).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as hs
from torch import nn
from torch.nn.modules import module as torch_module

import modelaudit as ma
from modelaudit.hooks.inventory import list_hooks

X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
X_VALUES = X.clone()  # the inputs are read, never written

# The trunk's layers in order; the fault layer goes in front of one of them (or at the end).
LAYERS = ("conv1", "bn", "relu1", "drop", "conv2", "relu2", "pool", "flat", "fc")
CAM_LAYER = "conv2"

# Each method with the layer it explains and options that keep an example fast.
METHODS: dict[str, dict[str, Any]] = {
    "gradcam": {"layer": CAM_LAYER},
    "gradcam_pp": {"layer": CAM_LAYER},
    "layercam": {"layer": CAM_LAYER},
    "xgradcam": {"layer": CAM_LAYER},
    "hirescam": {"layer": CAM_LAYER},
    "eigencam": {"layer": CAM_LAYER},
    "eigengradcam": {"layer": CAM_LAYER},
    "scorecam": {"layer": CAM_LAYER},
    "ablationcam": {"layer": CAM_LAYER, "forward_batch": 3},
    "guided_gradcam": {"layer": CAM_LAYER},
    "smooth_gradcam_pp": {"layer": CAM_LAYER, "num_samples": 3},
    "sscam": {"layer": CAM_LAYER, "num_samples": 3},
    "iscam": {"layer": CAM_LAYER, "num_samples": 3},
    "gradcam_elementwise": {"layer": CAM_LAYER},
    "cam": {"layer": "relu2"},  # the layer right before the global average pool
    "guided_backprop": {"layer": None},
    "input_gradients": {"layer": None},
}


class Injected(Exception):
    """The fault the test injects; nothing else raises it."""


@dataclasses.dataclass
class Tripwire:
    """Counts forward and backward calls; raises ``Injected`` at the armed one."""

    forward_calls: int = 0
    backward_calls: int = 0
    armed: tuple[str, int] | None = None
    fired: bool = False

    def hit(self, kind: str) -> None:
        if kind == "forward":
            self.forward_calls += 1
            count = self.forward_calls
        else:
            self.backward_calls += 1
            count = self.backward_calls
        if self.armed == (kind, count):
            self.fired = True
            raise Injected(f"injected at {kind} call {count}")


class _Spy(torch.autograd.Function):
    """Identity whose backward trips the wire."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, wire: Tripwire) -> torch.Tensor:
        ctx.wire = wire
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.wire.hit("backward")
        return grad, None


class FaultLayer(nn.Module):
    """An identity layer that trips the wire on forward and (when in a graph) on backward."""

    def __init__(self, wire: Tripwire) -> None:
        super().__init__()
        self.wire = wire

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        self.wire.hit("forward")
        return _Spy.apply(t, self.wire)


def tiny_cnn(wire: Tripwire | None, at: int) -> nn.Sequential:
    """conv - BN - ReLU - dropout - conv - ReLU - pool - linear, with the fault layer at ``at``."""
    torch.manual_seed(0)
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(3, 4, 3, padding=1)),
        ("bn", nn.BatchNorm2d(4)),
        ("relu1", nn.ReLU()),
        ("drop", nn.Dropout(0.25)),
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(6, 3)),
    ]
    if wire is not None:
        layers.insert(at, ("fault", FaultLayer(wire)))
    model = nn.Sequential(OrderedDict(layers))
    with torch.no_grad():  # running statistics that are not the defaults
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.bn.num_batches_tracked.fill_(7)
    return model


@dataclasses.dataclass
class Snapshot:
    """Everything a call may touch, copied."""

    training: list[tuple[str, bool]]
    requires_grad: list[tuple[str, bool]]
    grads: list[tuple[str, torch.Tensor | None]]
    values: dict[str, torch.Tensor]
    hooks: int
    grad_enabled: bool
    global_hooks: tuple[int, ...]

    @classmethod
    def of(cls, model: nn.Module) -> Snapshot:
        params = list(model.named_parameters())
        return cls(
            training=[(n, m.training) for n, m in model.named_modules()],
            requires_grad=[(n, p.requires_grad) for n, p in params],
            grads=[(n, None if p.grad is None else p.grad.clone()) for n, p in params],
            values={k: v.clone() for k, v in model.state_dict().items()},
            hooks=len(list_hooks(model)),
            grad_enabled=torch.is_grad_enabled(),
            global_hooks=_global_hook_counts(),
        )

    def assert_same(self, model: nn.Module, *, own_hooks: int = 0) -> None:
        """Compare; ``own_hooks`` is how many hooks the test itself has on the model now."""
        after = Snapshot.of(model)
        assert after.hooks == own_hooks
        if own_hooks == 0:
            assert ma.hooks_by_module(model) == {}
        assert after.training == self.training
        assert after.requires_grad == self.requires_grad
        for (name, before), (_, now) in zip(self.grads, after.grads, strict=True):
            if before is None:
                assert now is None, f"{name} got a .grad"
            else:
                assert now is not None and torch.equal(now, before), f"{name}.grad changed"
        assert self.values.keys() == after.values.keys()
        for key, before_value in self.values.items():
            assert torch.equal(after.values[key], before_value), f"{key} changed"
        assert after.grad_enabled == self.grad_enabled
        assert after.global_hooks == self.global_hooks


def _global_hook_counts() -> tuple[int, ...]:
    tables = [
        getattr(torch_module, name)
        for name in dir(torch_module)
        if name.startswith("_global_") and name.endswith("_hooks")
    ]
    return tuple(len(t) for t in tables if isinstance(t, dict))


@dataclasses.dataclass(frozen=True)
class Fault:
    """Which call raises: ``kind`` is "forward" or "backward" (of a fault layer spliced in at
    position ``at``) or "hook" (a forward hook the test registers on module ``hooked``)."""

    kind: str
    at: int = 0
    hooked: str = ""


ABOVE_CAM_LAYER = range(LAYERS.index(CAM_LAYER) + 1, len(LAYERS) + 1)
faults = hs.one_of(
    # above the explained layer, where the gradient methods run backward through it
    hs.builds(Fault, hs.just("backward"), hs.sampled_from(ABOVE_CAM_LAYER)),
    hs.builds(Fault, hs.just("forward"), hs.integers(0, len(LAYERS))),
    hs.builds(Fault, hs.just("hook"), hooked=hs.sampled_from(LAYERS)),
)


def _prepare(
    data: hs.DataObject, fault: Fault, wire: Tripwire, *, train_ok: bool
) -> tuple[nn.Sequential, Callable[[], None]]:
    """Build the model in a drawn state; return it and a function removing the test's hook."""
    model = tiny_cnn(wire if fault.kind != "hook" else None, fault.at)
    for name, module in model.named_modules():
        # BN in train mode would update its running statistics in the user's own forward
        # pass (capture runs it as is), so capture examples keep BN in eval mode.
        can_train = train_ok or not isinstance(module, nn.BatchNorm2d)
        module.train(can_train and data.draw(hs.booleans(), label=f"train {name or 'model'}"))
    for name, p in model.named_parameters():
        p.requires_grad_(data.draw(hs.booleans(), label=f"requires_grad {name}"))
        if data.draw(hs.booleans(), label=f"has .grad {name}"):
            p.grad = torch.full_like(p, 0.5)
    if fault.kind != "hook":
        return model, lambda: None

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        wire.hit("forward")

    handle = getattr(model, fault.hooked).register_forward_hook(hook)
    return model, handle.remove


def _arm(data: hs.DataObject, fault: Fault, wire: Tripwire) -> None:
    """Arm the wire at one of the calls of ``fault.kind`` a clean run made.

    A call with no backward pass (a gradient-free method, a capture without gradients) gets
    its fault on a forward call instead.
    """
    assert wire.forward_calls > 0, "the fault site never ran"  # all sites lie on the path
    kind = "backward" if fault.kind == "backward" and wire.backward_calls else "forward"
    calls = wire.backward_calls if kind == "backward" else wire.forward_calls
    wire.armed = (kind, data.draw(hs.integers(1, calls), label=f"fault at {kind} call"))
    wire.forward_calls = wire.backward_calls = 0
    event(f"fault on a {kind} call of a {'hook' if fault.kind == 'hook' else 'layer'}")


def _run_with_fault(
    data: hs.DataObject, fault: Fault, call: Callable[[nn.Module], Any], *, train_ok: bool
) -> None:
    wire = Tripwire()
    model, unhook = _prepare(data, fault, wire, train_ok=train_ok)
    try:
        before = Snapshot.of(model)
        own_hooks = before.hooks  # the test's raising hook, if any
        call(model)  # a clean run counts the calls the fault can hit
        before.assert_same(model, own_hooks=own_hooks)
        _arm(data, fault, wire)
        with pytest.raises(Exception) as info:  # the chain is checked below
            call(model)
    finally:
        unhook()
    assert wire.fired
    chain, err = [], info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    assert any(isinstance(e, Injected) for e in chain), repr(info.value)
    before.assert_same(model)
    assert X.grad is None and torch.equal(X, X_VALUES)


@settings(max_examples=40, deadline=None)
@given(method=hs.sampled_from(sorted(METHODS)), fault=faults, data=hs.data())
def test_a_fault_inside_explain_leaves_no_trace(
    method: str, fault: Fault, data: hs.DataObject
) -> None:
    event(f"method {method}")
    options = dict(METHODS[method])
    layer = options.pop("layer")
    target = data.draw(hs.sampled_from([0, 2, [1, 0]]), label="target")

    def call(model: nn.Module) -> Any:
        return ma.explain(method, model, X, target, layer, **options)

    _run_with_fault(data, fault, call, train_ok=True)


@settings(max_examples=40, deadline=None)
@given(
    layers=hs.sets(hs.sampled_from(LAYERS), min_size=1, max_size=3).map(sorted),
    grads=hs.booleans(),
    calls=hs.sampled_from(["last", "all"]),
    fault=faults,
    data=hs.data(),
)
def test_a_fault_inside_capture_leaves_no_trace(
    layers: list[str], grads: bool, calls: str, fault: Fault, data: hs.DataObject
) -> None:
    def call(model: nn.Module) -> None:
        x = X.clone().requires_grad_(True)
        with ma.capture(model, layers, inputs=True, grads=grads, calls=calls):
            out = model(x)
            if grads:  # to the input only: no parameter .grad is written
                torch.autograd.grad(out[:, 0].sum(), x)

    _run_with_fault(data, fault, call, train_ok=False)
