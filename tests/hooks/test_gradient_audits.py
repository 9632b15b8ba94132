"""hook_grad_gaps and hook_gradient_effects: the measurements behind the gradient checks.

The verdicts (records, failure text) are tested in tests/checks/test_gradients.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit import InvalidInputError
from modelaudit.hooks import ModelState, hook_grad_gaps, hook_gradient_effects, hooks_by_module
from modelaudit.hooks.gradients import Gap


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
    gaps = hook_grad_gaps(seed_model, seed_input, "add")
    assert gaps.layers == ["add"] and gaps.largest == {"add": 0.0}
    assert gaps.problems == {} and gaps.own_backward == []


def test_resnet18_hook_gradients_match_autograd_including_a_shared_relu(resnet18):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    layers = ["conv1", "layer1.0.bn1", "layer1.0.relu", "layer3", "fc"]  # layer1.0.relu runs twice
    gaps = hook_grad_gaps(resnet18, x, layers, target=4)
    assert gaps.layers == layers and set(gaps.largest) == set(layers)
    assert max(gaps.largest.values()) <= 1e-6 and gaps.problems == {}


def test_densenet121_hook_gradients_match_autograd(densenet121):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    layers = ["features.norm0", "features.denseblock2.denselayer3.conv1", "features.transition3"]
    gaps = hook_grad_gaps(densenet121, x, layers)
    assert gaps.problems == {} and max(gaps.largest.values()) <= 1e-6


def test_a_model_hook_that_rewrites_gradients_makes_them_differ(seed_model, seed_input):
    seed_model.add.register_full_backward_pre_hook(pre_hook_on_a)
    gaps = hook_grad_gaps(seed_model, seed_input, "add")
    # the hook sees dy/da rewritten to 6 * 2 = 12; autograd (hooks off) says 2
    assert gaps.largest == {"add": 10.0}
    assert gaps.problems == {"add": ["hook 12 vs autograd 2 (largest |difference| 10)"]}
    assert [h.describe() for h in gaps.own_backward] == ["backward pre hook pre_hook_on_a on 'add'"]


def test_guided_backprop_style_hooks_downstream_are_caught():
    """A backward hook that clamps gradients at a ReLU changes what hooks see upstream."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[4].weight[0] = -1.0  # d score / d relu output < 0: the clamp zeroes it
    model[3].register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),))
    x = torch.randn(8, 4)
    assert hook_grad_gaps(model, x, ["3", "4"]).problems == {}  # at and after the hook: fine
    gaps = hook_grad_gaps(model, x, ["0", "2"], target=0)
    assert set(gaps.problems) == {"0", "2"}
    assert all(p.startswith("hook ") and " vs autograd " in p for p in gaps.problems["0"])
    assert gaps.largest["0"] > 0 and gaps.largest["2"] > 0


def test_hook_grad_gaps_restore_the_model(seed_model, seed_input):
    seed_model.train()
    w = seed_model.add.w
    w.grad = torch.tensor([7.0])
    kept = w.grad
    hook_grad_gaps(seed_model, seed_input, "add")
    assert seed_model.training and seed_model.add.training
    assert w.grad is kept and w.grad.item() == 7.0
    assert hooks_by_module(seed_model) == {}


def test_nan_inputs_are_rejected(seed_model):
    nan = torch.tensor([[float("nan")]])
    with pytest.raises(InvalidInputError, match="input 0 contains NaN or infinite values"):
        hook_grad_gaps(seed_model, nan, "add")
    seed_model.add.register_forward_hook(tensor_hook_on_a)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        hook_gradient_effects(seed_model, nan)


# -- what the model's own hooks change ------------------------------------------------------


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
    fx = hook_gradient_effects(seed_model, seed_input)
    # with the hook: dy/dx = 6 * 2 = 12, dy/dw = 6 * 2 + 3 = 15; without: 2 and 5
    assert fx.gaps == {
        "input": Gap(worst=10.0, left=12.0, right=2.0, where=(), failed=True),
        "parameter 'add.w'": Gap(worst=10.0, left=15.0, right=5.0, where=(), failed=True),
    }
    assert [h.describe() for h in fx.hooks] == [described]
    assert [(h.describe(), sorted(own)) for h, own in fx.culprits] == [
        (described, ["input", "parameter 'add.w'"])
    ]
    assert fx.output_changed is False
    assert fx.gaps["input"].text("with", "without") == (
        "with 12 vs without 2 (largest |difference| 10)"
    )


def test_without_hooks_the_seed_gradients_are_5_and_2(seed_model, seed_input):
    x = seed_input.clone().requires_grad_(True)
    dx, dw = torch.autograd.grad(seed_model(x).sum(), [x, seed_model.add.w])
    assert (dx.item(), dw.item()) == (2.0, 5.0)
    fx = hook_gradient_effects(seed_model, seed_input)
    assert fx.hooks == [] and fx.gaps == {} and fx.culprits == [] and not fx.output_changed


def test_state_is_untouched_after_measuring_a_rewriting_hook(seed_model, seed_input):
    seed_model.add.register_forward_hook(tensor_hook_on_a)
    seed_model.train()
    seed_model.add.w.requires_grad_(False)  # frozen: still measured, then frozen again
    seed_model.add.w.grad = torch.tensor([-1.0])
    before = ModelState.of(seed_model, values=True)
    hooks_before = hooks_by_module(seed_model)
    fx = hook_gradient_effects(seed_model, seed_input)
    assert fx.gaps["parameter 'add.w'"].left == 15.0 and fx.gaps["parameter 'add.w'"].right == 5.0
    after = ModelState.of(seed_model, values=True)
    assert after.training == before.training and after.requires_grad == {"add.w": False}
    assert after.grads["add.w"] is not None and after.grads["add.w"].item() == -1.0
    assert before.values is not None and after.values is not None
    assert torch.equal(after.values["add.w"], before.values["add.w"])
    assert hooks_by_module(seed_model) == hooks_before


def test_harmless_hooks_change_nothing_and_really_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    seen: list[torch.Size] = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.shape))
    model[3].register_full_backward_hook(lambda m, gi, go: None)
    fx = hook_gradient_effects(model, torch.randn(2, 3, 8, 8))
    assert len(fx.hooks) == 2 and fx.culprits == [] and not fx.output_changed
    assert sorted(fx.gaps) == [
        "input",
        "parameter '0.bias'",
        "parameter '0.weight'",
        "parameter '3.bias'",
        "parameter '3.weight'",
    ]
    assert all(not g.failed and g.worst == 0.0 for g in fx.gaps.values())
    assert seen == [torch.Size([2, 4, 6, 6])]  # it ran once: in the hooked pass, not the other


def test_hooks_that_only_change_gradients_together_have_no_single_culprit():
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
    fx = hook_gradient_effects(model, torch.ones(1, 2), target=0)
    assert fx.gaps["input"].failed and fx.culprits == []
    # d out_0 / d x = W[0]; the armed hook doubles it
    assert fx.gaps["input"].worst == pytest.approx(model.lin.weight[0].abs().max().item())


def test_a_hook_that_changes_the_output_is_flagged():
    model = nn.Sequential(nn.Linear(2, 3))
    model[0].register_forward_hook(lambda m, a, out: out * 2)
    fx = hook_gradient_effects(model, torch.ones(1, 2))
    assert fx.output_changed is True
    assert fx.gaps["input"].failed
