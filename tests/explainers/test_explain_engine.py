"""The engine's rules: lean passes, the model restored, no hooks left, clear errors."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from modelaudit.errors import HookError, InvalidInputError, LayerNotFoundError
from modelaudit.explainers import (
    ablationcam,
    available_methods,
    cam,
    eigencam,
    explain,
    gradcam,
    guided_backprop,
    scorecam,
)
from modelaudit.explainers.layer_choice import default_layer
from modelaudit.targets import score_targets

INPUT_METHODS = {"input_gradients", "guided_backprop"}
CHEAP = {"smooth_gradcam_pp": {"num_samples": 2}, "sscam": {"num_samples": 2}}


def call(name, model, x, target=None, layer="r2"):
    opts = CHEAP.get(name, {})
    if name in INPUT_METHODS:
        return explain(name, model, x, target, **opts)
    return explain(name, model, x, target, layer, **opts)


class Probe(nn.Module):
    """Records grad mode and whether its input requires grad, every call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.is_grad_enabled(), x.requires_grad))
        return x


class ProbedNet(nn.Module):
    """conv-bn-relu-probe-conv-relu [layer "r2"] -probe-dropout-pool-linear, with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.r1 = nn.ReLU(inplace=True)
        self.before = Probe()
        self.c2 = nn.Conv2d(4, 5, 3, padding=1)
        self.r2 = nn.ReLU()
        self.after = Probe()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.before(self.r1(self.bn(self.c1(x))))
        x = self.after(self.r2(self.c2(x)))
        return self.fc(self.pool(self.drop(x)).flatten(1))


@pytest.fixture
def probed() -> ProbedNet:
    torch.manual_seed(0)
    net = ProbedNet()
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def snapshot(model: nn.Module):
    return (
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
        {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        {n: t.clone() for n, t in model.state_dict().items()},
    )


def assert_same_state(before, after):
    assert before[0] == after[0]
    assert before[1] == after[1]
    for name, grad in before[2].items():
        if grad is None:
            assert after[2][name] is None, name
        else:
            assert torch.equal(grad, after[2][name]), name
    for name, value in before[3].items():
        assert torch.equal(value, after[3][name]), name


def test_trunk_below_the_layer_runs_without_graph(probed):
    gradcam(probed, torch.rand(2, 3, 8, 8), 1, "r2", pass_size=None)
    assert probed.before.seen == [(False, False)]  # no graph below the layer
    assert probed.after.seen == [(True, True)]  # graph from the layer's leaf on
    gradcam(probed, torch.rand(2, 3, 8, 8), 1, "r2", pass_size=1)  # the same in every part
    assert probed.before.seen[1:] == [(False, False)] * 2
    assert probed.after.seen[1:] == [(True, True)] * 2


def test_k_targets_need_one_forward(probed):
    calls = []
    handle = probed.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        maps = gradcam(probed, torch.rand(2, 3, 8, 8), [[0, 1, 2], [2, 1, 0]], "r2", pass_size=None)
    finally:
        handle.remove()
    assert maps.shape == (2, 3, 8, 8)
    assert calls == [2]


BUILTIN = [
    "ablationcam", "cam", "eigencam", "eigengradcam", "gradcam", "gradcam_elementwise",
    "gradcam_pp", "guided_backprop", "guided_gradcam", "hirescam", "input_gradients",
    "iscam", "layercam", "scorecam", "smooth_gradcam_pp", "sscam", "xgradcam",
]  # fmt: skip


def test_every_builtin_method_is_registered():
    assert set(BUILTIN) <= set(available_methods())


@pytest.mark.parametrize("name", BUILTIN)
def test_model_comes_back_exactly_as_it_was(probed, hook_count, name):
    probed.train()
    probed.c1.weight.requires_grad_(False)
    probed.fc.weight.grad = torch.full_like(probed.fc.weight, 0.5)
    kept = probed.fc.weight.grad
    before = snapshot(probed)
    x = torch.rand(2, 3, 8, 8)
    maps = call(name, probed, x, [0, 2])
    assert maps.shape == (2, 8, 8)
    assert not maps.requires_grad and maps.grad_fn is None
    assert_same_state(before, snapshot(probed))
    assert probed.fc.weight.grad is kept  # the same tensor object, not a copy
    assert probed.c1.bias.grad is None
    assert hook_count(probed) == 0


def test_eval_mode_is_used_during_the_call(probed):
    # In train mode BatchNorm would use batch statistics and Dropout would zero features:
    # the maps of a train-mode model must equal those of the same model in eval mode.
    x = torch.rand(4, 3, 8, 8)
    train_maps = gradcam(probed.train(), x, 1, "r2")
    assert probed.training
    torch.testing.assert_close(train_maps, gradcam(probed.eval(), x, 1, "r2"))


@pytest.mark.parametrize("name", ["gradcam", "scorecam", "ablationcam", "guided_backprop"])
def test_works_inside_no_grad_and_inference_mode(probed, name):
    x = torch.rand(2, 3, 8, 8)
    plain = call(name, probed, x, 1)
    with torch.no_grad():
        inside = call(name, probed, x, 1)
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(inside, plain)
    with torch.inference_mode():
        x_inf = x.clone()
        inside_inf = call(name, probed, x_inf, 1)
        assert torch.is_inference_mode_enabled()
    torch.testing.assert_close(inside_inf, plain)
    assert torch.is_grad_enabled()


class Keeper(nn.Module):
    """Squares its input (so autograd saves it) and keeps a weak reference to that input."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[weakref.ref] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.refs.append(weakref.ref(x))
        return x * x


