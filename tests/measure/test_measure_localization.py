"""Localization metrics: hand-computed values, edge cases and laws over generated inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.filters import threshold_otsu

from modelaudit import strategies as mst
from modelaudit.errors import InvalidInputError
from modelaudit.measure import (
    chance_level,
    iou,
    mass_in_box,
    mass_in_mask,
    pointing_game,
    rank_accuracy,
)

FAST = settings(max_examples=30, deadline=None)


def box_mask(box: list[int], h: int, w: int) -> torch.Tensor:
    x1, y1, x2, y2 = box
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y1:y2, x1:x2] = True
    return m


# ---------------------------------------------------------------- mass in box / mask


def test_map_equal_to_one_inside_the_box_scores_one() -> None:
    maps = torch.zeros(1, 6, 8)
    maps[0, 1:4, 2:7] = 1.0
    assert mass_in_box(maps, torch.tensor([[2, 1, 7, 4]])).tolist() == [1.0]


def test_uniform_map_scores_the_area_fraction() -> None:
    maps = torch.full((2, 4, 8), 3.0)
    boxes = torch.tensor([[0, 0, 2, 4], [1, 1, 5, 3]])  # 8/32 and 8/32... second is 4x2
    assert mass_in_box(maps, boxes).tolist() == [8 / 32, 8 / 32]
    assert chance_level(boxes, (4, 8)).tolist() == [8 / 32, 8 / 32]


def test_hand_computed_mass_and_clamping() -> None:
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-9.0, 2.0], [-1.0, 6.0]]])
    left = torch.tensor([[0, 0, 1, 2], [0, 0, 1, 2]])
    # sample 0: (1 + 3) / 10; sample 1: negatives clamp to 0, left column holds no mass
    assert torch.allclose(mass_in_box(maps, left), torch.tensor([0.4, 0.0]))
    right = torch.tensor([[1, 0, 2, 2], [1, 0, 2, 2]])
    assert torch.allclose(mass_in_box(maps, right), torch.tensor([0.6, 1.0]))


def test_zero_map_scores_zero_not_a_pass() -> None:
    maps = torch.zeros(2, 4, 4)
    maps[1] = -1.0  # all negative is a zero map after clamping
    assert mass_in_box(maps, torch.tensor([[0, 0, 4, 4]] * 2)).tolist() == [0.0, 0.0]


def test_several_boxes_per_sample_form_a_union() -> None:
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert mass_in_box(maps, [[(0, 0, 1, 1), (1, 1, 2, 2)]]).tolist() == [0.5]
    # overlapping boxes count each pixel once: pixels (0,0), (0,1), (1,0)
    assert torch.allclose(mass_in_box(maps, [[(0, 0, 2, 1), (0, 0, 1, 2)]]), torch.tensor([0.6]))
    assert torch.allclose(
        mass_in_box(maps, torch.tensor([[[0, 0, 2, 1], [0, 0, 1, 2]]])), torch.tensor([0.6])
    )


def test_fractional_boxes_use_the_pixel_centre_rule() -> None:
    maps = torch.tensor([[[1.0, 2.0, 4.0]]])
    # centres 0.5, 1.5, 2.5: x1=0.6 excludes pixel 0, x2=2.5 excludes pixel 2 (exclusive)
    assert mass_in_box(maps, torch.tensor([[0.6, 0.0, 2.5, 1.0]])).item() == pytest.approx(2 / 7)
    assert mass_in_box(maps, torch.tensor([[0.5, 0.2, 2.51, 0.6]])).tolist() == [1.0]


def test_mass_in_mask_hand_computed_and_empty_mask() -> None:
    maps = torch.tensor([[[3.0, 1.0], [0.0, -5.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = torch.zeros(2, 2, 2, dtype=torch.bool)
    masks[0, 0, 0] = True  # sample 1 has an empty mask
    assert mass_in_mask(maps, masks).tolist() == [0.75, 0.0]


def test_box_and_mask_functions_refuse_each_others_regions() -> None:
    with pytest.raises(InvalidInputError, match="use mass_in_mask"):
        mass_in_box(torch.ones(1, 2, 2), torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(InvalidInputError, match="use mass_in_box"):
        mass_in_mask(torch.ones(1, 2, 2), torch.tensor([[0, 0, 1, 1]]))


@FAST
@given(mst.heatmaps(height=mst.sizes(3, 12), width=mst.sizes(3, 12)), st.data())
def test_mass_in_box_matches_a_per_sample_slice_loop(
    maps: torch.Tensor, data: st.DataObject
) -> None:
    n, h, w = maps.shape
    boxes = data.draw(mst.boxes(image_size=(h, w), batch=n))
    got = mass_in_box(maps, boxes)
    for i in range(n):
        x1, y1, x2, y2 = boxes[i].tolist()
        total = maps[i].clamp(min=0).sum().item()
        want = maps[i, y1:y2, x1:x2].clamp(min=0).sum().item() / total if total > 0 else 0.0
        assert got[i].item() == pytest.approx(want, abs=1e-6)


@FAST
@given(mst.heatmaps(height=mst.sizes(3, 12), width=mst.sizes(3, 12)), st.data())
def test_mass_in_box_is_monotone_in_the_box(maps: torch.Tensor, data: st.DataObject) -> None:
    n, h, w = maps.shape
    inner = data.draw(mst.boxes(image_size=(h, w), batch=n))
    grow = data.draw(st.lists(st.integers(0, 3), min_size=4, max_size=4))
    outer = inner.clone()
    outer[:, 0] = (inner[:, 0] - grow[0]).clamp(min=0)
    outer[:, 1] = (inner[:, 1] - grow[1]).clamp(min=0)
    outer[:, 2] = (inner[:, 2] + grow[2]).clamp(max=w)
    outer[:, 3] = (inner[:, 3] + grow[3]).clamp(max=h)
    assert (mass_in_box(maps, outer) >= mass_in_box(maps, inner) - 1e-6).all()


# ---------------------------------------------------------------- pointing game


def test_pointing_game_hit_miss_and_tolerance_distance() -> None:
    maps = torch.zeros(3, 12, 12)
    maps[0, 5, 5] = 1.0  # inside
    maps[1, 5, 8] = 1.0  # 3 px right of the box's only pixel (5, 5)
    maps[2, 8, 9] = 1.0  # 3 down and 4 right: 5 px away
    boxes = torch.tensor([[5, 5, 6, 6]] * 3)
    assert pointing_game(maps, boxes).tolist() == [1.0, 0.0, 0.0]
    assert pointing_game(maps, boxes, tolerance=2.9).tolist() == [1.0, 0.0, 0.0]
    assert pointing_game(maps, boxes, tolerance=3).tolist() == [1.0, 1.0, 0.0]
    assert pointing_game(maps, boxes, tolerance=4.99).tolist() == [1.0, 1.0, 0.0]
    assert pointing_game(maps, boxes, tolerance=5).tolist() == [1.0, 1.0, 1.0]
    masks = torch.stack([box_mask([5, 5, 6, 6], 12, 12)] * 3)
    assert pointing_game(maps, masks, tolerance=3).tolist() == [1.0, 1.0, 0.0]
    assert pointing_game(maps, masks, tolerance=5).tolist() == [1.0, 1.0, 1.0]


def test_pointing_game_zero_map_and_empty_mask_are_misses() -> None:
    zero = torch.zeros(1, 4, 4)
    assert pointing_game(zero, torch.tensor([[0, 0, 4, 4]])).tolist() == [0.0]
    uniform = torch.ones(1, 4, 4)
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)  # Quantus 0.6 would call this a hit
    assert pointing_game(uniform, empty, tolerance=10).tolist() == [0.0]


def test_pointing_game_ties_score_the_fraction_of_maxima_inside() -> None:
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = maps[0, 3, 3] = 2.0  # one of two maxima in the box
    maps[1] = 1.0  # uniform: a quarter of the maxima fall in the 2x2 box
    got = pointing_game(maps, torch.tensor([[0, 0, 2, 2]] * 2))
    assert got.tolist() == [0.5, 0.25]
    assert got[1].item() == chance_level(torch.tensor([[0, 0, 2, 2]]), (4, 4)).item()


def _pointing_reference(m: torch.Tensor, region: torch.Tensor, tol: float) -> float:
    """Brute force: fraction of maximal pixels within tol of some region pixel."""
    m = m.clamp(min=0)
    if m.max() <= 0:
        return 0.0
    tops = (m == m.max()).nonzero().tolist()
    pts = region.nonzero().tolist()
    hits = [any(math.dist(t, p) <= tol for p in pts) for t in tops]
    return sum(hits) / len(hits)


@FAST
@given(
    mst.heatmaps(batch=2, height=mst.sizes(2, 9), width=mst.sizes(2, 9)),
    st.data(),
    st.sampled_from([0, 1, 1.5, 2, 3.2]),
)
def test_pointing_game_matches_brute_force_for_boxes_and_masks(
    maps: torch.Tensor, data: st.DataObject, tol: float
) -> None:
    n, h, w = maps.shape
    boxes = data.draw(mst.boxes(image_size=(h, w), batch=n))
    masks = data.draw(mst.masks(batch=n, height=h, width=w, allow_empty=True))
    box_masks = torch.stack([box_mask(b.tolist(), h, w) for b in boxes])
    got_box = pointing_game(maps, boxes, tolerance=tol)
    got_mask = pointing_game(maps, masks, tolerance=tol)
    for i in range(n):
        assert got_box[i].item() == pytest.approx(_pointing_reference(maps[i], box_masks[i], tol))
        assert got_mask[i].item() == pytest.approx(_pointing_reference(maps[i], masks[i], tol))
    # the closed-form box dilation agrees with the general mask dilation
    assert torch.equal(got_box, pointing_game(maps, box_masks, tolerance=tol))


# ---------------------------------------------------------------- rank accuracy


def test_rank_accuracy_hand_computed() -> None:
    maps = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]] * 3)
    maps[1] = 1.0  # uniform
    maps[2] = 0.0  # zero map
    left = torch.tensor([[0, 0, 1, 2]] * 3)  # values 4 and 2 in sample 0
    assert rank_accuracy(maps, left).tolist() == [0.5, 0.5, 0.0]
    one_inside = torch.zeros(1, 3, 3)
    one_inside[0, 1:, 1:] = 1.0
    assert rank_accuracy(one_inside, torch.tensor([[1, 1, 3, 3]])).tolist() == [1.0]


def test_rank_accuracy_ties_share_the_places() -> None:
    # three pixels tie at 1 for K = 2 places; two of them are inside: 2 * 2/3 / 2
    maps = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    assert rank_accuracy(maps, torch.tensor([[0, 0, 1, 2]])).item() == pytest.approx(2 / 3)


def _rank_reference(m: torch.Tensor, region: torch.Tensor) -> float:
    """Expected hit rate over every tie-breaking order, zero pixels never ranked."""
    v, inside = m.clamp(min=0).flatten().tolist(), region.flatten().tolist()
    k = sum(inside)
    if k == 0:
        return 0.0
    scores = []
    for tie_break in itertools.permutations(range(len(v))):
        order = sorted(range(len(v)), key=lambda i: (-v[i], tie_break[i]))
        top = [i for i in order[:k] if v[i] > 0]
        scores.append(sum(inside[i] for i in top) / k)
    return sum(scores) / len(scores)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=6, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_rank_accuracy_equals_the_expectation_over_tie_breaks(
    values: list[int], region: list[bool]
) -> None:
    m = torch.tensor(values, dtype=torch.float32).view(1, 2, 3)
    mask = torch.tensor(region).view(1, 2, 3)
    assert rank_accuracy(m, mask).item() == pytest.approx(_rank_reference(m[0], mask[0]))


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2), min_size=6, max_size=6), min_size=2, max_size=5),
    st.lists(st.booleans(), min_size=6, max_size=6),
    st.integers(0, 2**31 - 1),
)
def test_rank_accuracy_of_a_mixed_batch_equals_each_sample_alone(
    tied_rows: list[list[int]], region: list[bool], seed: int
) -> None:
    # rows with ties or zeros (the exact tie-sharing path) between rows of distinct values
    distinct = torch.rand(len(tied_rows), 6, generator=torch.Generator().manual_seed(seed))
    rows = torch.cat([torch.tensor(tied_rows, dtype=torch.float32), distinct])
    maps = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]
    maps = maps.view(-1, 2, 3)
    masks = torch.tensor(region).view(1, 2, 3).expand(len(maps), -1, -1)
    batch = rank_accuracy(maps, masks)
    for i in range(len(maps)):
        assert batch[i].item() == pytest.approx(_rank_reference(maps[i], masks[i]))


# ---------------------------------------------------------------- IoU


def test_iou_fixed_threshold_and_top_k_hand_computed() -> None:
    maps = torch.tensor([[[1.0, 0.9], [0.2, 0.0]]])
    left = torch.tensor([[0, 0, 1, 2]])
    assert iou(maps, left).item() == pytest.approx(1 / 3)  # on: top row; union 3, inter 1
    assert iou(maps, left, threshold=0.1).item() == pytest.approx(2 / 3)  # on: 1, .9, .2
    assert iou(maps, left, threshold=0.0).item() == pytest.approx(2 / 3)  # zero stays off
    assert iou(maps, left, top_k=0.25).item() == pytest.approx(1 / 2)
    assert iou(maps, left, top_k=0.5).item() == pytest.approx(1 / 3)
    # threshold relative to the max: scaling changes nothing
    assert iou(7 * maps, left, threshold=0.1).item() == pytest.approx(2 / 3)


def test_iou_otsu_matches_scikit_image() -> None:
    g = torch.Generator().manual_seed(3)
    maps = 0.2 * torch.rand(2, 8, 8, generator=g)
    maps[0, 2:5, 1:6] += 0.7
    maps[1, 0:3, 0:3] += 0.5
    boxes = torch.tensor([[1, 2, 6, 5], [0, 0, 4, 4]])
    got = iou(maps, boxes, threshold="otsu")
    for i in range(2):
        on = maps[i].numpy() > threshold_otsu(maps[i].numpy().astype(np.float64))
        gt = box_mask(boxes[i].tolist(), 8, 8).numpy()
        assert got[i].item() == pytest.approx((on & gt).sum() / (on | gt).sum())
    assert got[0].item() == 1.0


def test_iou_edge_cases() -> None:
    box = torch.tensor([[0, 0, 2, 2]])
    assert iou(torch.zeros(1, 4, 4), box).tolist() == [0.0]
    assert iou(torch.ones(1, 4, 4), box).tolist() == [0.25]  # uniform: area fraction
    assert iou(torch.ones(1, 4, 4), box, top_k=0.1).tolist() == [0.25]  # ties all included
    assert iou(torch.ones(1, 4, 4), box, threshold="otsu").tolist() == [0.0]  # constant map
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert iou(torch.zeros(1, 4, 4), empty).tolist() == [0.0]  # nothing vs nothing is no pass
    with pytest.raises(InvalidInputError, match="not both"):
        iou(torch.ones(1, 2, 2), box[:, :], threshold=0.5, top_k=0.5)
    with pytest.raises(
        InvalidInputError, match=r"threshold must be .* in \[0, 1\] or 'otsu'; got 1.5"
    ):
        iou(torch.ones(1, 2, 2), torch.tensor([[0, 0, 1, 1]]), threshold=1.5)
    with pytest.raises(
        InvalidInputError, match=r"top_k must be a fraction of pixels in \(0, 1\]; got 0"
    ):
        iou(torch.ones(1, 2, 2), torch.tensor([[0, 0, 1, 1]]), top_k=0)


# ---------------------------------------------------------------- chance levels and laws


def test_chance_level_boxes_masks_and_tolerance() -> None:
    assert chance_level(torch.tensor([[0, 0, 2, 4]]), (4, 4)).tolist() == [0.5]
    masks = torch.zeros(1, 5, 5, dtype=torch.bool)
    masks[0, 2, 2] = True
    assert chance_level(masks).tolist() == [pytest.approx(1 / 25)]
    # tolerance 1: the pixel and its 4 neighbours (diagonals are sqrt(2) away)
    assert chance_level(masks, tolerance=1).tolist() == [pytest.approx(5 / 25)]
    assert chance_level(torch.tensor([[2, 2, 3, 3]]), (5, 5), tolerance=1.5).tolist() == [
        pytest.approx(9 / 25)
    ]
    with pytest.raises(InvalidInputError, match="needs size"):
        chance_level(torch.tensor([[0, 0, 1, 1]]))
    with pytest.raises(InvalidInputError, match="tolerance must be"):
        chance_level(masks, tolerance=-1)


@FAST
@given(mst.heatmaps(height=mst.sizes(2, 10), width=mst.sizes(2, 10)), st.data())
def test_uniform_maps_score_the_chance_level(maps: torch.Tensor, data: st.DataObject) -> None:
    n, h, w = maps.shape
    boxes = data.draw(mst.boxes(image_size=(h, w), batch=n))
    uniform = torch.full((n, h, w), data.draw(st.floats(0.01, 100.0)))
    chance = chance_level(boxes, (h, w))
    for metric in (mass_in_box, pointing_game, rank_accuracy, iou):
        assert torch.allclose(metric(uniform, boxes), chance, atol=1e-6), metric.__name__


@FAST
@given(
    mst.heatmaps(height=mst.sizes(2, 10), width=mst.sizes(2, 10)),
    st.data(),
    st.integers(-8, 8),
    st.floats(0.001, 1000.0),
)
def test_metrics_are_invariant_to_scaling_the_map(
    maps: torch.Tensor, data: st.DataObject, power: int, c: float
) -> None:
    n, h, w = maps.shape
    boxes = data.draw(mst.boxes(image_size=(h, w), batch=n))
    exact = 2.0**power  # powers of two scale floats exactly: discrete metrics must agree exactly
    for metric in (pointing_game, rank_accuracy, iou):
        assert torch.equal(metric(maps, boxes), metric(exact * maps, boxes)), metric.__name__
    assert torch.equal(iou(maps, boxes, top_k=0.3), iou(exact * maps, boxes, top_k=0.3))
    assert torch.equal(
        iou(maps, boxes, threshold="otsu"), iou(exact * maps, boxes, threshold="otsu")
    )
    assert torch.allclose(mass_in_box(maps, boxes), mass_in_box(c * maps, boxes), atol=1e-5)


@FAST
@given(mst.heatmaps(height=mst.sizes(2, 10), width=mst.sizes(2, 10)), st.data())
def test_all_metrics_lie_in_the_unit_interval(maps: torch.Tensor, data: st.DataObject) -> None:
    n, h, w = maps.shape
    masks = data.draw(mst.masks(batch=n, height=h, width=w, allow_empty=True))
    for metric in (mass_in_mask, pointing_game, rank_accuracy, iou):
        got = metric(maps, masks)
        assert got.shape == (n,) and bool(((got >= 0) & (got <= 1 + 1e-6)).all()), metric.__name__
        assert (got[~masks.flatten(1).any(1)] == 0).all()  # empty masks never pass
