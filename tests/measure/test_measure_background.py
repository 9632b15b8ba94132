"""Background counterfactuals and reliance (Xiao et al. 2020), checked pixel by pixel and
against hand-built models whose answers are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.measure import (
    BackgroundReliance,
    Counterfactuals,
    background_counterfactuals,
    background_reliance,
)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one intra-op thread."""


# -- construction, pixel by pixel -------------------------------------------------------------

F0 = 100 / 13  # image 0's background: 0..15 without 5, 6, 9 -> (120 - 20) / 13
F1 = 107.5  # image 1's background: 100..115 without 100, 115 -> (1720 - 215) / 14


def tiny() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 1x4x4 images (0..15 and 100..115) and their masks (3 and 2 pixels)."""
    img0 = torch.arange(16.0).view(1, 4, 4)
    images = torch.stack([img0, img0 + 100])
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 1, 1] = masks[0, 1, 2] = masks[0, 2, 1] = True  # values 5, 6, 9
    masks[1, 0, 0] = masks[1, 3, 3] = True  # values 100, 115
    return images, masks


ONLY_BG = [
    [[0, 1, 2, 3], [4, F0, F0, 7], [8, F0, 10, 11], [12, 13, 14, 15]],
    [[F1, 101, 102, 103], [104, 105, 106, 107], [108, 109, 110, 111], [112, 113, 114, F1]],
]
ONLY_FG = [
    [[F0, F0, F0, F0], [F0, 5, 6, F0], [F0, 9, F0, F0], [F0, F0, F0, F0]],
    [[100, F1, F1, F1], [F1, F1, F1, F1], [F1, F1, F1, F1], [F1, F1, F1, 115]],
]
MIXED = [  # object 0 on image 1's Only-BG, object 1 on image 0's Only-BG
    [[F1, 101, 102, 103], [104, 5, 6, 107], [108, 9, 110, 111], [112, 113, 114, F1]],
    [[100, 1, 2, 3], [4, F0, F0, 7], [8, F0, 10, 11], [12, 13, 14, 115]],
]


def as_images(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[:, None]


def test_every_pixel_with_the_mean_fill_and_a_same_label_pair() -> None:
    images, masks = tiny()
    cf = background_counterfactuals(images, masks=masks, labels=[3, 3])
    assert isinstance(cf, Counterfactuals)
    assert cf.fills[:, 0].tolist() == pytest.approx([F0, F1])
    torch.testing.assert_close(cf.only_bg, as_images(ONLY_BG))
    torch.testing.assert_close(cf.only_fg, as_images(ONLY_FG))
    torch.testing.assert_close(cf.mixed_rand, as_images(MIXED))
    assert cf.mixed_same is not None and cf.partner_same is not None
    torch.testing.assert_close(cf.mixed_same, as_images(MIXED))
    assert cf.partner_rand.tolist() == [1, 0] and cf.partner_same.tolist() == [1, 0]
    # both images share label 3: no different-label background exists
    assert cf.rand_same_label.tolist() == [True, True]
    assert cf.same_is_self is not None and cf.same_is_self.tolist() == [False, False]
    assert torch.equal(cf.masks, masks)


def test_different_labels_alone_in_their_class_mix_same_with_themselves() -> None:
    images, masks = tiny()
    cf = background_counterfactuals(images, masks=masks, labels=torch.tensor([0, 1]))
    torch.testing.assert_close(cf.mixed_rand, as_images(MIXED))
    assert cf.rand_same_label.tolist() == [False, False]
    assert cf.same_is_self is not None and cf.same_is_self.tolist() == [True, True]
    assert cf.mixed_same is not None
    torch.testing.assert_close(cf.mixed_same, images)  # the object back on its own background


def test_without_labels_there_is_no_mixed_same() -> None:
    images, masks = tiny()
    cf = background_counterfactuals(images, masks=masks)
    torch.testing.assert_close(cf.mixed_rand, as_images(MIXED))
    assert cf.mixed_same is None and cf.partner_same is None and cf.same_is_self is None
    assert cf.rand_same_label.tolist() == [False, False]


def test_boxes_black_and_constant_fills() -> None:
    images, _ = tiny()
    boxes = torch.tensor([[1, 1, 3, 3], [0, 0, 1, 4]])  # a 2x2 centre; the first column
    cf = background_counterfactuals(images, boxes=boxes, fill="black")
    want_bg0 = [[0, 1, 2, 3], [4, 0, 0, 7], [8, 0, 0, 11], [12, 13, 14, 15]]
    want_fg1 = [[100, 0, 0, 0], [104, 0, 0, 0], [108, 0, 0, 0], [112, 0, 0, 0]]
    want_rand0 = [[0, 101, 102, 103], [0, 5, 6, 107], [0, 9, 10, 111], [0, 113, 114, 115]]
    torch.testing.assert_close(cf.only_bg[0, 0], torch.tensor(want_bg0, dtype=torch.float32))
    torch.testing.assert_close(cf.only_fg[1, 0], torch.tensor(want_fg1, dtype=torch.float32))
    torch.testing.assert_close(cf.mixed_rand[0, 0], torch.tensor(want_rand0, dtype=torch.float32))
    assert cf.masks[1].int().tolist() == [[1, 0, 0, 0]] * 4
    seven = background_counterfactuals(images, boxes=boxes, fill=7.0)
    assert seven.only_bg[0, 0, 1:3, 1:3].tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert seven.only_fg[0, 0, 0].tolist() == [7.0] * 4


def test_mean_and_sequence_fills_are_per_channel() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    images = torch.cat([torch.cat([x, 2 * x]), torch.cat([x, -x])], dim=1)  # (2, 2, 4, 4)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 0, 0] = True  # the pixel of value 0: background mean = 120 / 15 = 8
    cf = background_counterfactuals(images, masks=masks)
    assert cf.fills.tolist() == [[8.0, 8.0], [16.0, -8.0]]
    assert cf.only_bg[1, :, 0, 0].tolist() == [16.0, -8.0]
    per_channel = background_counterfactuals(images, masks=masks, fill=(1.0, -1.0))
    assert per_channel.only_bg[0, :, 0, 0].tolist() == [1.0, -1.0]
    assert per_channel.only_fg[1, :, 3, 3].tolist() == [1.0, -1.0]


# -- pairing ----------------------------------------------------------------------------------


def random_images(n: int, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    return torch.rand(n, 1, size, size, generator=g), masks


def is_permutation(p: torch.Tensor) -> bool:
    return sorted(p.tolist()) == list(range(p.shape[0]))


def test_mixed_rand_crosses_classes_and_is_seeded() -> None:
    labels = torch.arange(4).repeat_interleave(10)  # 4 classes of 10
    images, masks = random_images(40)
    before = torch.get_rng_state()
    cf = background_counterfactuals(images, masks=masks, labels=labels, seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is untouched
    p = cf.partner_rand
    assert is_permutation(p) and bool((labels[p] != labels).all())
    assert not bool(cf.rand_same_label.any())
    again = background_counterfactuals(images, masks=masks, labels=labels, seed=3)
    assert torch.equal(again.partner_rand, p) and torch.equal(again.mixed_rand, cf.mixed_rand)
    other = [background_counterfactuals(images, masks=masks, labels=labels, seed=s) for s in (4, 5)]
    assert any(not torch.equal(o.partner_rand, p) for o in other)
    # class 0's backgrounds come from more than one other class (the pairing is shuffled)
    assert len(set(labels[p[labels == 0]].tolist())) > 1


def test_mixed_same_stays_in_class_and_falls_back_to_itself_alone() -> None:
    labels = torch.tensor([0, 1, 0, 2, 1, 0])  # class 2 has one image
    images, masks = random_images(6)
    cf = background_counterfactuals(images, masks=masks, labels=labels, seed=1)
    q = cf.partner_same
    assert q is not None and cf.same_is_self is not None
    assert is_permutation(q) and bool((labels[q] == labels).all())
    assert q[3] == 3 and cf.same_is_self.tolist() == [False, False, False, True, False, False]
    others = torch.tensor([0, 1, 2, 4, 5])
    assert bool((q[others] != others).all())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "counts", [[1, 1], [3, 1], [2, 2, 2], [6, 2], [5, 1, 1], [7], [4, 4, 1], [1, 2, 3, 4]]
)
def test_mixed_rand_is_as_cross_class_as_counts_allow(counts: list[int], seed: int) -> None:
    """A bijection can cross classes for all N images iff the largest class m <= N/2, else
    for 2 (N - m) of them; it never pairs an image with itself."""
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
    n, m = len(labels), max(counts)
    images, masks = random_images(n)
    cf = background_counterfactuals(images, masks=masks, labels=labels, seed=seed)
    p = cf.partner_rand
    assert is_permutation(p) and bool((p != torch.arange(n)).all())
    assert int((labels[p] != labels).sum()) == min(n, 2 * (n - m))
    assert torch.equal(cf.rand_same_label, labels[p] == labels)


# -- reliance with models whose answers are known ---------------------------------------------


def test_a_background_reader_scores_on_only_bg_and_fails_on_mixed_rand(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    res = background_reliance(scenes.corner, images, labels, masks=masks, fill="black")
    assert isinstance(res, BackgroundReliance)
    assert res.accuracies() == {
        "original": 1.0,
        "only_bg": 1.0,
        "only_fg": 0.5,  # the corner is black: everything reads as class 0
        "mixed_rand": 0.0,
        "mixed_same": 1.0,
    }
    assert res.bg_gap == 1.0 and res.chance == 0.5
    assert torch.equal(res.correct_only_fg, labels == 0)
    assert not bool(res.correct_mixed_rand.any()) and bool(res.correct_only_bg.all())


def test_an_object_reader_ignores_the_background(scenes) -> None:
    images, labels = scenes.images, scenes.labels
    res = background_reliance(scenes.centre, images, labels, boxes=torch.tensor([[2, 2, 4, 4]] * 8))
    # Only-BG: the centre takes the background's mean colour (<0.5): all read as class 0
    assert res.accuracies() == {
        "original": 1.0,
        "only_bg": 0.5,
        "only_fg": 1.0,
        "mixed_rand": 1.0,
        "mixed_same": 1.0,
    }
    assert res.bg_gap == 0.0
    assert torch.equal(res.correct_only_bg, labels == 0)


def test_chance_is_the_most_frequent_label_share(scenes) -> None:
    images, masks = scenes.images, scenes.masks
    labels = torch.tensor([1, 1, 1, 1, 1, 0, 0, 1])
    res = background_reliance(scenes.centre, images, labels, masks=masks)
    assert res.chance == 6 / 8


class Spy(nn.Module):
    """Records mode, grad mode, dtype and batch size of every call; may raise."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(36, 2)
        self.fail = fail
        self.calls: list[tuple[bool, bool, torch.dtype, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), x.dtype, x.shape[0]))
        if self.fail:
            raise RuntimeError("boom")
        return self.lin(x.flatten(1))