def test_no_graph_outlives_the_call():
    torch.manual_seed(0)
    keeper = Keeper()
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), keeper, nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip
    maps = gradcam(net, torch.rand(4, 3, 8, 8), 0, "1")
    gc.collect()
    assert maps.grad_fn is None
    assert len(keeper.refs) == 2  # "auto": three samples, then the fourth
    assert [r() is None for r in keeper.refs] == [True, True]  # saved activations were freed


def test_layer_output_modified_in_place_afterwards_is_not_recorded_modified():
    # DenseNet's pattern: features -> F.relu(inplace=True). The map must use the values the
    # layer returned, and the in-place op must not fail.
    torch.manual_seed(0)

    class InplaceAfter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = torch.relu_(self.features(x))
            return self.fc(f.mean(dim=(2, 3)))

    net = InplaceAfter()
    x = torch.rand(2, 3, 6, 6)
    got = gradcam(net, x, 1, "features", relu=False, normalize=False)
    a = net.features(x).detach()
    # d S / d A = W[1, k] / 36 where A > 0 (the in-place ReLU's mask), else 0
    g = net.fc.weight[1].detach()[None, :, None, None] / 36 * (a > 0)
    want = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1)
    torch.testing.assert_close(got, want)


def test_hooks_are_removed_when_the_call_fails(probed, hook_count):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(InvalidInputError, match="out of range"):
        gradcam(probed, x, 7, "r2")
    with pytest.raises(InvalidInputError):
        scorecam(probed, x, [0, 1, 2], "r2")
    assert hook_count(probed) == 0
    assert probed.training  # a fresh module is in train mode and stays so


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([0, 1, 2], "batch has 2 samples"),
        ([0], "batch has 2 samples"),
        (3, "out of range"),
        (-1, "out of range"),
        ([[0, 5], [1, 1]], "class 5 for sample 0"),
        (0.5, "integer class indices"),
    ],
)
def test_bad_targets_are_clear_errors(probed, target, message):
    with pytest.raises(InvalidInputError, match=message):
        gradcam(probed, torch.rand(2, 3, 8, 8), target, "r2")


