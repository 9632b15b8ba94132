"""Laws every method must obey, whatever the input: locality, flips, zeros, batching."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from modelaudit.explainers import available_methods, explain, get_method

# Options that keep the expensive methods cheap; everything else runs with defaults.
CHEAP = {
    "smooth_gradcam_pp": {"num_samples": 2},
    "sscam": {"num_samples": 2},
    "iscam": {"num_samples": 2},
}
NOISE_OFF = {"smooth_gradcam_pp": {"noise_level": 0.0}, "sscam": {"std": 0.0}}
INPUT_METHODS = {"input_gradients", "guided_backprop"}
BUILTIN = [
    "ablationcam", "cam", "eigencam", "eigengradcam", "gradcam", "gradcam_elementwise",
    "gradcam_pp", "guided_backprop", "guided_gradcam", "hirescam", "input_gradients",
    "iscam", "layercam", "scorecam", "smooth_gradcam_pp", "sscam", "xgradcam",
]  # fmt: skip


def run(name, model, x, target, layer="r2", **kw):
    opts = {**CHEAP.get(name, {}), **kw}
    if name in INPUT_METHODS:
        return explain(name, model, x, target, **opts)
    return explain(name, model, x, target, layer, **opts)


def images(n: int, size: int = 8):
    return st.integers(0, 2**31 - 1).map(
        lambda seed: torch.rand(
            n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
    )


class RightHalfNet(nn.Module):
    """Zeroes the left half of the image, then 1x1 convs: activations at the left are 0."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 1, bias=False)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 3, 1, bias=False)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones_like(x)
        keep[..., : x.shape[-1] // 2] = 0
        return self.fc(self.pool(self.r2(self.c2(self.r1(self.c1(x * keep))))).flatten(1))


def test_builtin_methods_are_all_registered():
    assert set(BUILTIN) <= set(available_methods())


@pytest.mark.parametrize("name", BUILTIN)
def test_ignored_left_half_gets_zero_map(name):
    torch.manual_seed(3)
    model = RightHalfNet().double().eval()
    with torch.no_grad():  # positive weights: every channel supports every class
        model.c1.weight.abs_()
        model.c2.weight.abs_()
        model.fc.weight.abs_()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) + 0.1
    kw = {"center": False} if name.startswith("eigen") else {}
    maps = run(name, model, x, [0, 2], **kw)
    assert maps.shape == (2, 8, 8)
    assert torch.all(maps[..., :4] == 0), maps[..., :4].abs().max()
    assert torch.all(maps[..., 4:].amax(dim=(-2, -1)) > 1 - 1e-6)  # the right half is explained


# SS-CAM draws noise that is not flipped along with the input, so the law holds only in law.
@pytest.mark.parametrize("name", [m for m in BUILTIN if m != "sscam"])
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(x=images(2))
def test_flipping_the_input_flips_the_map(symmetric_net, name, x):
    maps = run(name, symmetric_net, x, [1, 3])
    flipped = run(name, symmetric_net, x.flip(-1), [1, 3])
    torch.testing.assert_close(flipped, maps.flip(-1), rtol=1e-6, atol=1e-6)


class DeadNet(nn.Module):
    """The explained layer outputs exact zeros (ReLU of a negative constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.c1.weight.zero_()
            self.c1.bias.fill_(-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.r2(self.c1(x))).flatten(1))


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("normalize", [True, False])
def test_all_zero_activations_give_zero_maps_not_nan(name, normalize):
    model = DeadNet().double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    maps = run(name, model, x, [[0, 1], [2, 0]], normalize=normalize)
    assert maps.shape == (2, 2, 8, 8)
    assert not maps.isnan().any()
    assert torch.all(maps == 0)


@pytest.mark.parametrize("name", BUILTIN)
def test_k_targets_equal_k_single_calls(small_net, gap_net, name):
    small_net = gap_net if name == "cam" else small_net  # CAM needs a GAP -> Linear head
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    targets = torch.tensor([[0, 1], [2, 2], [1, 0]])
    both = run(name, small_net, x, targets)
    assert both.shape == (3, 2, 8, 8)
    for k in range(2):
        single = run(name, small_net, x, targets[:, k])
        torch.testing.assert_close(both[:, k], single, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_sample_gets_its_own_target(small_net, gap_net, name):
    # pytorch-grad-cam 1.5.7 gives all-zero maps to images 2..8 with one target for 8 images.
    small_net = gap_net if name == "cam" else small_net
    torch.manual_seed(1)
    x = torch.rand(8, 3, 8, 8, dtype=torch.float64)
    targets = [0, 1, 2, 0, 1, 2, 2, 1]
    # Noise is drawn for the batch as a whole; switch it off to compare with single images.
    opts = NOISE_OFF.get(name, {})
    batch = run(name, small_net, x, targets, **opts)
    shared = run(name, small_net, x, 2, **opts)
    for i in range(8):
        alone = run(name, small_net, x[i : i + 1], targets[i], **opts)
        torch.testing.assert_close(batch[i], alone[0], rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(shared[i], run(name, small_net, x[i : i + 1], 2, **opts)[0],
                                   rtol=1e-7, atol=1e-9)  # fmt: skip
    if name != "guided_gradcam":  # it multiplies by the ReLU'd Grad-CAM, legitimately 0 here
        raw = run(name, small_net, x, 2, relu=False, normalize=False, **opts)
        assert bool((raw.flatten(1).abs().amax(1) > 0).all())  # no silently empty sample


def test_callable_target_equals_class_index(small_net):
    torch.manual_seed(2)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    picks = torch.tensor([2, 0, 1])
    for name in ("gradcam", "scorecam", "ablationcam", "input_gradients"):
        by_index = run(name, small_net, x, [2, 0, 1])
        by_fn = run(
            name, small_net, x, lambda out: out.gather(1, picks[:, None].to(out.device))[:, 0]
        )
        torch.testing.assert_close(by_fn, by_index, rtol=1e-7, atol=1e-9)


def test_none_target_explains_the_predicted_class(small_net):
    torch.manual_seed(4)
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        predicted = small_net(x).argmax(1)
    for name in ("gradcam", "scorecam", "smooth_gradcam_pp"):
        torch.testing.assert_close(
            run(name, small_net, x, None), run(name, small_net, x, predicted)
        )


@pytest.mark.parametrize("name", ["gradcam", "ablationcam", "guided_backprop"])
def test_maps_are_scale_free(small_net, name):
    # Normalised maps of methods linear in the score do not depend on the score's scale
    # (not so for Score-CAM: its softmax of raw scores changes with their scale).
    torch.manual_seed(8)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    scaled = nn.Sequential(small_net, nn.Identity())
    with torch.no_grad():
        small_net.fc.weight.mul_(1e-6)
        small_net.fc.bias.mul_(1e-6)
    tiny = run(name, scaled, x, [0, 1], layer="0.r2")
    peaks = tiny.amax(dim=(-2, -1))
    assert torch.all((peaks == 0) | (peaks > 1 - 1e-6))  # not flattened by an absolute eps
    assert bool((peaks > 0).any())
    with torch.no_grad():
        small_net.fc.weight.mul_(1e6)
        small_net.fc.bias.mul_(1e6)
    torch.testing.assert_close(tiny, run(name, small_net, x, [0, 1]), rtol=1e-5, atol=1e-6)


def test_every_method_has_the_common_signature():
    import inspect

    for name in BUILTIN:
        params = inspect.signature(get_method(name)).parameters
        assert list(params)[:4] == ["model", "inputs", "target", "layer"], name
        for kw in ("reshape", "relu", "normalize", "upsample"):
            assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, (name, kw)
