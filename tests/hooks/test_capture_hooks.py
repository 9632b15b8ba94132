"""capture(): what hooks record, in which order, and how the block cleans up."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from modelaudit import HookError, LayerNotFoundError
from modelaudit.hooks import (
    ModelState,
    RecordMissingError,
    capture,
    hook_count,
)


def total_hooks(model: nn.Module) -> int:
    return sum(hook_count(model).values())


# -- the seed numbers -------------------------------------------------------------------------


def test_seed_output_and_gradient_at_a(seed_model, seed_input):
    with capture(seed_model, "add", inputs=True, grads=True) as cap:
        y = seed_model(seed_input)
        y.backward()
    assert y.item() == 6.0  # a * b = (2 + 1) * (1 + 1)
    assert float(cap.inputs["add"]) == 2.0  # x
    assert float(cap.outputs["add"]) == 3.0  # a = x + w
    assert float(cap.grads["add"]) == 2.0  # dy/da = b = w + 1
    assert float(seed_model.add.w.grad) == 5.0  # dy/dw = a + b
    assert total_hooks(seed_model) == 0


def test_seed_gradient_when_input_requires_grad(seed_model, seed_input):
    x = seed_input.clone().requires_grad_(True)
    with capture(seed_model, "add", grads=True) as cap:
        (dx,) = torch.autograd.grad(seed_model(x), x)
    assert float(dx) == 2.0
    assert float(cap.grads["add"]) == 2.0
    assert seed_model.add.w.grad is None  # autograd.grad leaves .grad alone


# -- ordering ---------------------------------------------------------------------------------


class Logged(nn.Module):
    """A linear layer that writes ("run", name) into a shared log when its forward runs."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.lin = nn.Linear(3, 3)
        self.log: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(("run", self.name, -1))
        return self.lin(x)


def test_order_pre_hook_forward_forward_hook_then_backward_after_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(Logged("0"), nn.Tanh(), Logged("2"))
    with capture(net, ["0", "2"], inputs=True, grads=True) as cap:
        for m in (net[0], net[2]):
            m.log = cap.events
        y = net(torch.randn(4, 3))
        y.register_hook(lambda g: cap.events.append(("dy exists", "", -1)))
        y.sum().backward()
    kinds = [(e[0], e[1]) for e in cap.events]
    assert kinds == [
        ("forward_pre", "0"),
        ("run", "0"),
        ("forward", "0"),
        ("forward_pre", "2"),
        ("run", "2"),
        ("forward", "2"),
        ("dy exists", ""),
        ("backward", "2"),
        ("backward", "0"),
    ]


def test_backward_hook_sees_the_finished_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    with capture(net, "0", grads=True) as cap:
        y = net(x)
        (y**2).sum().backward()
    # independent: d/dh sum((W2 tanh(h) + b2)^2) = (2 y W2) * (1 - tanh(h)^2)
    with torch.no_grad():
        h = net[0](x)
        expected = (2 * net(x) @ net[2].weight) * (1 - torch.tanh(h) ** 2)
    torch.testing.assert_close(cap.grads["0"], expected)


# -- layers that run several times -------------------------------------------------------------