def test_callable_target_with_wrong_length_is_an_error(probed):
    with pytest.raises(InvalidInputError, match="3 scores for a batch of 2"):
        gradcam(probed, torch.rand(2, 3, 8, 8), lambda out: out[0].repeat(3)[:3], "r2")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_inputs_are_rejected(probed, bad):
    x = torch.rand(3, 3, 8, 8)
    x[1, 0, 2, 2] = bad
    with pytest.raises(InvalidInputError, match=r"sample\(s\) \[1\]"):
        gradcam(probed, x, 0, "r2")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (torch.rand(3, 8, 8), r"x\[None\]"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.long), "floating point"),
        (torch.rand(0, 3, 8, 8), "empty"),
        ([[1.0]], "torch.Tensor"),
    ],
)
def test_bad_inputs_are_clear_errors(probed, inputs, message):
    with pytest.raises(InvalidInputError, match=message):
        gradcam(probed, inputs, 0, "r2")


def test_unknown_layer_name_suggests_close_names(probed):
    with pytest.raises(LayerNotFoundError, match="closest names: 'r2'"):
        gradcam(probed, torch.rand(1, 3, 8, 8), 0, "r22")


def test_model_without_convolution_and_no_layer_is_a_clear_error():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(LayerNotFoundError, match="no convolution layer"):
        gradcam(mlp, torch.rand(1, 3, 2, 2), 0)


def test_layer_that_runs_twice_is_a_hook_error(hook_count):
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu,
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())  # fmt: skip
    with pytest.raises(HookError, match="ran 2 times"):
        gradcam(net, torch.rand(1, 3, 4, 4), 0, "1")
    assert hook_count(net) == 0


def test_layer_that_never_runs_is_a_hook_error():
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)
            self.spare = nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    with pytest.raises(HookError, match="did not run"):
        gradcam(Unused(), torch.rand(1, 3, 4, 4), 0, "spare")


def test_token_layer_without_reshape_is_a_clear_error():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 4, 2, stride=2)
            self.mix = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.mix(self.embed(x).flatten(2).transpose(1, 2)[:, :3])  # 3 tokens: no grid
            return self.head(t.mean(1))

    with pytest.raises(InvalidInputError, match="reshape=vit_reshape"):
        gradcam(Tokens(), torch.rand(1, 3, 4, 4), 0, "mix")


def test_layer_can_be_given_as_module_or_pattern(probed):
    x = torch.rand(2, 3, 8, 8)
    by_name = gradcam(probed, x, 1, "r2")
    torch.testing.assert_close(gradcam(probed, x, 1, probed.r2), by_name)
    torch.testing.assert_close(gradcam(probed, x, 1, lambda n, m: n == "r2"), by_name)


def test_default_layer_is_the_last_spatial_module(probed):
    assert default_layer(probed, torch.rand(1, 3, 8, 8)) == "drop"
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(gradcam(probed, x, 1), gradcam(probed, x, 1, "drop"))


def test_several_layers_are_fused_by_the_mean_of_normalised_maps(probed):
    x = torch.rand(2, 3, 8, 8)
    a, b = gradcam(probed, x, 1, "r1"), gradcam(probed, x, 1, "r2")
    fused = gradcam(probed, x, 1, ["r1", "r2"])
    mean = (a + b) / 2
    lo = mean.flatten(1).amin(1)[:, None, None]
    hi = mean.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(fused, (mean - lo) / (hi - lo), rtol=1e-5, atol=1e-6)


def test_cam_with_callable_target_is_a_clear_error(probed):
    with pytest.raises(InvalidInputError, match="callable target is not supported"):
        cam(probed, torch.rand(1, 3, 8, 8), lambda out: out[:, 0], "r2", check=False)


def test_guided_backprop_rejects_a_layer(probed):
    with pytest.raises(InvalidInputError, match="layer= and reshape= do not apply"):
        guided_backprop(probed, torch.rand(1, 3, 8, 8), 0, "r2")


