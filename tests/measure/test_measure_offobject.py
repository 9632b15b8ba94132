"""off_object_mass, mean_heat_map, mean_region: hand-computed maps and regions.

The images are 16x16, so each cell of the 4x4 grid is 4x4 pixels (6.25% of the image),
and the object is the small central box [6, 6, 10, 10] unless said otherwise.
"""

from __future__ import annotations

import pytest
import torch

from modelaudit.errors import InvalidInputError
from modelaudit.measure import OffObject, mean_heat_map, mean_region, off_object_mass
from modelaudit.measure.offobject import AROUND, NAMED_REGIONS, region_masks

CENTRE_BOX = [6, 6, 10, 10]


def boxes(n: int, box: list[int] = CENTRE_BOX) -> torch.Tensor:
    return torch.tensor([box] * n)


# ---------------------------------------------------------------- mean_heat_map, mean_region


def test_mean_heat_map_normalises_each_map_clamps_and_skips_zero_maps() -> None:
    maps = torch.zeros(3, 2, 2)
    maps[0, 0, 0] = 10.0  # all of map 0 in one pixel
    maps[1] = torch.tensor([[-5.0, 1.0], [1.0, 2.0]])  # negative clamped: 0, 1/4, 1/4, 1/2
    # map 2 is zero: skipped, so the mean is over two maps
    expected = torch.tensor([[0.5, 0.125], [0.125, 0.25]])
    assert torch.allclose(mean_heat_map(maps), expected)
    assert mean_heat_map(maps).sum().item() == pytest.approx(1.0)


def test_mean_heat_map_of_zero_maps_is_zero() -> None:
    assert mean_heat_map(torch.zeros(2, 3, 3)).abs().sum().item() == 0.0


def test_mean_region_is_the_fraction_of_objects_covering_each_pixel() -> None:
    got = mean_region(torch.tensor([[0, 0, 2, 2], [1, 1, 3, 2]]), (2, 3))
    assert got.tolist() == [[0.5, 0.5, 0.0], [0.5, 1.0, 0.5]]
    masks = torch.zeros(4, 2, 2, dtype=torch.bool)
    masks[:, 0, 0] = True
    masks[0, 1, 1] = True
    assert mean_region(masks, (2, 2)).tolist() == [[1.0, 0.0], [0.0, 0.25]]


# ---------------------------------------------------------------- the grid


def test_region_masks_cover_the_named_cells() -> None:
    names, masks = region_masks((16, 16))
    assert names == list(NAMED_REGIONS)
    area = {n: float(m.float().mean()) for n, m in zip(names, masks, strict=True)}
    assert area["the top-left corner"] == 1 / 16
    assert area["the top edge"] == 2 / 16
    assert area["the top strip"] == 4 / 16
    assert area["the corners"] == 4 / 16
    assert area["the border"] == 12 / 16
    assert area["the centre"] == 4 / 16
    top_right = masks[names.index("the top-right corner")]
    assert top_right[:4, 12:].all() and top_right.sum() == 16
    bottom_edge = masks[names.index("the bottom edge")]
    assert bottom_edge[12:, 4:12].all() and bottom_edge.sum() == 32


# ---------------------------------------------------------------- naming the region


@pytest.mark.parametrize(
    ("rows", "cols", "name"),
    [
        (slice(0, 4), slice(0, 4), "the top-left corner"),
        (slice(0, 4), slice(12, 16), "the top-right corner"),
        (slice(12, 16), slice(12, 16), "the bottom-right corner"),
        (slice(12, 16), slice(0, 4), "the bottom-left corner"),
    ],
)
def test_all_off_object_mass_in_one_corner_names_that_corner(
    rows: slice, cols: slice, name: str
) -> None:
    maps = torch.zeros(2, 16, 16)
    maps[:, rows, cols] = 1.0
    found = off_object_mass(maps, boxes(2))
    # share 1 of the off-object mass, in 16 of 256 pixels; uniform over the 240 background
    # pixels would put 16/240 there
    assert (found.region, found.share, found.area) == (name, 1.0, 1 / 16)
    assert found.expected == pytest.approx(16 / 240)
    assert found.off_object == pytest.approx(1.0)
    assert found.region_mask is not None and found.region_mask[rows, cols].all()
    assert found.describe() == (
        "100% of the maps' mass lies off the object; most of it in "
        f"{name} (100% of the off-object mass in 6% of the image)"
    )


