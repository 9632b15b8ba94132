"""hook_grad_gaps and hook_gradient_effects: the measurements behind the gradient checks.

The verdicts (records, failure text) are tested in tests/checks/test_gradients.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from modelaudit import InvalidInputError
from modelaudit.hooks import ModelState, hook_grad_gaps, hook_gradient_effects, hooks_by_module
from modelaudit.hooks.gradients import Gap, finite_difference_probes


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


# -- autograd against finite differences -----------------------------------------------------


class Tutorial(nn.Module):
    """y = (x + w) * (w + 1) with a scalar parameter w = 1 and a scalar output (no classes)."""

    def __init__(self, hook: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.hook = hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x + self.w
        if self.hook is not None:
            a.register_hook(self.hook)  # inside forward(): invisible to a hook inventory
        return a * (self.w + 1)


def test_probes_of_the_tutorial_with_the_rewriting_hook_inside_forward():
    fd = finite_difference_probes(Tutorial(rewrite), torch.tensor(2.0))
    assert list(fd.probes) == ["input", "parameter 'w'"] and fd.skipped == []
    (px,), (pw,) = fd.probes["input"], fd.probes["parameter 'w'"]
    # one element: one direction, the gradient's (+1); autograd 6b = 12 and 6b + a = 15
    assert (px.direction, px.autograd, px.failed, px.kink) == ("gradient", 12.0, True, False)
    assert (pw.direction, pw.autograd, pw.failed, pw.kink) == ("gradient", 15.0, True, False)
    assert px.finite_difference == pytest.approx(2.0, abs=1e-8)  # b = w + 1
    assert pw.finite_difference == pytest.approx(5.0, abs=1e-8)  # a + b
    assert fd.failed == ["input", "parameter 'w'"]
    assert pw.text() == "autograd 15 vs finite differences 5 along its gradient (|difference| 10)"


def test_probes_of_the_tutorial_without_a_hook_agree():
    fd = finite_difference_probes(Tutorial(), torch.tensor(2.0))
    assert fd.failed == []
    assert [p.autograd for p in fd.probes["parameter 'w'"]] == [5.0]
    assert fd.worst("input").difference < 1e-8


def test_the_probe_runs_on_a_copy_with_module_hooks_off(seed_model, seed_input):
    """A module hook is the other measurement's business; the original is never run."""
    calls: list[int] = []
    seed_model.add.register_forward_hook(tensor_hook_on_a)
    seed_model.register_forward_pre_hook(lambda m, a: calls.append(1))
    fd = finite_difference_probes(seed_model, seed_input)
    assert fd.failed == [] and calls == []
    assert fd.worst("parameter 'add.w'").autograd == 5.0
    assert seed_model.add.w.dtype == torch.float32 and seed_model.add.w.grad is None


def test_parameters_beyond_the_limit_are_spread_evenly_and_listed():
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(3)))  # 6 parameters
    fd = finite_difference_probes(model, torch.ones(1, 2), max_parameters=3)
    # indices round(i * 5 / 2) for i = 0, 1, 2: 0, 2, 5 (the first and the last included)
    assert list(fd.probes) == [
        "input",
        "parameter '0.weight'",
        "parameter '1.weight'",
        "parameter '2.bias'",
    ]
    assert fd.skipped == ["parameter '0.bias'", "parameter '1.bias'", "parameter '2.weight'"]
    # one direction each by default: the unit gradient plus a unit random vector, normalised
    assert [[p.direction for p in ps] for ps in fd.probes.values()] == [["gradient+random"]] * 4


def test_a_relu_kink_is_a_kink_not_a_failure():
    """s = sum(relu(x)) at x = [0, 0, 1, -1]: autograd's slope at 0 is 0, a central
    difference straddling 0 gives 1/2, so along v they differ by (v1 + v2) / 2; 1e-3 away
    from the kinks both agree."""
    model = nn.Sequential(nn.ReLU(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    fd = finite_difference_probes(model, torch.tensor([[0.0, 0.0, 1.0, -1.0]]), directions=3)
    assert [p.direction for p in fd.probes["input"]] == ["gradient+random", "random", "random"]
    for p in fd.probes["input"]:
        assert abs(p.autograd - p.finite_difference) > 1e-3  # the kink shows at the point
        assert p.kink and not p.failed and p.difference < 1e-6  # and not 1e-3 away
    # relu(x) = [0, 0, 1, 0] does not move with the weight: no kink there, exact agreement
    assert not any(p.kink for p in fd.probes["parameter '1.weight'"])
    assert fd.worst("parameter '1.weight'").difference < 1e-8
    assert fd.failed == []


def test_probe_settings_are_checked():
    with pytest.raises(InvalidInputError, match="directions must be a positive int"):
        finite_difference_probes(Tutorial(), torch.tensor(2.0), directions=0)
    with pytest.raises(InvalidInputError, match="step must be > 0"):
        finite_difference_probes(Tutorial(), torch.tensor(2.0), step=0.0)


def test_a_scalar_model_with_a_module_hook_needs_no_target():
    """Before: target_scores asked for (N, classes) logits; a scalar output is summed."""
    model = Tutorial()
    model.register_forward_hook(lambda m, args, y: y * 2)  # doubles y and its gradients
    fx = hook_gradient_effects(model, torch.tensor(2.0))
    assert fx.gaps["parameter 'w'"].left == 10.0 and fx.gaps["parameter 'w'"].right == 5.0
    assert fx.gaps["input"].left == 4.0 and fx.output_changed


def test_the_probe_uses_the_first_sample_and_its_target():
    """logits = w x, targets [1, 0]: sample 0's class 1 gives ds/dw = x[0, 1] = 3.

    The whole batch would give x[0, 1] + x[1, 0] = 3 + 5 = 8.
    """

    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.w * x

    x = torch.tensor([[2.0, 3.0], [5.0, 7.0]])
    fd = finite_difference_probes(Scale(), x, target=[1, 0])
    (pw,) = fd.probes["parameter 'w'"]
    assert pw.autograd == 3.0 and pw.finite_difference == pytest.approx(3.0, abs=1e-8)
    whole = finite_difference_probes(Scale(), x, target=[1, 0], samples=None)
    assert whole.probes["parameter 'w'"][0].autograd == 8.0
    assert [p.direction for p in fd.probes["input"]] == ["gradient+random"]  # (1, 2) input


def test_a_model_that_needs_the_whole_batch_is_probed_on_all_of_it():
    class Pairs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor(2.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            first, second = x  # exactly two rows: fails on one sample
            return (self.w * first * second).sum()

    fd = finite_difference_probes(Pairs(), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    # s = w (1*3 + 2*4) = 11 w: ds/dw = 11 at the full batch
    assert fd.probes["parameter 'w'"][0].autograd == 11.0 and fd.failed == []
