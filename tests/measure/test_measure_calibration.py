"""Calibrated localization: ideal maps, ceilings, the shuffled-box null and the paired test.

Known answers come from hand arithmetic (bilinear weights of a 2x2 grid upsampled to 4x4 are
1, 0.75, 0.25, 0 along each axis) and from an exact Wilcoxon signed-rank p-value computed
here by enumerating every sign assignment.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.errors import InvalidInputError
from modelaudit.measure import (
    calibrated_score,
    chance_level,
    ideal_maps,
    localization_ceiling,
    mass_in_box,
    paired_lift,
    shuffled_null,
)

WEIGHTS = torch.tensor([1.0, 0.75, 0.25, 0.0])  # a 2-cell axis upsampled to 4 px, cell 0 on


def test_ideal_map_of_a_quarter_box_on_a_2x2_grid_is_the_outer_product_of_bilinear_weights():
    got = ideal_maps(torch.tensor([[0, 0, 2, 2]]), (4, 4), (2, 2))[0]
    torch.testing.assert_close(got, torch.outer(WEIGHTS, WEIGHTS))


def test_ceiling_by_hand_and_full_resolution():
    # inside the 2x2 box: 1 + 0.75 + 0.75 + 0.5625; total: (1 + 0.75 + 0.25)^2 = 4
    got = localization_ceiling(torch.tensor([[0, 0, 2, 2]]), (4, 4), grid=(2, 2))
    assert got.tolist() == [pytest.approx(3.0625 / 4)]
    full = localization_ceiling(torch.tensor([[1, 1, 3, 4], [0, 0, 1, 1]]), (4, 4), grid=(4, 4))
    assert full.tolist() == [1.0, 1.0]


def test_partial_cells_take_the_covered_fraction():
    # box of 1 px in a 2x2-px cell: the cell holds 0.25, the other cells 0
    maps = ideal_maps(torch.tensor([[0, 0, 1, 1]]), (4, 4), (2, 2))
    torch.testing.assert_close(maps[0], torch.outer(WEIGHTS, WEIGHTS))  # normalised to 1
    pointing = localization_ceiling(
        torch.tensor([[0, 0, 1, 1]]), (4, 4), grid=(2, 2), metric="pointing"
    )
    assert pointing.tolist() == [1.0]  # the maximum (pixel 0, 0) lies in the box


def test_coarser_grids_lower_the_ceiling():
    box = torch.tensor([[20, 24, 30, 36]])
    ceilings = [
        float(localization_ceiling(box, (64, 64), grid=(g, g))[0]) for g in (64, 16, 8, 4, 2)
    ]
    assert ceilings[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(ceilings))


def test_calibrated_score_is_zero_for_uniform_one_for_ideal_and_negative_when_avoiding():
    boxes = torch.tensor([[0, 0, 8, 8], [4, 4, 12, 12]])
    size, grid = (16, 16), (4, 4)
    chance = chance_level(boxes, size)
    ceiling = localization_ceiling(boxes, size, grid=grid)
    uniform = calibrated_score(mass_in_box(torch.ones(2, 16, 16), boxes), chance, ceiling)
    ideal = calibrated_score(mass_in_box(ideal_maps(boxes, size, grid), boxes), chance, ceiling)
    away = torch.zeros(2, 16, 16)
    away[:, 14:, 14:] = 1.0
    avoid = calibrated_score(mass_in_box(away, boxes), chance, ceiling)
    torch.testing.assert_close(uniform, torch.zeros(2))
    torch.testing.assert_close(ideal, torch.ones(2))
    # hand: mass 0, chance 64/256 = 0.25 -> -0.25 / (ceiling - 0.25)
    torch.testing.assert_close(avoid, -0.25 / (ceiling - 0.25))
    assert bool((avoid < 0).all())


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    side=st.integers(8, 40),
    cells=st.integers(1, 8),
)
def test_law_uniform_scores_zero_and_ideal_scores_one_for_any_box_and_grid(data, side, cells):
    g = max(1, side // cells)
    x1 = data.draw(st.integers(0, side - 2))
    y1 = data.draw(st.integers(0, side - 2))
    x2 = data.draw(st.integers(x1 + 1, min(side, x1 + side // 2)))
    y2 = data.draw(st.integers(y1 + 1, min(side, y1 + side // 2)))
    boxes = torch.tensor([[x1, y1, x2, y2]])
    size, grid = (side, side), (g, g)
    chance = chance_level(boxes, size)
    ceiling = localization_ceiling(boxes, size, grid=grid)
    if float(ceiling[0] - chance[0]) < 1e-3:  # the grid cannot tell this box apart
        return
    uniform = calibrated_score(mass_in_box(torch.ones(1, side, side), boxes), chance, ceiling)
    ideal = calibrated_score(mass_in_box(ideal_maps(boxes, size, grid), boxes), chance, ceiling)
    assert abs(float(uniform[0])) < 1e-5
    assert float(ideal[0]) == pytest.approx(1.0, abs=1e-5)


def test_shuffled_null_by_hand():
    maps = torch.zeros(3, 4, 4)
    maps[0, 0, 0] = 1.0  # in box 0 and box 1
    maps[1, 3, 3] = 2.0  # in box 2 only
    maps[2, :, :2] = 1.0  # left half: half in box 0's column span
    boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 1, 4], [2, 2, 4, 4]])
    # map 0 against boxes 1, 2: 1, 0 -> 0.5; map 1 against boxes 0, 2: 0, 1 -> 0.5
    # map 2 (8 px) against box 0 (4 of its px) and box 1 (4 of its px): 0.5, 0.5 -> 0.5
    assert shuffled_null(maps, boxes).tolist() == [0.5, 0.5, 0.5]
    maps[1] = 0.0
    maps[1, 0, 3] = 1.0  # top-right pixel: in none of boxes 0, 2
    assert shuffled_null(maps, boxes).tolist() == [0.5, 0.0, 0.5]
    # pointing: map 0's max (0, 0) in box 1, not 2; map 1's (0, 3) in neither; map 2's
    # first max (0, 0) in boxes 0 and 1
    assert shuffled_null(maps, boxes, metric="pointing").tolist() == [0.5, 0.0, 1.0]


def _exact_wilcoxon_greater(diff: list[float]) -> float:
    """P(W+ >= observed) over all 2^n sign flips of the ranks (no ties, no zeros)."""
    ranks = {v: r + 1 for r, v in enumerate(sorted(abs(d) for d in diff))}
    rk = [ranks[abs(d)] for d in diff]
    observed = sum(r for r, d in zip(rk, diff, strict=True) if d > 0)
    flips = list(itertools.product([0, 1], repeat=len(diff)))
    return sum(sum(r for r, s in zip(rk, f, strict=True) if s) >= observed for f in flips) / len(
        flips
    )


def test_paired_lift_matches_an_exact_enumeration_and_hand_effect():
    own = torch.tensor([0.9, 0.4, 0.8, 0.75, 0.3, 0.62, 0.5])
    null = torch.tensor([0.1, 0.45, 0.2, 0.15, 0.11, 0.3, 0.52])
    diff = (own - null).tolist()
    lift = paired_lift(own, null)
    mean = sum(diff) / len(diff)
    sd = (sum((d - mean) ** 2 for d in diff) / (len(diff) - 1)) ** 0.5
    assert lift.mean == pytest.approx(mean)
    assert lift.effect == pytest.approx(mean / sd)
    assert lift.p_value == pytest.approx(_exact_wilcoxon_greater(diff))
    assert lift.n == 7


def test_paired_lift_edge_cases():
    same = paired_lift(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]))
    assert (same.mean, same.effect, same.p_value) == (0.0, 0.0, 1.0)
    const = paired_lift(torch.tensor([0.6] * 8), torch.tensor([0.1] * 8))
    assert const.effect == float("inf") and const.p_value == pytest.approx(2**-8)


@pytest.mark.parametrize(
    ("call", "phrase"),
    [
        (lambda: localization_ceiling(torch.tensor([[0, 0, 2, 2]]), (4, 4), grid=(8, 8)), "grid"),
        (
            lambda: localization_ceiling(
                torch.tensor([[0, 0, 2, 2]]), (4, 4), grid=(2, 2), metric="iou"
            ),
            "metric",
        ),
        (lambda: ideal_maps(torch.tensor([[0, 0, 2, 2]]), (4, 4), "big"), "grid"),
        (lambda: shuffled_null(torch.ones(1, 4, 4), torch.tensor([[0, 0, 2, 2]])), "at least 2"),
        (lambda: paired_lift(torch.ones(3), torch.ones(2)), "same shape"),
        (
            lambda: calibrated_score(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([1.0])),
            "whole image",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        call()