def test_ablation_falls_back_when_the_layer_output_cannot_be_expanded():
    # A skip connection concatenated from below the layer breaks the expand trick (cat of
    # batch 1 with batch m): the fallback repeats the input and gives the same weights.
    torch.manual_seed(0)

    class Concat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1)
            self.layer = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.c1(x))
            return self.fc(torch.cat([a, self.layer(a)], dim=1).mean(dim=(2, 3)))

    net = Concat().double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    got = ablationcam(net, x, [0, 1], "layer", relu=False, normalize=False)
    a = net.layer(torch.relu(net.c1(x))).detach()
    w = net.fc.weight.detach()[:, 4:]  # d S_c / d mean(A_k)
    # ablating channel k removes w[c, k] * mean(A_k) from a linear head
    s = net(x).detach()
    drop = w[[0, 1]] * a.mean(dim=(2, 3))
    want = ((drop / s[[0, 1], [0, 1]].abs()[:, None])[:, :, None, None] * a).sum(1)
    torch.testing.assert_close(got, want)


def test_score_cam_skips_constant_channels_but_weights_them_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 3)).double()  # fmt: skip
    with torch.no_grad():  # channels 0 and 3 are dead (all zero after the ReLU), others live
        net[0].weight.abs_()
        net[0].bias.fill_(0.1)
        for k in (0, 3):
            net[0].weight[k].zero_()
            net[0].bias[k] = -1.0
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    rows = []
    handle = net.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    try:
        got = scorecam(net, x, [0, 2], "1", relu=False, normalize=False, forward_batch=64)
    finally:
        handle.remove()
    assert rows == [2, 8, 2]  # capture, 2 samples x 4 live channels, one zero-mask pass
    # the reference scores every channel, the dead ones with an all-zero mask
    a = net[1](net[0](x)).detach()
    for n, cls in enumerate([0, 2]):
        scores = []
        for k in range(6):
            m = torch.nn.functional.interpolate(a[n : n + 1, k : k + 1], size=(8, 8),
                                                mode="bilinear", align_corners=False)  # fmt: skip
            lo, hi = m.min(), m.max()
            mask = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
            scores.append(net(x[n : n + 1] * mask)[0, cls].detach())
        w = torch.softmax(torch.stack(scores), 0)
        torch.testing.assert_close(got[n], (w[:, None, None] * a[n]).sum(0), rtol=1e-6, atol=1e-9)


def test_target_scorer_fixes_predicted_classes():
    out = torch.tensor([[0.0, 3.0], [5.0, 1.0]])
    scorer, _ = score_targets(out, None)
    later = torch.tensor([[9.0, 0.0], [0.0, 9.0], [1.0, 2.0], [3.0, 4.0]])
    # rows of a later batch are scored for the class predicted on the first output
    torch.testing.assert_close(scorer.rows(later, torch.tensor([0, 1, 0, 1])),
                               torch.tensor([[0.0], [0.0], [2.0], [3.0]]))  # fmt: skip


def test_fast_scorecam_rejects_a_non_positive_top_k():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(InvalidInputError, match="top_k must be >= 1"):
        scorecam(net, torch.rand(1, 3, 8, 8), 0, "1", top_k=0)


class SideBranch(nn.Module):
    """conv-relu ["trunk"] -> pool -> fc; "side" runs on the trunk but its output is unused."""

    def __init__(self, *, use_side_without_grad: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.trunk = nn.ReLU()
        self.side = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)
        self.use_side_without_grad = use_side_without_grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.trunk(self.conv(x))
        s = self.side(a)
        if self.use_side_without_grad:  # the output depends on "side", autograd does not see it
            a = a + s.detach()
        return self.fc(a.mean(dim=(2, 3)))


LAYER_METHODS = sorted(set(BUILTIN) - INPUT_METHODS)


