"""Deletion / insertion curves and confidence drop against hand-built models and a manual loop."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.measure import (
    average_drop,
    deletion_auc,
    increase_in_confidence,
    insertion_auc,
    perturbation_curve,
)
from modelaudit.measure.faithfulness import _blur


class Bright(nn.Module):
    """Two classes; logit 0 = gain * mean brightness, logit 1 = 0, so p0 = sigmoid(gain*mean)."""

    def __init__(self, gain: float = 4.0) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gain * x.mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


IMAGE = torch.tensor([[[[1.0, 0.5], [0.25, 0.0]]]])  # brightness sum 1.75 over 4 pixels


def test_deletion_curve_hand_computed() -> None:
    # perfect map: removes 1, then 0.5, then 0.25, then 0 -> sums 1.75, .75, .25, 0, 0
    curve = perturbation_curve(Bright(), IMAGE, IMAGE[:, 0], target=0, steps=4)
    want = [sigmoid(4 * s / 4) for s in (1.75, 0.75, 0.25, 0.0, 0.0)]
    assert curve[0].tolist() == pytest.approx(want, abs=1e-6)
    auc = deletion_auc(Bright(), IMAGE, IMAGE[:, 0], target=0, steps=4)
    assert auc.item() == pytest.approx((sum(want) - (want[0] + want[-1]) / 2) / 4, abs=1e-6)
    # the reversed map removes the dark pixels first: a worse (higher) deletion AUC
    worse = deletion_auc(Bright(), IMAGE, -IMAGE[:, 0], target=0, steps=4)
    assert worse.item() > auc.item()


def test_insertion_curve_hand_computed_with_zero_fill() -> None:
    curve = perturbation_curve(
        Bright(), IMAGE, IMAGE[:, 0], mode="insertion", target=0, fill="zeros", steps=4
    )
    want = [sigmoid(s) for s in (0.0, 1.0, 1.5, 1.75, 1.75)]
    assert curve[0].tolist() == pytest.approx(want, abs=1e-6)
    got = insertion_auc(Bright(), IMAGE, IMAGE[:, 0], target=0, fill="zeros", steps=4)
    assert got.item() == pytest.approx((sum(want) - (want[0] + want[-1]) / 2) / 4, abs=1e-6)


def manual_curve(
    model: nn.Module,
    x: torch.Tensor,
    m: torch.Tensor,
    steps: int,
    target: int,
    mode: str,
    base: torch.Tensor,
) -> list[float]:
    """Independent per-step, per-pixel implementation of the documented procedure."""
    h, w = m.shape
    values = m.flatten().tolist()
    order = sorted(range(h * w), key=lambda i: (-values[i], i))  # stable: row-major ties
    out = []
    for k in range(steps + 1):
        count = (k * h * w) // steps
        img = x.clone() if mode == "deletion" else base.clone()
        for p in order[:count]:
            r, c = divmod(p, w)
            img[:, r, c] = base[:, r, c] if mode == "deletion" else x[:, r, c]
        out.append(model(img[None]).softmax(1)[0, target].item())
    return out


@pytest.mark.parametrize(
    ("mode", "fill"),
    [("deletion", "zeros"), ("insertion", "blur"), ("deletion", "mean"), ("insertion", "zeros")],
)
def test_curves_match_a_manual_loop(mode: str, fill: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 25, 4)
    )
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 5, 5, generator=g)
    maps = torch.randint(0, 4, (3, 5, 5), generator=g).float()  # many ties
    got = perturbation_curve(
        net, x, maps, mode=mode, target=[0, 3, 1], fill=fill, steps=7, forward_batch=5
    )  # type: ignore[arg-type]
    if fill == "zeros":
        base = torch.zeros_like(x)
    elif fill == "mean":
        base = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    else:
        base = torch.from_numpy(
            gaussian_filter(x.double().numpy(), sigma=(0, 0, 5, 5), mode="nearest", truncate=3.0)
        ).float()
    for i, t in enumerate([0, 3, 1]):
        with torch.no_grad():
            want = manual_curve(net, x[i], maps[i], 7, t, mode, base[i])
        assert got[i].tolist() == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize(
    ("mode", "fill", "target", "images_through_model"),
    [
        ("deletion", "zeros", None, 3 + 3 * 3 + 1),  # originals, steps 1-3, one shared blank
        ("insertion", "zeros", 1, 3 + 3 * 3 + 1),  # blank first, originals last
        ("deletion", "mean", None, 3 + 4 * 3),  # a fill per image: no sharing
        ("deletion", "zeros", "callable", 3 + 4 * 3),  # callables score whole batches
    ],
)
def test_curve_costs_steps_times_n_forwards(mode, fill, target, images_through_model):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, maps = torch.rand(3, 1, 3, 4), torch.rand(3, 3, 4)
    with torch.no_grad():
        logits, blank_logits = net(x), net(torch.zeros_like(x))
    if target == "callable":
        target, score, blank = (lambda out: out[:, 0]), logits[:, 0], blank_logits[:, 0]
    else:
        cls = logits.argmax(1) if target is None else torch.full((3,), target)
        pick = torch.arange(3), cls
        score, blank = logits.softmax(1)[pick], blank_logits.softmax(1)[pick]
    seen: list[int] = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    curve = perturbation_curve(
        net, x, maps, mode=mode, fill=fill, target=target, steps=4, forward_batch=4
    )
    assert sum(seen) == images_through_model
    intact, empty = (0, 4) if mode == "deletion" else (4, 0)
    assert torch.allclose(curve[:, intact], score, atol=1e-6)  # reused from the first forward
    if fill == "zeros":
        assert torch.allclose(curve[:, empty], blank, atol=1e-6)  # scored once, for all


def test_blur_matches_scipy_gaussian_filter() -> None:
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = gaussian_filter(x.numpy(), sigma=(0, 0, 5, 5), mode="nearest", truncate=3.0)
    assert torch.allclose(_blur(x), torch.from_numpy(want), atol=1e-10)


def test_forward_batch_steps_counts_and_tensor_fills() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.rand(4, 1, 3, 4)
    maps = torch.rand(4, 3, 4)
    one = perturbation_curve(net, x, maps, steps=5, forward_batch=1)
    many = perturbation_curve(net, x, maps, steps=5, forward_batch=64)
    assert one.shape == (4, 6) and torch.allclose(one, many)
    # a fill equal to the image changes nothing along the curve
    flat = perturbation_curve(net, x, maps, steps=5, fill=x.clone())
    assert torch.allclose(flat, flat[:, :1].expand(-1, 6))
    # a broadcast fill: the full deletion equals scoring the filled image
    grey = torch.full((1, 1, 1), 0.5)
    curve = perturbation_curve(net, x, maps, steps=3, fill=grey, target=2)
    with torch.no_grad():
        want = net(torch.full_like(x, 0.5)).softmax(1)[:, 2]
    assert torch.allclose(curve[:, -1], want, atol=1e-6)
    with pytest.raises(
        InvalidInputError,
        match=r"fill tensor of shape \(2, 3, 4\) does not broadcast to the images' shape \(4, 1, 3, 4\)",
    ):
        perturbation_curve(net, x, maps, fill=torch.zeros(2, 3, 4))
    with pytest.raises(
        InvalidInputError, match="fill must be 'zeros', 'blur', 'mean' or a tensor; got 'noise'"
    ):
        perturbation_curve(net, x, maps, fill="noise")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="steps must be a positive int; got 0"):
        perturbation_curve(net, x, maps, steps=0)
    with pytest.raises(InvalidInputError, match="mode must be 'deletion' or 'insertion'"):
        perturbation_curve(net, x, maps, mode="both")  # type: ignore[arg-type]


def test_targets_predicted_class_fixed_and_callables() -> None:
    net = Bright()
    # predicted class of a bright image is 0 (logit 4 > 0); it stays the target as pixels go
    auto = perturbation_curve(net, IMAGE, IMAGE[:, 0], steps=4)
    assert torch.allclose(auto, perturbation_curve(net, IMAGE, IMAGE[:, 0], steps=4, target=0))
    raw = perturbation_curve(net, IMAGE, IMAGE[:, 0], steps=4, target=lambda out: out[:, 0])
    assert raw[0].tolist() == pytest.approx([1.75, 0.75, 0.25, 0.0, 0.0])  # the raw logit
    with pytest.raises(InvalidInputError, match="explain one class per sample"):
        deletion_auc(net, IMAGE, IMAGE[:, 0], target=[[0, 1]])
    with pytest.raises(InvalidInputError, match="out of range"):
        deletion_auc(net, IMAGE, IMAGE[:, 0], target=5)


def test_model_mode_is_restored_and_eval_is_used() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(4, 2)).train()
    a = deletion_auc(net, IMAGE, IMAGE[:, 0], steps=4)
    b = deletion_auc(net, IMAGE, IMAGE[:, 0], steps=4)
    assert torch.equal(a, b)  # dropout off: deterministic
    assert net.training and net[1].training


def test_average_drop_and_increase_hand_computed() -> None:
    net = Bright(gain=4.0)
    half = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])  # keep the top row
    y = sigmoid(4 * 1.75 / 4)
    o = sigmoid(4 * 1.5 / 4)
    assert average_drop(net, IMAGE, half, target=0).item() == pytest.approx((y - o) / y, abs=1e-6)
    # a map scaled by its max: 3 * half is the same explanation
    assert average_drop(net, IMAGE, 3 * half, target=0).item() == pytest.approx(
        (y - o) / y, abs=1e-6
    )
    assert increase_in_confidence(net, IMAGE, half, target=0).tolist() == [0.0]
    # class 1 gains when the image darkens: confidence increases and there is no drop
    assert increase_in_confidence(net, IMAGE, half, target=1).tolist() == [1.0]
    assert average_drop(net, IMAGE, half, target=1).tolist() == [0.0]
    # a zero map blanks the image: p0 falls to sigmoid(0) = 0.5
    zero = average_drop(net, IMAGE, torch.zeros(1, 2, 2), target=0).item()
    assert zero == pytest.approx((y - 0.5) / y, abs=1e-6)


def test_average_drop_refuses_non_positive_scores() -> None:
    dark = torch.zeros(1, 1, 2, 2)
    with pytest.raises(
        InvalidInputError,
        match="average drop needs positive scores; sample 0 scores 0 on the original image",
    ):
        average_drop(Bright(), dark, torch.ones(1, 2, 2), target=lambda out: out[:, 0])