class Twice(nn.Module):
    """Applies the same linear layer twice: y = lin(lin(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.lin(x))


@pytest.fixture
def twice() -> Twice:
    torch.manual_seed(1)
    return Twice()


def _twice_truth(model: Twice, x: torch.Tensor):
    with torch.no_grad():
        h = model.lin(x)
        y = model.lin(h)
    w = model.lin.weight.detach()
    # d sum(y) / dy = 1; d sum(y) / dh = 1 @ W (each row = column sums of W)
    return h, y, torch.ones_like(y), torch.ones_like(h) @ w


def test_calls_last_keeps_the_last_call(twice):
    x = torch.randn(3, 2)
    h, y, dy, _ = _twice_truth(twice, x)
    with capture(twice, "lin", inputs=True, grads=True, calls="last") as cap:
        twice(x).sum().backward()
    assert cap.calls["lin"] == 2
    torch.testing.assert_close(cap.inputs["lin"], h)
    torch.testing.assert_close(cap.outputs["lin"], y)
    torch.testing.assert_close(cap.grads["lin"], dy)


def test_calls_all_records_every_call_in_call_order(twice):
    x = torch.randn(3, 2)
    h, y, dy, dh = _twice_truth(twice, x)
    with capture(twice, "lin", inputs=True, grads=True, calls="all") as cap:
        twice(x).sum().backward()
    assert len(cap.outputs["lin"]) == len(cap.grads["lin"]) == 2
    torch.testing.assert_close(cap.inputs["lin"][0], x)
    torch.testing.assert_close(cap.inputs["lin"][1], h)
    torch.testing.assert_close(cap.outputs["lin"][0], h)
    torch.testing.assert_close(cap.outputs["lin"][1], y)
    torch.testing.assert_close(cap.grads["lin"][0], dh)
    torch.testing.assert_close(cap.grads["lin"][1], dy)
    assert [(e.kind, e.call) for e in cap.events if e.kind == "backward"] == [
        ("backward", 1),
        ("backward", 0),
    ]


def test_calls_error_names_the_layer_and_leaves_no_hooks(twice):
    with (
        pytest.raises(HookError, match=r"'lin' ran more than once") as info,
        capture(twice, "lin", calls="error"),
    ):
        twice(torch.randn(1, 2))
    assert "calls='all'" in str(info.value)
    assert total_hooks(twice) == 0


def test_calls_error_counts_per_forward_pass_not_per_block():
    net = nn.Sequential(nn.Linear(2, 2))
    with capture(net, "0", calls="error") as cap:
        net(torch.zeros(1, 2))
        second = net(torch.ones(1, 2))
    assert cap.passes == 2 and cap.calls["0"] == 1
    torch.testing.assert_close(cap.outputs["0"], second.detach())


def test_unknown_calls_policy_is_rejected():
    bad: Any = "first"
    with (
        pytest.raises(ValueError, match="calls='first' is not a policy"),
        capture(nn.Linear(1, 1), nn.Linear, calls=bad),
    ):
        pass


@settings(max_examples=12, deadline=None)
@given(
    repeats=st.integers(1, 4),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_per_call_gradients_equal_autograd_for_any_repeat_count(repeats, batch, seed):
    """Law: with calls="all", grads[name][k] == d score / d (output of call k)."""
    torch.manual_seed(seed)
    lin = nn.Linear(3, 3)
    net = nn.ModuleDict({"lin": lin})
    x = torch.randn(batch, 3)
    raw = []
    h = x
    for _ in range(repeats):
        h = torch.tanh(lin(h))
        raw.append(h)
    expected = torch.autograd.grad((h**3).sum(), raw)

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = net

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            for _ in range(repeats):
                t = torch.tanh(self.body["lin"](t))
            return t

    model = Chain()
    with capture(model, "body.lin", grads=True, calls="all") as cap:
        (model(x) ** 3).sum().backward()
    assert cap.calls["body.lin"] == repeats
    # grads are wrt lin's output (before tanh): chain through tanh' = 1 - tanh^2
    for k in range(repeats):
        torch.testing.assert_close(
            cap.grads["body.lin"][k], expected[k] * (1 - raw[k].detach() ** 2)
        )


# -- what is recorded ------------------------------------------------------------------------


def test_outputs_are_copies_unchanged_by_a_following_inplace_relu():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True))
    x = torch.randn(8, 4)
    with capture(net, "0", inputs=True) as cap:
        net(x)
    with torch.no_grad():
        expected = net[0](x)
    assert (expected < 0).any()  # the ReLU would have zeroed these in place
    torch.testing.assert_close(cap.outputs["0"], expected)
    torch.testing.assert_close(cap.inputs["0"], x)
    assert cap.inputs["0"] is not x and not cap.outputs["0"].requires_grad


def test_inputs_with_several_arguments_are_a_tuple():
    class Pair(nn.Module):
        def forward(
            self, a: torch.Tensor, b: torch.Tensor, k: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return a * k, b + k

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            p, q = self.pair(a, b, 3)
            return p.sum() + q.sum()

    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([5.0], requires_grad=True)
    model = Wrap()
    with capture(model, "pair", inputs=True, grads=True) as cap:
        model(a, b).backward()
    got_a, got_b, k = cap.inputs["pair"]
    assert k == 3 and got_a.tolist() == [1.0, 2.0] and got_b.tolist() == [5.0]
    p, q = cap.outputs["pair"]
    assert p.tolist() == [3.0, 6.0] and q.tolist() == [8.0]
    gp, gq = cap.grads["pair"]
    assert gp.tolist() == [1.0, 1.0] and gq.tolist() == [1.0]


def test_reduce_keeps_only_the_reduced_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    x = torch.randn(2, 2, 6, 6)
    with capture(
        net, ["0", "1"], inputs=True, grads=True, reduce=lambda t: t.mean(dim=(2, 3))
    ) as cap:
        net(x).sum().backward()
    with torch.no_grad():
        conv = net[0](x)
    torch.testing.assert_close(cap.outputs["0"], conv.mean(dim=(2, 3)))
    torch.testing.assert_close(cap.inputs["1"], conv.mean(dim=(2, 3)))
    torch.testing.assert_close(cap.grads["1"], torch.ones(2, 3))
    torch.testing.assert_close(cap.grads["0"], (conv > 0).float().mean(dim=(2, 3)))


def test_reduce_may_return_non_tensors():
    net = nn.Sequential(nn.Linear(3, 5))
    with capture(net, "0", inputs=True, reduce=lambda t: tuple(t.shape)) as cap:
        net(torch.ones(4, 3))
    assert cap.inputs["0"] == (4, 3) and cap.outputs["0"] == (4, 5)


def test_to_cpu_records_independent_cpu_copies():
    lin = nn.Linear(2, 2)
    net = nn.Sequential(lin)
    with capture(net, "0", to_cpu=True, reduce=lambda t: t) as cap:
        out = net(torch.ones(1, 2))
    kept = cap.outputs["0"]
    assert kept.device.type == "cpu"
    assert kept.untyped_storage().data_ptr() != out.untyped_storage().data_ptr()
    torch.testing.assert_close(kept, out.detach())


def test_first_layer_gradient_when_the_input_does_not_require_grad():
    """Torch fires the full backward hook from the output side; the value is still d/d out."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.randn(2, 1, 6, 6)  # plain image: no requires_grad
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with capture(net, "0", grads=True) as cap:
            net(x)[:, 1].sum().backward()
    assert not [w for w in caught if "Full backward hook" in str(w.message)]
    assert warnings.filters == filters_before
    out0 = net[0](x)
    (expected,) = torch.autograd.grad(net[1:](out0)[:, 1].sum(), out0)
    torch.testing.assert_close(cap.grads["0"], expected)


