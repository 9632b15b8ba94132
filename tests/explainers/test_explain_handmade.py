"""Hand-set weights, values computed by hand (the derivations are in the comments).

Model: x (1 channel, 2x2) -> Conv2d(1, 2, 1) -> ReLU -> global average pool -> Linear(2, 2).
    conv: A0 = 1 * x + 0,  A1 = -1 * x + 2.5
    x  = [[1, 2], [3, 4]]
    A0 = [[1, 2], [3, 4]]          A1 = [[1.5, 0.5], [-0.5, -1.5]]
    ReLU(A1) = [[1.5, 0.5], [0, 0]];  GAP: [2.5, 0.5]
    Linear rows: class 0 -> [1, 4], class 1 -> [-1, 1], bias 0
    S0 = 2.5 + 4 * 0.5 = 4.5;   S1 = -2.5 + 0.5 = -2.0
Explained layer: the conv output (before the ReLU), so the ReLU masks gradients:
    dS0/dA0 = 1/4 everywhere;  dS0/dA1 = 4/4 = 1 where A1 > 0, else 0 -> [[1, 1], [0, 0]]
    dS1/dA0 = -1/4 everywhere; dS1/dA1 = 1/4 where A1 > 0           -> [[.25, .25], [0, 0]]
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.explainers import (
    cam,
    gradcam,
    gradcam_pp,
    hirescam,
    layercam,
    upsample_maps,
    xgradcam,
)

RAW = {"relu": False, "normalize": False, "upsample": False}


@pytest.fixture
def hand_net() -> nn.Sequential:
    net = nn.Sequential(
        nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        net[0].bias.copy_(torch.tensor([0.0, 2.5]))
        net[4].weight.copy_(torch.tensor([[1.0, 4.0], [-1.0, 1.0]]))
        net[4].bias.zero_()
    return net.double()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)


def test_scores_are_as_derived(hand_net, x):
    torch.testing.assert_close(hand_net(x).detach(), torch.tensor([[4.5, -2.0]]).double())


def test_gradcam_class0_by_hand(hand_net, x):
    # w0 = mean(1/4) = 0.25; w1 = mean([1, 1, 0, 0]) = 0.5
    # map = 0.25 * A0 + 0.5 * A1 = [[0.25 + 0.75, 0.5 + 0.25], [0.75 - 0.25, 1 - 0.75]]
    want = torch.tensor([[1.0, 0.75], [0.5, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(gradcam(hand_net, x, 0, "0", **RAW)[0], want)
    # normalised: (m - 0.25) / 0.75
    norm = torch.tensor([[1.0, 2 / 3], [1 / 3, 0.0]], dtype=torch.float64)
    got = gradcam(hand_net, x, 0, "0", upsample=False)[0]
    torch.testing.assert_close(got, norm, rtol=0, atol=1e-7)


def test_gradcam_class1_is_negative_so_relu_gives_zero_map(hand_net, x):
    # w0 = -0.25, w1 = mean([.25, .25, 0, 0]) = 0.125
    # map = -0.25 * A0 + 0.125 * A1 = [[-0.0625, -0.4375], [-0.8125, -1.1875]]
    want = torch.tensor([[-0.0625, -0.4375], [-0.8125, -1.1875]], dtype=torch.float64)
    torch.testing.assert_close(gradcam(hand_net, x, 1, "0", **RAW)[0], want)
    zero = gradcam(hand_net, x, 1, "0")
    assert zero.shape == (1, 2, 2)
    assert torch.equal(zero, torch.zeros_like(zero))


def test_two_targets_in_one_call(hand_net, x):
    both = gradcam(hand_net, x, [[0, 1]], "0", **RAW)
    assert both.shape == (1, 2, 2, 2)
    torch.testing.assert_close(both[0, 0], torch.tensor([[1.0, 0.75], [0.5, 0.25]]).double())
    torch.testing.assert_close(
        both[0, 1], torch.tensor([[-0.0625, -0.4375], [-0.8125, -1.1875]]).double()
    )


def test_upsampled_gradcam_by_hand(hand_net, x):
    # Bilinear, align_corners=False, 2 -> 4 along each axis: [a, b] -> [a, .75a+.25b, .25a+.75b, b]
    # rows of the raw map: [1, .75] and [.5, .25]
    row0 = [1.0, 0.9375, 0.8125, 0.75]
    row1 = [0.5, 0.4375, 0.3125, 0.25]
    rows = [row0, [0.75 * a + 0.25 * b for a, b in zip(row0, row1)],
            [0.25 * a + 0.75 * b for a, b in zip(row0, row1)], row1]  # fmt: skip
    want = torch.tensor(rows, dtype=torch.float64)
    raw = gradcam(hand_net, x, 0, "0", **RAW)
    torch.testing.assert_close(upsample_maps(raw, (4, 4))[0], want)
    # the 2x2 input is already the layer's size: upsample=True leaves the map as it is
    torch.testing.assert_close(gradcam(hand_net, x, 0, "0", relu=False, normalize=False), raw)


def test_hirescam_by_hand(hand_net, x):
    # sum_k g_k * A_k = (1/4) A0 + [[1, 1], [0, 0]] * A1 = [[0.25 + 1.5, 0.5 + 0.5], [0.75, 1.0]]
    want = torch.tensor([[1.75, 1.0], [0.75, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(hirescam(hand_net, x, 0, "0", **RAW)[0], want)


def test_layercam_by_hand(hand_net, x):
    # sum_k ReLU(g_k) A_k is the same as HiResCAM here (all gradients of class 0 are >= 0)
    want = torch.tensor([[1.75, 1.0], [0.75, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(layercam(hand_net, x, 0, "0", **RAW)[0], want)
    # class 1: ReLU(-1/4) = 0 for A0; ReLU(g1) A1 = [[.25 * 1.5, .25 * .5], [0, 0]]
    want1 = torch.tensor([[0.375, 0.125], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(layercam(hand_net, x, 1, "0", **RAW)[0], want1)


def test_xgradcam_by_hand(hand_net, x):
    # w0 = sum(g0 * A0) / sum(A0) = (10 / 4) / 10 = 0.25
    # w1 = sum(g1 * A1) / sum(A1) = (1.5 + 0.5) / 0 -> sum(A1) = 0: weight 0 by convention
    want = 0.25 * x[0, 0]
    torch.testing.assert_close(xgradcam(hand_net, x, 0, "0", **RAW)[0], want)


def test_gradcam_pp_by_hand(hand_net, x):
    # Piecewise-linear head: alpha = g^2 / (2 g^2 + sum(A) g^3)
    # channel 0: g = 1/4, sum(A0) = 10: alpha = (1/16) / (2/16 + 10/64) = 0.0625 / 0.28125 = 2/9
    #            w0 = 4 positions * (2/9) * (1/4) = 2/9
    # channel 1: g = 1 at two positions, sum(A1) = 0: alpha = 1 / 2; w1 = 2 * 0.5 * 1 = 1
    want = (2 / 9) * x[0, 0] + 1.0 * torch.tensor([[1.5, 0.5], [-0.5, -1.5]]).double()
    torch.testing.assert_close(gradcam_pp(hand_net, x, 0, "0", **RAW)[0], want)


def test_cam_by_hand(hand_net, x):
    # CAM on the ReLU output (the layer before pooling): W[0] = [1, 4]
    # 1 * A0 + 4 * ReLU(A1) = [[1 + 6, 2 + 2], [3, 4]]
    want = torch.tensor([[7.0, 4.0], [3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(cam(hand_net, x, 0, "1", **RAW)[0], want)
    # and equals 4 * HiResCAM / Grad-CAM at that layer (GAP over 4 positions)
    torch.testing.assert_close(gradcam(hand_net, x, 0, "1", **RAW)[0] * 4, want)


def test_cam_refuses_a_layer_that_is_not_before_the_pooling(hand_net, x):
    from modelaudit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="CAM's formula does not describe"):
        cam(hand_net, x, 0, "0")  # the ReLU sits between this layer and the pooling
    unchecked = cam(hand_net, x, 0, "0", check=False, **RAW)[0]
    want = 1 * x[0, 0] + 4 * torch.tensor([[1.5, 0.5], [-0.5, -1.5]]).double()
    torch.testing.assert_close(unchecked, want)


def test_plusplus_weights_from_the_gradient_equal_the_general_formula():
    from modelaudit.explainers.gradient_cams import (
        plusplus_weights,
        plusplus_weights_from_gradient,
    )

    gen = torch.Generator().manual_seed(5)
    acts = torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64)  # sums of both signs
    g = torch.randn(3, 2, 4, 5, 6, generator=gen, dtype=torch.float64)
    g[0, 0, 0] = 0.0  # zero gradients: alpha = 0/0 -> 0
    acts[1, 2] = 0.0
    acts[1, 2, 0, 0] = -4.0  # channel sum S = -4 exactly
    g[1, 1, 2, 0, 0] = 0.5  # g > 0 and 2 + S g = 0 exactly: a vanishing denominator -> 0
    general = plusplus_weights(acts, g, g.pow(2), g.pow(3))
    lean = plusplus_weights_from_gradient(acts, g)
    assert lean.shape == (3, 2, 4)
    assert general.abs().amax() > 0
    assert torch.isfinite(lean).all() and torch.isfinite(general).all()
    torch.testing.assert_close(lean, general, rtol=1e-12, atol=1e-12)
