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

RULE = (
    "assert_hooks_preserve_gradients: every gradient must be the same with and without the "
    "model's own hooks (atol=1e-06, rtol=0.0001) and agree with finite differences of the "
    "forward (float64, atol=1e-06, rtol=0.001)"
)


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
    assert lines[0] == RULE + "; 2 of 2 gradients fail."
    assert lines[1:5] == [
        "  failing gradients:",
        "    input: with hooks 12 vs without 2 (largest |difference| 10)",
        "    parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)",
        "  responsible hook(s), each enabled on its own:",
    ]
    assert lines[5] == f"    {described}: input: with it 12 vs without 2 (largest |difference| 10)"
    assert len(lines) == 6  # finite differences (module hooks off) agree: nothing more
    record = info.value.record
    assert record.details["responsible"] == [described]
    assert record.details["largest_difference"] == {"input": 10.0, "parameter 'add.w'": 10.0}
    assert record.items == ("input", "parameter 'add.w'") and record.failing == (0, 1)


def test_without_hooks_the_check_passes_with_nothing_to_compare(seed_model, seed_input):
    record = assert_hooks_preserve_gradients(seed_model, seed_input, finite_differences=False)
    assert record.passed and record.obtained == 0.0
    assert record.items == ("(the model has no module hooks)",) and record.values == (0.0,)


def test_without_hooks_autograd_is_compared_with_finite_differences(seed_model, seed_input):
    record = assert_hooks_preserve_gradients(seed_model, seed_input)
    assert record.passed and record.items == ("input", "parameter 'add.w'")
    fd = record.details["finite_differences"]
    # dy/dx = w + 1 = 2, dy/dw = x + 2w + 1 = 5; y is quadratic: central differences are exact
    # up to rounding (|y| ~ 6, h = 1e-6: about 1e-10)
    assert fd["input"]["autograd"] == 2.0 and fd["parameter 'add.w'"]["autograd"] == 5.0
    assert fd["input"]["finite_difference"] == pytest.approx(2.0, abs=1e-8)
    assert fd["parameter 'add.w'"]["finite_difference"] == pytest.approx(5.0, abs=1e-8)
    assert max(record.values) < 1e-8 and record.details["hooks"] == []


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


# -- gradient-rewriting code inside forward(): autograd vs finite differences ---------------


class Tutorial(nn.Module):
    """The tutorial's scalar graph y = (x + w) * (w + 1), w = 1: no classes, a scalar output.

    With ``hooked``, forward() puts the rewriting hook on a = x + w itself: no module hook
    exists, so the hooks-on and hooks-off passes are the same computation.
    """

    def __init__(self, hooked: bool) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.hooked = hooked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x + self.w
        if self.hooked:
            a.register_hook(rewrite)
        return a * (self.w + 1)


def test_a_tensor_hook_inside_forward_fails_naming_w():
    """Before the finite-difference probe this passed: no module hook, nothing to compare.

    At x=2, w=1: a = 3, b = w + 1 = 2. The hook turns dy/da = b = 2 into 6 * 2 = 12, so
    autograd says dy/dx = 12 and dy/dw = 12 + a = 15; the forward's true derivatives
    (central differences, exact up to rounding for this quadratic) are 2 and 5.
    """
    model = Tutorial(hooked=True)
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(model, torch.tensor(2.0))
    lines = str(info.value).splitlines()
    assert lines == [
        RULE + "; 2 of 2 gradients fail.",
        "  failing gradients:",
        "    input: autograd 12 vs finite differences 2 along its gradient (|difference| 10)",
        "    parameter 'w': autograd 15 vs finite differences 5 along its gradient "
        "(|difference| 10)",
        "  autograd disagrees with finite differences of the forward for input, parameter 'w' "
        "(the model has no module hooks): code inside forward() changes gradients, e.g. a "
        "Tensor.register_hook that rewrites them, or a custom autograd.Function with a wrong "
        "backward (assert_gradcheck checks one module). Remove it, or register such hooks "
        "only while you need them (and remove them in a finally).",
    ]
    record = info.value.record
    fd = record.details["finite_differences"]["parameter 'w'"]
    assert fd["autograd"] == 15.0 and fd["failed"] is True
    assert fd["finite_difference"] == pytest.approx(5.0, abs=1e-8)
    assert record.values == pytest.approx((10.0, 10.0), abs=1e-8)
    assert record.details["hooks"] == [] and record.failing == (0, 1)
    assert model.w.grad is None and model.w.item() == 1.0 and model.w.dtype == torch.float32