def test_mass_partly_on_the_object_counts_only_the_off_object_part() -> None:
    maps = torch.zeros(1, 16, 16)
    maps[0, 6:10, 6:10] = 1.0  # 16 pixels on the object
    maps[0, 12:16, 12:16] = 3.0  # 3x the mass in the bottom-right corner
    found = off_object_mass(maps, boxes(1))
    assert found.off_object == pytest.approx(0.75)
    assert found.region == "the bottom-right corner"
    assert found.off_map.sum().item() == pytest.approx(0.75)
    assert found.describe().startswith("75% of the maps' mass lies off the object")


def test_a_frame_names_the_border() -> None:
    maps = torch.zeros(1, 16, 16)
    maps[0, :2], maps[0, -2:], maps[0, :, :2], maps[0, :, -2:] = 1.0, 1.0, 1.0, 1.0
    found = off_object_mass(maps, boxes(1))
    # all the mass in the 12 border cells, where a uniform background map puts 192/240
    assert (found.region, found.area) == ("the border", 0.75)
    assert found.share == pytest.approx(1.0)
    assert found.expected == pytest.approx(0.8)


def test_every_corner_at_once_names_the_corners() -> None:
    maps = torch.zeros(4, 16, 16)
    for k, (r, c) in enumerate([(0, 0), (0, 12), (12, 12), (12, 0)]):
        maps[k, r : r + 4, c : c + 4] = 1.0
    found = off_object_mass(maps, boxes(4))
    assert (found.region, found.share, found.area) == ("the corners", 1.0, 0.25)


def test_a_uniform_off_object_map_is_the_whole_background() -> None:
    maps = torch.ones(3, 16, 16)
    found = off_object_mass(maps, boxes(3, [0, 0, 8, 8]))  # an off-centre object
    maps[:, 0:8, 0:8] = 0.0  # and the same maps without their on-object part
    again = off_object_mass(maps, boxes(3, [0, 0, 8, 8]))
    for f in (found, again):
        assert (f.region, f.share, f.area, f.region_mask) == (
            "the whole background",
            1.0,
            1.0,
            None,
        )
    assert found.off_object == pytest.approx(0.75)
    assert again.off_object == pytest.approx(1.0)
    assert found.describe() == (
        "75% of the maps' mass lies off the object; it is spread over the whole background "
        "(no part of the image stands out)"
    )


def test_a_map_wholly_inside_the_box_has_no_off_object_mass() -> None:
    maps = torch.zeros(2, 16, 16)
    maps[:, 7:9, 7:9] = 1.0
    found = off_object_mass(maps, boxes(2))
    assert (found.region, found.off_object, found.share) == ("none", 0.0, 0.0)
    assert found.off_map.abs().sum().item() == 0.0
    assert found.describe() == "none of the maps' mass lies off the object"


def test_spill_next_to_the_object_is_the_area_around_it() -> None:
    maps = torch.zeros(1, 16, 16)
    maps[0, 5:11, 5:11] = 1.0  # the object and a one-pixel halo around it
    found = off_object_mass(maps, boxes(1))
    assert found.region == AROUND
    assert found.share == pytest.approx(1.0)


def test_zero_maps_are_skipped_and_all_zero_maps_say_so() -> None:
    maps = torch.zeros(2, 16, 16)
    maps[0, 0:4, 0:4] = 1.0
    assert off_object_mass(maps, boxes(2)).off_object == pytest.approx(
        1.0
    )  # the zero map is skipped
    empty = off_object_mass(torch.zeros(2, 16, 16), boxes(2))
    assert (empty.region, empty.count) == ("none", 0)
    assert "every map is zero" in empty.describe()


def test_masks_work_like_boxes() -> None:
    maps = torch.zeros(2, 16, 16)
    maps[:, 12:, :4] = 1.0
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 6:10, 6:10] = True
    by_mask, by_box = off_object_mass(maps, masks), off_object_mass(maps, boxes(2))
    assert isinstance(by_mask, OffObject)
    assert (by_mask.region, by_mask.share) == (by_box.region, by_box.share)
    assert torch.equal(by_mask.mean_region, by_box.mean_region)


def test_mean_pictures_have_the_image_size() -> None:
    maps = torch.rand(3, 16, 12)
    found = off_object_mass(maps, boxes(3, [2, 2, 6, 6]))
    for t in (found.mean_map, found.mean_region, found.off_map):
        assert t.shape == (16, 12)
    assert found.mean_map.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_bad_boxes_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        off_object_mass(torch.ones(1, 4, 4), torch.tensor([[0, 0, 5, 2]]))