def test_no_gradient_when_nothing_requires_grad_is_explained():
    net = nn.Sequential(nn.Linear(2, 2)).requires_grad_(False)
    with capture(net, "0", grads=True) as cap:
        y = net(torch.ones(1, 2))
    assert not y.requires_grad
    assert "0" not in cap.grads
    with pytest.raises(RecordMissingError, match="no gradient reached layer '0'") as info:
        cap.grads["0"]
    assert isinstance(info.value, KeyError)  # dict-style code keeps working


def test_missing_record_messages_say_what_to_do():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with capture(net, "0") as cap:
        net(torch.ones(1, 2))
    # The function to pass it to is the capture function (modelaudit.hooks is a package).
    with pytest.raises(
        RecordMissingError, match=r"pass inputs=True to modelaudit\.hooks\.capture "
    ):
        cap.inputs["0"]
    with pytest.raises(RecordMissingError, match=r"pass grads=True to modelaudit\.hooks\.capture "):
        cap.grads["0"]
    with pytest.raises(
        RecordMissingError, match=r"'1' is not a captured layer; captured layers: '0'"
    ):
        cap.outputs["1"]


def test_hooks_are_inert_after_the_block():
    net = nn.Sequential(nn.Linear(2, 2))
    with capture(net, "0", grads=True) as cap:
        y = net(torch.ones(1, 2, requires_grad=True))
    y.sum().backward()  # the graph was built with the hook inside: it must not record now
    assert "0" not in cap.grads
    assert [e.kind for e in cap.events] == ["forward_pre", "forward"]


# -- errors and clean-up ---------------------------------------------------------------------


class WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(2, 2)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_layer_that_never_ran_is_named():
    model = WithUnused()
    with (
        pytest.raises(
            HookError, match=r"never ran while capturing: 'unused'\. The forward pass did not call"
        ),
        capture(model, ["used", "unused"]) as cap,
    ):
        model(torch.ones(1, 2))
    assert cap.calls == {"used": 1, "unused": 0}
    assert total_hooks(model) == 0


def test_strict_false_allows_layers_that_never_ran():
    model = WithUnused()
    with capture(model, nn.Linear, strict=False) as cap:
        model(torch.ones(1, 2))
    assert "used" in cap.outputs and "unused" not in cap.outputs


def test_model_never_called_is_reported():
    with (
        pytest.raises(HookError, match="never called inside the block"),
        capture(WithUnused(), "used"),
    ):
        pass


def test_an_exception_in_the_block_is_not_masked_and_leaves_nothing_behind():
    model = WithUnused()
    with (
        pytest.raises(ZeroDivisionError),
        capture(model, ["used", "unused"], inputs=True, grads=True),
    ):
        model(torch.ones(1, 2))
        assert total_hooks(model) > 0
        1 / 0  # noqa: B018
    assert total_hooks(model) == 0


