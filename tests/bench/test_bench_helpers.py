"""The bench's own yardsticks: the floor / reference CAM, the shared map conventions, timing.

The benchmark judges our engine and the peers against ``bench/_impls.py``'s floor and
textbook formulas, so those are checked here against plain autograd and hand-computed
values. Only torch and torchvision are needed (no peer library).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import _impls  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(inplace=True),  # in-place after the layer: the floor's clone must guard it
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 6),
    ).eval()


def _plain_autograd(
    net: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation of layer "2" and d(sum of target logits)/d(activation), the obvious way."""
    a = net[1](net[0](x)).detach()
    a2 = net[2](a).detach().requires_grad_(True)
    out = net[4:](F.relu(a2))
    (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), a2)
    return a2.detach(), g


def test_layer_grad_matches_plain_autograd_and_restores_the_model() -> None:
    net = _net()
    x = torch.rand(3, 3, 8, 8)
    target = torch.tensor([0, 5, 2])
    a, g = _impls.layer_grad(net, x, target, "2")
    a_ref, g_ref = _plain_autograd(net, x, target)
    torch.testing.assert_close(a, a_ref)
    torch.testing.assert_close(g, g_ref)
    assert all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())
    assert torch.is_grad_enabled()


def test_layer_grad_with_k_targets_equals_one_backward_per_class() -> None:
    net = _net()
    x = torch.rand(2, 3, 8, 8)
    targets = torch.tensor([[1, 4, 0], [3, 3, 5]])
    _, g = _impls.layer_grad(net, x, targets, "2")
    assert g.shape == (3, 2, 5, 8, 8)
    for k in range(3):
        _, g_k = _plain_autograd(net, x, targets[:, k])
        torch.testing.assert_close(g[k], g_k)


def test_reference_cams_by_hand() -> None:
    # two channels of a 1x2 map: A_0 = [1, 3], A_1 = [2, 0]; gradients G_0 = [1, -3], G_1 = [2, 2]
    a = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])
    g = torch.tensor([[[[1.0, -3.0]], [[2.0, 2.0]]]])
    # Grad-CAM: weights = spatial means (-1, 2) -> -1 * [1, 3] + 2 * [2, 0] = [3, -3]
    torch.testing.assert_close(_impls.reference_cam("gradcam", a, g), torch.tensor([[[3.0, -3.0]]]))
    # LayerCAM: relu(G) * A summed over channels -> [1 + 4, 0 + 0] = [5, 0]
    torch.testing.assert_close(_impls.reference_cam("layercam", a, g), torch.tensor([[[5.0, 0.0]]]))
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3); channel 0 sum(A) = 4, channel 1 sum(A) = 2
    # ch0: pixel 0 alpha = 1 / (2 + 4) = 1/6, relu(g) = 1; pixel 1 relu(g) = 0 -> w0 = 1/6
    # ch1: alpha = 4 / (8 + 2 * 8) = 1/6 at both pixels, relu(g) = 2 -> w1 = 2/3
    # map = 1/6 * [1, 3] + 2/3 * [2, 0] = [3/2, 1/2]
    torch.testing.assert_close(
        _impls.reference_cam("gradcam_pp", a, g), torch.tensor([[[1.5, 0.5]]])
    )


def test_finish_maps_relu_bilinear_minmax() -> None:
    # [0, 1] -> width 4 with half-pixel centres: samples at -0.25, 0.25, 0.75, 1.25 (clamped)
    out = _common.finish_maps(torch.tensor([[[0.0, 1.0]]]), (1, 4))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))
    # negatives are cut before the min-max; an all-negative map becomes all zero, never NaN
    raw = torch.tensor([[[-2.0, 2.0], [4.0, -1.0]], [[-1.0, -3.0], [-2.0, -5.0]]])
    out = _common.finish_maps(raw, (2, 2))
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [1.0, 0.0]]), atol=1e-6, rtol=0)
    assert torch.equal(out[1], torch.zeros(2, 2))
    # (N, K, h, w) keeps its leading dims
    assert _common.finish_maps(torch.rand(2, 3, 4, 4), (8, 8)).shape == (2, 3, 8, 8)


@pytest.mark.slow
def test_timed_rounds_interleaves_and_keeps_the_first_results() -> None:
    calls: list[str] = []

    def entry(name: str):
        def fn() -> str:
            calls.append(name)
            return f"{name}{len(calls)}"

        return fn

    res = _common.timed_rounds({"a": entry("a"), "b": entry("b")}, reps=2, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert res.first == {"a": "a1", "b": "b2"}
    assert [len(v) for v in res.cpu.values()] == [2, 2]
    assert [len(v) for v in res.wall.values()] == [2, 2]
    assert all(t >= 0 for v in res.wall.values() for t in v)
    cold = _common.timed_rounds({"a": entry("a")}, reps=1, warmup=0)
    assert len(cold.cpu["a"]) == 1 and cold.first["a"] == "a7"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.2345, "1.23"),
        (0.004, "4.0e-03"),
        (float("nan"), "-"),
        (None, "-"),
        (True, "yes"),
    ],
)
def test_fmt(value: object, text: str) -> None:
    assert _common.fmt(value) == text


def test_table_aligns_columns() -> None:
    lines = _common.table(["a", "long name"], [[1.0, "x"], ["wide cell", 0.5]]).splitlines()
    assert lines[0] == "| a         | long name |"
    assert lines[1] == "|-----------|-----------|"
    assert lines[2] == "| 1.00      | x         |"
    assert lines[3] == "| wide cell | 0.50      |"