def test_eval_no_grad_batches_dtype_and_the_flag_restored(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    spy = Spy().double().train()
    background_reliance(spy, images, labels, masks=masks, batch_size=3)
    assert spy.training and spy.lin.training
    assert {c[:3] for c in spy.calls} == {(False, False, torch.float64)}
    assert [c[3] for c in spy.calls] == [3, 3, 2] * 5  # 5 variants, in batches of 3
    assert all(p.grad is None for p in spy.parameters())


def test_the_training_flag_comes_back_when_the_model_raises(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    spy = Spy(fail=True).train()
    with pytest.raises(RuntimeError, match="boom"):
        background_reliance(spy, images, labels, masks=masks)
    assert spy.calls[0][0] is False and spy.training and spy.lin.training


# -- bad input --------------------------------------------------------------------------------


def bad(**changes: object) -> dict:
    images, masks = tiny()
    args: dict = {"images": images, "masks": masks, "labels": [0, 1]}
    args.update(changes)
    return args


BOX = torch.tensor([[1, 1, 3, 3], [0, 0, 2, 2]])
FULL = torch.ones(2, 4, 4, dtype=torch.bool)
EMPTY = torch.zeros(2, 4, 4, dtype=torch.bool)
EMPTY[0, 1, 1] = True


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"masks": None}, r"neither was given.*masks=shapes\.masks"),
        ({"boxes": BOX}, "give either masks= or boxes=, not both"),
        ({"masks": tiny()[1].float()}, r"masks must be bool.*masks\.bool\(\)"),
        ({"masks": tiny()[1][:, :3]}, r"masks must have shape \(N, H, W\) = \(2, 4, 4\)"),
        ({"masks": tiny()[1][:, None]}, r"masks\.squeeze\(1\)"),
        ({"masks": BOX}, "looks like boxes; pass them as boxes="),
        ({"masks": [[True]]}, "masks must be a bool torch.Tensor"),
        ({"masks": None, "boxes": tiny()[1]}, "pass object masks as masks="),
        ({"masks": None, "boxes": BOX[:, :3]}, r"boxes must have shape \(N, 4\)"),
        ({"masks": None, "boxes": BOX[:1]}, "boxes has 1 rows but images has 2 samples"),
        ({"masks": None, "boxes": torch.tensor([[0, 0, 5, 2]] * 2)}, "lies outside the 4x4"),
        ({"masks": None, "boxes": torch.tensor([[3, 0, 1, 2]] * 2)}, "is inverted"),
        ({"masks": None, "boxes": torch.tensor([[1, 1, 1, 3]] * 2)}, r"boxes\[0\].*is empty"),
        (
            {"masks": None, "boxes": torch.tensor([[0, 0, 2, 2], [1.2, 1.0, 1.4, 3.0]])},
            r"boxes\[1\] = \(1.2, 1, 1.4, 3\) contains no pixel centre",
        ),
        ({"masks": EMPTY}, r"masks\[1\] covers no pixel"),
        ({"masks": FULL}, r"masks\[0\] covers the whole 4x4 image: no background pixel"),
        (
            {"masks": None, "boxes": torch.tensor([[0, 0, 2, 2], [0, 0, 4, 4]])},
            r"boxes\[1\] covers the whole 4x4 image",
        ),
        ({"labels": [0, 1, 1]}, "labels has 3 entries but images has 2 samples"),
        ({"labels": [0.0, 1.0]}, "labels must be an .N,. integer tensor"),
        ({"labels": [-1, 0]}, "labels must be class indices >= 0"),
        ({"images": tiny()[0][:1], "masks": tiny()[1][:1], "labels": [0]}, "at least 2 images"),
        ({"images": tiny()[0][0]}, r"images\[None\]"),
        ({"fill": "grey"}, "fill must be 'mean', 'black', a finite float or a sequence of 1"),
        ({"fill": float("nan")}, "fill must be"),
        ({"fill": (1.0, 2.0)}, "fill must be"),
        ({"fill": True}, "fill must be"),
        ({"seed": 1.5}, "seed must be an int"),
    ],
)
def test_bad_input_says_what_and_how(changes: dict, phrase: str) -> None:
    args = bad(**changes)
    with pytest.raises(InvalidInputError, match=phrase):
        background_counterfactuals(args.pop("images"), **args)


def test_bad_reliance_options(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    with pytest.raises(InvalidInputError, match="batch_size must be a positive int; got 0"):
        background_reliance(scenes.centre, images, labels, masks=masks, batch_size=0)
    with pytest.raises(InvalidInputError, match="labels are required"):
        background_reliance(scenes.centre, images, None, masks=masks)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="labels go up to 2 but the model outputs 2"):
        background_reliance(scenes.centre, images, labels * 2, masks=masks)
    flat = nn.Sequential(nn.Flatten(0))
    with pytest.raises(InvalidInputError, match=r"must return \(N, classes\) logits"):
        background_reliance(flat, images, labels, masks=masks)
