"""assert_hook_grads_match_autograd, assert_hooks_preserve_gradients, assert_gradcheck."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit import AuditFailure, InvalidInputError
from modelaudit.checks import (
    assert_gradcheck,
    assert_hook_grads_match_autograd,
    assert_hooks_preserve_gradients,
    collect_records,
)
from modelaudit.hooks import ModelState, hooks_by_module


def rewrite(grad: torch.Tensor) -> torch.Tensor:
    """The seed's rewriting hook: dy/da becomes 6 * dy/da."""
    grad *= 2
    return grad * 3


def tensor_hook_on_a(module: nn.Module, args: tuple, a: torch.Tensor) -> None:
    a.register_hook(rewrite)


def pre_hook_on_a(module: nn.Module, grad_output: tuple) -> tuple:
    return (rewrite(grad_output[0].clone()),)


# -- hook gradients vs autograd ------------------------------------------------------------


def test_seed_hook_gradient_matches_autograd(seed_model, seed_input):
    with collect_records() as got:
        record = assert_hook_grads_match_autograd(seed_model, seed_input, "add")
    assert got == [record] and record.passed
    assert record.items == ("'add'",) and record.values == (0.0,) and record.unit == "layer"
    assert record.details["largest_difference"] == {"add": 0.0} and record.obtained == 0.0


def test_resnet18_hook_gradients_match_autograd(resnet18):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    layers = ["conv1", "layer1.0.relu", "fc"]  # layer1.0.relu runs twice
    record = assert_hook_grads_match_autograd(resnet18, x, layers, target=4)
    assert record.passed and record.items == ("'conv1'", "'layer1.0.relu'", "'fc'")
    assert set(record.details["largest_difference"]) == set(layers)
    assert max(record.values) <= 1e-6 and record.failing == ()


def test_a_model_hook_that_rewrites_gradients_fails_and_is_named(seed_model, seed_input):
    seed_model.add.register_full_backward_pre_hook(pre_hook_on_a)
    with pytest.raises(AuditFailure) as info:
        assert_hook_grads_match_autograd(seed_model, seed_input, "add")
    assert str(info.value).splitlines() == [
        "assert_hook_grads_match_autograd: gradients recorded by hooks must equal "
        "torch.autograd.grad at every layer (atol=1e-06, rtol=0.0001); 1 of 1 layer fail.",
        "  failing layers:",
        "    'add': hook 12 vs autograd 2 (largest |difference| 10)",
        "  the model carries its own backward hooks, which rewrite the gradients hooks see: "
        "backward pre hook pre_hook_on_a on 'add'",
    ]
    record = info.value.record
    assert record.details["largest_difference"] == {"add": 10.0}
    assert record.values == (10.0,) and record.obtained == 10.0 and record.failing == (0,)


def test_guided_backprop_style_hooks_upstream_layers_fail():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[4].weight[0] = -1.0  # d score / d relu output < 0: the clamp zeroes it
    model[3].register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),))
    x = torch.randn(8, 4)
    assert assert_hook_grads_match_autograd(model, x, ["3", "4"]).passed  # at and after: fine
    with pytest.raises(
        AuditFailure, match=r"\n    '0': hook .* vs autograd .*\n    '2': hook .* vs autograd"
    ) as info:
        assert_hook_grads_match_autograd(model, x, ["0", "2"], target=0)
    assert info.value.record.failing == (0, 1)
    assert str(info.value).endswith(".<locals>.<lambda> on '3'")


# -- hooks preserve gradients -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("register", "described"),
    [
        (
            lambda m: m.add.register_forward_hook(tensor_hook_on_a),
            "forward hook tensor_hook_on_a on 'add'",
        ),
        (
            lambda m: m.add.register_full_backward_pre_hook(pre_hook_on_a),
            "backward pre hook pre_hook_on_a on 'add'",
        ),
    ],
)
def test_seed_rewriting_hook_turns_5_into_15_and_2_into_12(
    seed_model, seed_input, register, described
):
    register(seed_model)
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(seed_model, seed_input)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "assert_hooks_preserve_gradients: every gradient must be the same with and without the "
        "model's own hooks (atol=1e-06, rtol=0.0001); 2 of 2 gradients fail."
    )
    assert lines[1:5] == [
        "  failing gradients:",
        "    input: with hooks 12 vs without 2 (largest |difference| 10)",
        "    parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)",
        "  responsible hook(s), each enabled on its own:",
    ]
    assert lines[5] == f"    {described}: input: with it 12 vs without 2 (largest |difference| 10)"
    assert len(lines) == 6
    record = info.value.record
    assert record.details["responsible"] == [described]
    assert record.details["largest_difference"] == {"input": 10.0, "parameter 'add.w'": 10.0}
    assert record.items == ("input", "parameter 'add.w'") and record.failing == (0, 1)


def test_without_hooks_the_check_passes_with_nothing_to_compare(seed_model, seed_input):
    record = assert_hooks_preserve_gradients(seed_model, seed_input)
    assert record.passed and record.obtained == 0.0
    assert record.items == ("(the model has no module hooks)",) and record.values == (0.0,)