@pytest.mark.parametrize("name", LAYER_METHODS)
@pytest.mark.parametrize("layer", ["side", ["trunk", "side"]])
def test_a_layer_that_does_not_reach_the_output_is_the_same_error_for_every_method(
    hook_count, name, layer
):
    # Score-CAM and Ablation-CAM used to return all-zero maps, Eigen-CAM a full-range one;
    # every gradient method used to give the listed side layer zero gradients silently.
    torch.manual_seed(0)
    net = SideBranch().train()
    before = snapshot(net)
    with pytest.raises(HookError, match=r"layer\(s\) \['side'\] ran, but the target score does not depend on their output"):  # fmt: skip
        call(name, net, torch.rand(2, 3, 8, 8), [0, 2], layer)
    assert hook_count(net) == 0
    assert_same_state(before, snapshot(net))
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "eigencam", "iscam"])
def test_gradient_free_methods_explain_a_layer_used_without_gradients(name):
    # autograd sees no path from "side" here, but replacing its output moves the score:
    # the gradient-free methods still explain it, exactly as in the differentiable model
    torch.manual_seed(0)
    detached = SideBranch(use_side_without_grad=True)
    x = torch.rand(2, 3, 8, 8)
    raw = {"relu": False, "normalize": False}
    got = explain(name, detached, x, [0, 2], "side", **raw)

    class Differentiable(SideBranch):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.trunk(self.conv(x))
            return self.fc((a + self.side(a)).mean(dim=(2, 3)))

    same = Differentiable()
    same.load_state_dict(detached.state_dict())
    assert torch.equal(got, explain(name, same, x, [0, 2], "side", **raw))
    assert (got.flatten(1).abs().amax(1) > 0).all()  # real maps, not zeros
    with pytest.raises(HookError, match="does not depend on their output"):
        gradcam(detached, x, [0, 2], "side")


def test_a_forward_that_fails_under_autograd_still_runs_for_gradient_free_methods():
    # in-place on a view of chunk() is an autograd error only; Eigen-CAM needs no autograd
    # and so keeps working (run again without the reachability check)
    torch.manual_seed(0)

    class Chunked(nn.Module):
        def __init__(self, inplace: bool) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(2, 2)
            self.inplace = inplace

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = self.conv(x).chunk(2, dim=1)
            a = a.relu_() if self.inplace else a.relu()
            return self.fc((a + b).mean(dim=(2, 3)))

    x = torch.rand(2, 3, 8, 8)
    inplace, plain = Chunked(True), Chunked(False)
    plain.load_state_dict(inplace.state_dict())
    with pytest.raises(RuntimeError, match="inplace"):  # the gradient methods cannot
        gradcam(inplace, x, 0, "conv")
    assert torch.equal(eigencam(inplace, x, 0, "conv"), eigencam(plain, x, 0, "conv"))


def test_inputs_are_cast_to_the_models_floating_dtype(probed):
    # used to fail inside the first conv: "Input type (float) and bias type (c10::Half)..."
    x = torch.rand(2, 3, 8, 8)
    double = call("gradcam", probed, x.double(), 1)
    assert torch.equal(double, call("gradcam", probed, x.double().float(), 1))
    assert double.inputs.dtype == torch.float32
    half = ProbedNet().half()
    for name in ["gradcam", "scorecam", "eigencam", "guided_backprop"]:
        assert torch.equal(call(name, half, x, 1), call(name, half, x.half(), 1)), name
    assert torch.isfinite(call("gradcam", half, x, 1)).all()


def test_a_model_built_under_inference_mode_is_a_clear_error(hook_count):
    with torch.inference_mode():
        net = ProbedNet()
    for name in ["gradcam", "scorecam", "guided_backprop"]:
        with pytest.raises(InvalidInputError, match=r"built or loaded under torch\.inference_mode\(\).*torch\.no_grad\(\)"):  # fmt: skip
            call(name, net, torch.rand(2, 3, 8, 8), 1)
    assert hook_count(net) == 0 and net.training
    assert all(p.is_inference() for p in net.parameters())  # untouched