def test_unknown_layer_lists_close_names_and_registers_nothing(resnet18):
    with (
        pytest.raises(
            LayerNotFoundError,
            match=r"no layer named 'layer5'; closest names: 'layer4', 'layer3', 'layer2', 'layer1'",
        ),
        capture(resnet18, ["conv1", "layer5"]),
    ):
        pass
    assert total_hooks(resnet18) == 0


def test_pattern_matching_nothing_says_so(resnet18):
    with (
        pytest.raises(LayerNotFoundError, match=r"layer pattern 'layer9\.\*' matched no layer"),
        capture(resnet18, "layer9.*"),
    ):
        pass


def test_glob_class_and_predicate_specs_resolve(resnet18):
    with capture(resnet18, ["layer4.*.conv2", nn.AdaptiveAvgPool2d, lambda n, m: n == "fc"]) as cap:
        resnet18(torch.zeros(1, 3, 32, 32))
    assert cap.layers == ("layer4.0.conv2", "layer4.1.conv2", "avgpool", "fc")


def test_deprecated_backward_hook_on_a_layer_is_a_clear_error():
    net = nn.Sequential(nn.Linear(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = net[0].register_backward_hook(lambda m, gi, go: None)
    with (
        pytest.raises(HookError, match="deprecated register_backward_hook"),
        capture(net, "0", grads=True),
    ):
        pass
    assert hook_count(net)["backward"] == 1 and hook_count(net)["forward"] == 0
    assert net[0]._is_full_backward_hook is False
    legacy.remove()


def test_grads_capture_puts_backward_hook_mode_and_inplace_flags_back():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True))
    with capture(net, ["0", "1"], grads=True):
        assert net[1].inplace is False  # full backward hooks forbid in-place on hooked tensors
        net(torch.ones(1, 2, requires_grad=True)).sum().backward()
    assert net[1].inplace is True
    assert net[0]._is_full_backward_hook is None
    # so the model can still take a (deprecated) non-full hook afterwards, as before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net[0].register_backward_hook(lambda m, gi, go: None).remove()


def test_inplace_change_of_a_hooked_output_gets_an_explanatory_note():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.bn(x)
            out += x  # like ResNet's `out += identity`
            return out

    model = Residual().eval()
    with (
        pytest.raises(RuntimeError, match="modified inplace") as info,
        capture(model, "bn", grads=True),
    ):
        model(torch.ones(3, 2, requires_grad=True))
    (note,) = [n for n in info.value.__notes__ if "full backward hooks" in n]
    assert note.startswith(
        "modelaudit.hooks.capture(grads=True or grad_inputs=True) uses full backward hooks"
    )
    assert "capture the gradient of a later layer" in note
    assert total_hooks(model) == 0


def test_state_is_unchanged_after_an_exception_inside_capture(resnet18):
    model = resnet18
    pristine = ModelState.of(model)  # the shared fixture goes back to this afterwards
    model.layer2[0].relu.train()  # a mix of modes (ReLU ignores it: no buffers change)
    model.fc.weight.requires_grad_(False)
    model.conv1.weight.grad = torch.full_like(model.conv1.weight, 0.5)
    before = ModelState.of(model, values=True)
    try:
        with (
            pytest.raises(RuntimeError, match="boom"),
            capture(model, ["layer1.0.bn1", "layer4", "fc"], inputs=True, grads=True),
        ):
            with torch.no_grad():
                model(torch.randn(1, 3, 32, 32))
            raise RuntimeError("boom")
        after = ModelState.of(model, values=True)
        assert total_hooks(model) == 0
        assert after.training == before.training and after.training["layer2.0.relu"] is True
        assert after.requires_grad == before.requires_grad
        assert after.grads.keys() == before.grads.keys()
        for name, grad in before.grads.items():
            other = after.grads[name]
            assert (grad is None and other is None) or torch.equal(grad, other), name
        assert before.values is not None and after.values is not None
        for name, value in before.values.items():
            assert torch.equal(value, after.values[name]), name
        assert all(
            getattr(m, "inplace", True) is True for m in model.modules() if isinstance(m, nn.ReLU)
        )
        assert all(m._is_full_backward_hook is None for m in model.modules())
    finally:
        pristine.restore(model)


# -- gradients with respect to a layer's inputs (grad_inputs=True) ------------------------------