def test_state_is_untouched_after_a_failing_audit(seed_model, seed_input):
    seed_model.add.register_forward_hook(tensor_hook_on_a)
    seed_model.train()
    seed_model.add.w.requires_grad_(False)  # frozen: still audited, then frozen again
    seed_model.add.w.grad = torch.tensor([-1.0])
    before = ModelState.of(seed_model, values=True)
    hooks_before = hooks_by_module(seed_model)
    with pytest.raises(AuditFailure, match=r"parameter 'add.w': with hooks 15 vs without 5"):
        assert_hooks_preserve_gradients(seed_model, seed_input)
    after = ModelState.of(seed_model, values=True)
    assert after.training == before.training and after.requires_grad == {"add.w": False}
    assert after.grads["add.w"] is not None and after.grads["add.w"].item() == -1.0
    assert before.values is not None and after.values is not None
    assert torch.equal(after.values["add.w"], before.values["add.w"])
    assert hooks_by_module(seed_model) == hooks_before


def test_harmless_hooks_pass_and_are_listed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model[0].register_forward_hook(lambda m, a, out: None)
    model[3].register_full_backward_hook(lambda m, gi, go: None)
    record = assert_hooks_preserve_gradients(model, torch.randn(2, 3, 8, 8))
    assert record.passed and record.details["hooks"] == [
        "forward hook test_harmless_hooks_pass_and_are_listed.<locals>.<lambda> on '0'",
        "backward hook test_harmless_hooks_pass_and_are_listed.<locals>.<lambda> on '3'",
    ]
    assert record.values == (0.0,) * 5 and record.details["responsible"] == []


def test_hooks_that_only_change_gradients_together_are_named_together():
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.armed = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.armed = False  # only the pre-hook of this pass can arm the backward hook
            return self.lin(x)

    model = Gate()

    def arm(module: nn.Module, args: tuple) -> None:
        model.armed = True

    def scale(module: nn.Module, grad_input: tuple, grad_output: tuple):  # type: ignore[no-untyped-def]
        if model.armed:
            model.armed = False
            return (grad_input[0] * 2,)
        return None

    model.lin.register_forward_pre_hook(arm)
    model.lin.register_full_backward_hook(scale)
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(model, torch.ones(1, 2), target=0)
    assert (
        "  no single hook changes gradients on its own; their combination does: forward pre hook "
    ) in str(info.value)
    assert info.value.record.details["responsible"] == []
    assert info.value.record.failing == (0,)  # the input; parameters get the same gradients


def test_a_hook_that_changes_the_output_is_reported_as_such():
    model = nn.Sequential(nn.Linear(2, 3))
    model[0].register_forward_hook(lambda m, a, out: out * 2)
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(model, torch.ones(1, 2))
    assert str(info.value).splitlines()[-1] == (
        "  the hooks also change the model's output (the forward pass itself)."
    )


# -- gradcheck --------------------------------------------------------------------------------


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        return grad * 2 * x**2  # the classic slip


class ScaledCube(nn.Module):
    """y = w * x^3 with a custom backward whose gradient for w is wrong (x^2 instead of x^3)."""

    def __init__(self, fn: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Scale.apply(self.fn.apply(x), self.w, x)


class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cube, w, x):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(cube, w, x)
        return cube * w

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        _cube, w, x = ctx.saved_tensors
        return grad * w, (grad * x**2).sum(), None


def test_gradcheck_accepts_a_correct_function_and_leaves_the_module_alone():
    module = ScaledCube(Cube)
    x = torch.randn(4)
    with collect_records() as got:
        record = assert_gradcheck(module, x)
    assert got == [record] and record.passed
    assert (
        record.check == "gradcheck" and record.items == ("ScaledCube",) and record.values == (1.0,)
    )
    assert module.w.dtype == torch.float32 and module.w.item() == 1.5 and module.w.grad is None


def test_gradcheck_rejects_a_wrong_input_gradient():
    with pytest.raises(AuditFailure) as info:
        assert_gradcheck(ScaledCube(WrongCube), torch.randn(3))
    lines = str(info.value).splitlines()
    assert lines[:3] == [
        "assert_gradcheck: the backward of ScaledCube must agree with finite differences of its "
        "forward (float64, on a copy); 1 of 1 module fail.",
        "  failing modules:",
        "    ScaledCube: backward disagrees with finite differences",
    ]
    text = str(info.value).lower()
    assert "numerical" in text and "analytical" in text
    assert info.value.record.check == "gradcheck" and info.value.record.failing == (0,)


def test_gradcheck_parameters_finds_a_wrong_parameter_gradient():
    x = torch.rand(3) + 0.5
    assert assert_gradcheck(ScaledCube(Cube), x).passed  # inputs only: correct
    with pytest.raises(AuditFailure, match="ScaledCube: backward disagrees"):
        assert_gradcheck(ScaledCube(Cube), x, parameters=True)


def test_gradcheck_needs_a_differentiable_input():
    with pytest.raises(InvalidInputError, match="no floating-point input"):
        assert_gradcheck(nn.Embedding(3, 2), torch.tensor([0, 2]))
    with pytest.raises(InvalidInputError, match="needs at least one example input"):
        assert_gradcheck(nn.Linear(2, 2))
    assert assert_gradcheck(nn.Embedding(3, 2), torch.tensor([0, 2]), parameters=True).passed