def test_a_torchscript_model_is_a_clear_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))  # fmt: skip
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated
        scripted = torch.jit.script(net)
    for name in ["gradcam", "eigencam", "input_gradients"]:
        with pytest.raises(
            InvalidInputError, match=r"TorchScript module .* Pass the eager nn\.Module"
        ):
            call(name, scripted, torch.rand(1, 3, 8, 8), 0, "1")

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = scripted

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    with pytest.raises(InvalidInputError, match=r"layer\(s\) \['body'\] are TorchScript"):
        gradcam(Wrapper(), torch.rand(1, 3, 8, 8), 0, "body")
    with pytest.raises(InvalidInputError, match=r"layer\(s\) \['body.1'\] are TorchScript"):
        gradcam(Wrapper(), torch.rand(1, 3, 8, 8), 0, "body.1")


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", ["gradcam", "scorecam", "ablationcam", "guided_backprop"])
def test_wrong_channel_count_names_the_expected_channels(probed, hook_count, name, channels):
    x = torch.rand(2, channels, 8, 8)
    message = f"the model expects 3 input channels but the inputs have {channels}"
    with pytest.raises(InvalidInputError, match=message):
        call(name, probed, x, 0)
    if name not in INPUT_METHODS:
        with pytest.raises(InvalidInputError, match=message):  # the default layer's probe
            explain(name, probed, x, 0, None)
    assert hook_count(probed) == 0 and probed.training


def test_a_model_error_that_is_not_about_channels_goes_through(probed):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("the model's own failure")

    with pytest.raises(RuntimeError, match="the model's own failure") as info:
        gradcam(Broken(), torch.rand(1, 3, 8, 8), 0, "conv")
    assert not isinstance(info.value, InvalidInputError)
    # a deeper convolution built for the wrong width: the inputs are right, torch's error stays
    inner = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(8, 2, 1), nn.Flatten())
    with pytest.raises(RuntimeError, match=r"expected input.* to have 8 channels") as info:
        gradcam(inner, torch.rand(1, 3, 4, 4), 0, "0")
    assert not isinstance(info.value, InvalidInputError)


def test_layer_of_a_wrong_type_is_a_clear_error(probed):
    # used to be TypeError: 'int' object is not iterable
    with pytest.raises(InvalidInputError, match=r"a layer is a qualified name .*; got 123 of type int"):  # fmt: skip
        gradcam(probed, torch.rand(1, 3, 8, 8), 0, 123)  # type: ignore[arg-type]


@pytest.mark.parametrize("pass_size", [None, 1])
def test_bools_in_a_target_list_are_rejected(probed, pass_size):
    # [False, 0] used to explain class 0 for both samples (also when cut into passes)
    with pytest.raises(InvalidInputError, match=r"target \[False, 0\] holds a bool"):
        gradcam(probed, torch.rand(2, 3, 8, 8), [False, 0], "r2", pass_size=pass_size)
    with pytest.raises(InvalidInputError, match="holds a bool"):
        scorecam(probed, torch.rand(2, 3, 8, 8), [0, True], "r2")


@pytest.mark.parametrize("error", [ValueError("the model's own failure"), torch.OutOfMemoryError("out of memory")])  # fmt: skip
def test_ablation_probe_lets_the_models_own_exceptions_through(hook_count, error):
    # the batch probe used to catch every exception and silently fall back
    torch.manual_seed(0)

    class FailsOnce(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 2:  # 1: the capture, 2: the expand probe
                raise error
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    net = FailsOnce().train()
    with pytest.raises(type(error), match=str(error)):
        ablationcam(net, torch.rand(2, 3, 8, 8), 0, "conv")
    assert net.calls == 2 and hook_count(net) == 0 and net.training
    assert all(p.requires_grad for p in net.parameters())