def test_grad_inputs_of_a_linear_is_grad_output_times_weight():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        lin.bias.zero_()
    net = nn.Sequential(lin, nn.Identity())
    x = torch.tensor([[1.0, -1.0, 0.5]], requires_grad=True)
    c = torch.tensor([[2.0, 1.0]])
    with capture(net, "0", grads=True, grad_inputs=True) as cap:
        (net(x) * c).sum().backward()
    # grad_output = c = [2, 1]; grad_input = c @ W = [2 + 4, 4 + 5, 6 + 6]
    assert cap.grads["0"].tolist() == [[2.0, 1.0]]
    assert cap.grad_inputs["0"].tolist() == [[6.0, 9.0, 12.0]]
    assert x.grad is not None and x.grad.tolist() == [[6.0, 9.0, 12.0]]


class TimesTwoPlusOne(nn.Module):
    """Two operations in one module: y = x * 2 + 1, so dy/dx = 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1


def test_grad_inputs_of_a_multi_op_module_is_the_gradient_wrt_its_input():
    """The legacy register_backward_hook says 5 here (the last op's input); the truth is 10."""
    net = nn.Sequential(TimesTwoPlusOne())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's FutureWarning about the legacy hook
        seen: dict[str, torch.Tensor] = {}
        legacy = net[0].register_backward_hook(lambda m, gi, go: seen.update(gi=gi[0]))
        (net(torch.tensor([3.0], requires_grad=True)) * 5).sum().backward()
        legacy.remove()
    assert seen["gi"].tolist() == [5.0]  # d(5 y)/d(x * 2): the gradient of the add's input
    with capture(net, "0", grads=True, grad_inputs=True) as cap:
        (net(torch.tensor([3.0], requires_grad=True)) * 5).sum().backward()
    assert cap.grads["0"].tolist() == [5.0] and cap.grad_inputs["0"].tolist() == [10.0]
    assert net[0]._is_full_backward_hook is False  # torch's flag from the legacy hook, put back


def test_a_removed_legacy_hook_does_not_block_gradient_capture():
    """Torch leaves _is_full_backward_hook at False after the legacy hook is removed."""
    net = nn.Sequential(nn.Linear(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net[0].register_backward_hook(lambda m, gi, go: None).remove()
    with capture(net, "0", grads=True) as cap:  # raised HookError before the fix
        net(torch.ones(1, 2, requires_grad=True)).sum().backward()
    assert cap.grads["0"].tolist() == [[1.0, 1.0]]
    assert net[0]._is_full_backward_hook is False and total_hooks(net) == 0


def test_grad_inputs_alone_and_for_several_inputs():
    class Mul(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a * b

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mul = Mul()

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.mul(a, b)

    net = Net()
    a = torch.tensor([2.0, 3.0], requires_grad=True)
    b = torch.tensor([5.0, 7.0])  # no grad: torch fills its slot with zeros
    with capture(net, "mul", grad_inputs=True) as cap:
        (net(a, b) * torch.tensor([1.0, 10.0])).sum().backward()
    grad_a, grad_b = cap.grad_inputs["mul"]
    assert grad_a.tolist() == [5.0, 70.0]  # d/da = g * b
    assert grad_b.tolist() == [0.0, 0.0]
    with pytest.raises(RecordMissingError, match=r"pass grads=True to modelaudit\.hooks\.capture"):
        cap.grads["mul"]


def test_grad_inputs_per_call_with_calls_all(twice):
    x = torch.randn(3, 2, requires_grad=True)
    _, _, _, dh = _twice_truth(twice, x)
    w = twice.lin.weight.detach()
    with capture(twice, "lin", grads=True, grad_inputs=True, calls="all") as cap:
        twice(x).sum().backward()
    # call 1 gets h: d sum(y)/dh = 1 @ W; call 0 gets x: d sum(y)/dx = (1 @ W) @ W
    torch.testing.assert_close(cap.grad_inputs["lin"][1], dh)
    torch.testing.assert_close(cap.grad_inputs["lin"][0], dh @ w)
    assert x.grad is not None
    torch.testing.assert_close(cap.grad_inputs["lin"][0], x.grad)


def test_grad_inputs_of_a_first_layer_fed_a_plain_image_is_none():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    with capture(net, "0", grads=True, grad_inputs=True) as cap:
        net(torch.ones(1, 2)).sum().backward()  # the input does not require grad
    assert cap.grad_inputs["0"] is None
    assert cap.grads["0"].shape == (1, 3)


def test_grad_inputs_not_requested_is_explained():
    net = nn.Sequential(nn.Linear(2, 2))
    with capture(net, "0", grads=True) as cap:
        net(torch.ones(1, 2, requires_grad=True)).sum().backward()
    with pytest.raises(
        RecordMissingError, match=r"pass grad_inputs=True to modelaudit\.hooks\.capture"
    ):
        cap.grad_inputs["0"]
