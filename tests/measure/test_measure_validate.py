"""Bad maps, boxes, masks and images are refused with messages naming sample, value and fix."""

from __future__ import annotations

import re

import pytest
import torch

from modelaudit.errors import InvalidInputError
from modelaudit.measure import deletion_auc, mass_in_box, pointing_game
from modelaudit.measure._validate import as_region, check_images, check_maps


def raises(message: str) -> pytest.RaisesContext[InvalidInputError]:
    return pytest.raises(InvalidInputError, match=re.escape(message))


def test_inverted_box_names_sample_value_and_fix() -> None:
    boxes = torch.tensor([[0, 0, 4, 4], [10, 5, 4, 20]])
    with raises("boxes[1] = (10, 5, 4, 20) is inverted: x2=4 < x1=10") as info:
        mass_in_box(torch.ones(2, 32, 32), boxes)
    assert "box_convert(boxes, 'xywh', 'xyxy')" in str(info.value)
    with raises("boxes[0] = (1, 9, 3, 2) is inverted: y2=2 < y1=9"):
        as_region(torch.tensor([[1, 9, 3, 2]]), (16, 16))


def test_empty_box_explains_the_exclusive_convention() -> None:
    with raises("boxes[0] = (3, 1, 3, 5) is empty: x2 == x1 = 3") as info:
        as_region(torch.tensor([[3, 1, 3, 5]]), (8, 8))
    assert "map[y1:y2, x1:x2]" in str(info.value)
    with raises("boxes[0] = (0.6, 0, 1.4, 2) contains no pixel centre"):
        as_region(torch.tensor([[0.6, 0.0, 1.4, 2.0]]), (8, 8))


@pytest.mark.parametrize(
    ("box", "part"),
    [
        ([0, 0, 40, 8], "x2=40 > width 32"),
        ([0, 0, 8, 17], "y2=17 > height 16"),
        ([-1, 0, 8, 8], "x1=-1 < 0"),
        ([0, -2.5, 8, 8], "y1=-2.5 < 0"),
    ],
)
def test_out_of_image_box_says_which_side_and_how_to_clip(box: list[float], part: str) -> None:
    with raises(f"lies outside the 16x32 (HxW) image: {part}") as info:
        pointing_game(torch.ones(1, 16, 32), torch.tensor([box]))
    assert "clip_boxes_to_image(boxes, (16, 32))" in str(info.value)


def test_box_counts_shapes_and_types() -> None:
    with raises("got boxes for 2 samples but the maps have 3"):
        mass_in_box(torch.ones(3, 4, 4), torch.tensor([[0, 0, 1, 1]] * 2))
    with raises("boxes must have shape (N, 4) or (N, K, 4) in XYXY order; got (2, 5)"):
        as_region(torch.zeros(2, 5), (4, 4), 2)
    with raises(
        "(1, 4, 4), which looks like a torch.float32 mask; masks must be bool: pass masks.bool()"
    ):
        mass_in_box(torch.ones(1, 4, 4), torch.ones(1, 4, 4))
    with raises("(1, 4, 5), which looks like a mask of the wrong dtype"):
        mass_in_box(torch.ones(1, 4, 4), torch.ones(1, 4, 5))
    with raises("boxes[1] has shape (3,); give one box (x1, y1, x2, y2)"):
        as_region([(0, 0, 1, 1), (0, 0, 1)], (4, 4), 2)
    with raises("boxes[0] = (0, 0, nan, 1) is not finite"):
        as_region(torch.tensor([[0, 0, float("nan"), 1]]), (4, 4))
    with raises("boxes must be an (N, 4) tensor or a sequence of per-sample boxes; got int"):
        as_region(3, (4, 4), 1)  # type: ignore[arg-type]


def test_per_sample_lists_and_a_single_box() -> None:
    region = as_region([(0, 0, 2, 1), [(1, 1, 2, 2), (0, 1, 1, 2)]], (2, 2), 2)
    assert region.kind == "box" and region.boxes is None  # the second sample has two boxes
    assert region.masks.int().tolist() == [[[1, 1], [0, 0]], [[0, 0], [1, 1]]]
    single = as_region(torch.tensor([0, 0, 1, 1]), (2, 2), 1)
    assert single.boxes is not None and single.boxes.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_masks_must_match_the_maps() -> None:
    with raises("masks must be bool (N, H, W) matching the maps' size (4, 4); got shape (1, 4, 5)"):
        mass_in_box(torch.ones(1, 4, 4), torch.ones(1, 4, 5, dtype=torch.bool))
    with raises("got masks for 2 samples but the maps have 1"):
        pointing_game(torch.ones(1, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool))


def test_non_finite_maps_name_sample_position_and_value() -> None:
    maps = torch.ones(3, 4, 5)
    maps[2, 1, 3] = float("nan")
    with raises("maps[2] has nan at (row 1, col 3): heat maps must be finite") as info:
        mass_in_box(maps, torch.tensor([[0, 0, 1, 1]] * 3))
    assert "torch.nan_to_num" in str(info.value)
    maps[2, 1, 3] = 1.0
    maps[0, 0, 4] = -float("inf")
    with raises("maps[0] has -inf at (row 0, col 4)"):
        check_maps(maps)


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (
            torch.ones(4, 4),
            "maps must have shape (N, H, W); got (4, 4). For a single map use maps[None].",
        ),
        (
            torch.ones(2, 1, 4, 4),
            "got (2, 1, 4, 4). Drop the channel dimension with maps.squeeze(1).",
        ),
        (torch.ones(0, 4, 4), "maps is empty: shape (0, 4, 4)"),
        (
            torch.ones(1, 2, 2, dtype=torch.bool),
            "maps must hold real numbers; got dtype torch.bool",
        ),
        ([[1.0]], "maps must be a torch.Tensor of shape (N, H, W); got list"),
    ],
)
def test_map_shape_and_type_errors(maps: object, message: str) -> None:
    with raises(message):
        check_maps(maps)


def test_integer_maps_are_accepted_as_float() -> None:
    assert check_maps(torch.ones(1, 2, 2, dtype=torch.int64)).dtype == torch.float32


def test_image_errors() -> None:
    with raises(
        "images must have shape (N, C, H, W); got (3, 4, 4). For a single image use images[None]."
    ):
        check_images(torch.ones(3, 4, 4))
    with raises("images has 2 samples but the maps have 3"):
        check_images(torch.ones(2, 1, 4, 4), n=3)
    x = torch.ones(1, 2, 3, 3)
    x[0, 1, 2, 0] = float("inf")
    with raises("images[0] has inf at (channel 1, row 2, col 0): images must be finite."):
        check_images(x)


def test_maps_must_match_the_image_size_for_model_metrics() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with raises("maps are (2, 2) but images are (4, 4); upsample the maps first") as info:
        deletion_auc(net, torch.ones(1, 1, 4, 4), torch.ones(1, 2, 2))
    assert "size=(4, 4), mode='bilinear', align_corners=False" in str(info.value)