def test_the_tutorial_module_without_the_hook_passes():
    record = assert_hooks_preserve_gradients(Tutorial(hooked=False), torch.tensor(2.0))
    fd = record.details["finite_differences"]
    assert record.passed and record.items == ("input", "parameter 'w'")
    assert (fd["input"]["autograd"], fd["parameter 'w'"]["autograd"]) == (2.0, 5.0)
    assert max(record.values) < 1e-8


def test_an_in_forward_hook_next_to_harmless_module_hooks_is_still_caught():
    model = Tutorial(hooked=True)
    model.register_forward_hook(lambda m, args, y: None)  # harmless, and listed
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(model, torch.tensor(2.0))
    lines = str(info.value).splitlines()
    # hooks on vs off agree (the in-forward hook runs in both): only autograd vs finite
    # differences fails, and no module hook is blamed
    assert lines[2] == (
        "    input: autograd 12 vs finite differences 2 along its gradient (|difference| 10)"
    )
    assert lines[4].startswith(
        "  autograd disagrees with finite differences of the forward for input, parameter 'w' "
        "with the model's module hooks off: code inside forward() changes gradients"
    )
    record = info.value.record
    assert record.details["largest_difference"] == {"input": 0.0, "parameter 'w'": 0.0}
    assert record.details["responsible"] == [] and len(lines) == 5


def test_finite_differences_false_is_blind_to_the_in_forward_hook():
    record = assert_hooks_preserve_gradients(
        Tutorial(hooked=True), torch.tensor(2.0), finite_differences=False
    )
    assert record.passed and record.items == ("(the model has no module hooks)",)


def test_a_small_cnn_with_dropout_and_batchnorm_in_train_mode_passes_and_is_left_alone():
    """The probe runs on an eval() copy: in train mode dropout would make it noise."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 4),
    ).train()
    before = ModelState.of(model, values=True)
    record = assert_hooks_preserve_gradients(model, torch.randn(3, 3, 8, 8))
    assert record.passed and len(record.items) == 1 + 6  # the input, 6 of the 8 parameters
    assert record.details["not_probed"] == ["parameter '1.weight'", "parameter '4.bias'"]
    assert all(not v["failed"] for v in record.details["finite_differences"].values())
    assert max(record.values) < 1e-6
    after = ModelState.of(model, values=True)
    assert after.training == before.training and all(after.training.values())
    assert before.values is not None and after.values is not None
    for name, value in before.values.items():  # running statistics included
        assert torch.equal(value, after.values[name]), name
    assert all(g is None for g in after.grads.values())


def test_a_relu_kink_at_the_probe_point_is_not_a_failure():
    """ReLU at exactly 0: autograd says slope 0, a central difference straddling it 1/2.

    s = sum(relu(x)) at x = [0, 0, 1, -1]. Along a random direction v the central difference
    is v3 + (v1 + v2) / 2 while autograd gives v3; 1e-3 away from 0 both agree, so the
    disagreement is a kink, not a rewritten gradient.
    """
    model = nn.Sequential(nn.ReLU(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    record = assert_hooks_preserve_gradients(model, torch.tensor([[0.0, 0.0, 1.0, -1.0]]))
    assert record.passed and record.details["kinks"] == 1
    fd = record.details["finite_differences"]
    assert fd["input"]["failed"] is False
    # the weight's probe crosses no kink (relu(x) does not move with it): exact agreement
    assert fd["parameter '1.weight'"]["difference"] < 1e-8


def test_a_clamping_hook_inside_forward_names_only_the_parameters_before_it():
    """Guided-backprop style: forward() clamps the gradient at the hidden layer."""
    torch.manual_seed(0)

    class Guided(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 4)
            self.fc2 = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc1(x)
            h.register_hook(lambda g: g.clamp(min=0))
            return self.fc2(torch.tanh(h))

    model = Guided()
    with torch.no_grad():
        model.fc2.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.5, 0.5, 0.5, 0.5]]))
    with pytest.raises(AuditFailure) as info:
        assert_hooks_preserve_gradients(model, torch.randn(2, 3), target=0)
    record = info.value.record
    assert [record.items[i] for i in record.failing] == [
        "input",
        "parameter 'fc1.weight'",
        "parameter 'fc1.bias'",
    ]  # fc2 sits after the hook: its gradients are right
    assert "parameter 'fc1.weight': autograd " in str(info.value)


def test_a_model_that_cannot_be_copied_gets_an_explanation():
    class Uncopyable(nn.Linear):
        def __deepcopy__(self, memo: dict) -> None:
            raise TypeError("no copies")

    model = Uncopyable(2, 2)
    with pytest.raises(InvalidInputError, match=r"deep copy .*no copies.*finite_differences=False"):
        assert_hooks_preserve_gradients(model, torch.ones(1, 2))
    assert assert_hooks_preserve_gradients(model, torch.ones(1, 2), finite_differences=False).passed


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
