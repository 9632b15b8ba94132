"""OffObjectSums over batches equals off_object_mass on all the maps at once (its tests
check it by hand), for every kind of answer: a named region, the area around the object,
the whole background, no off-object mass, and zero maps that are skipped."""

from __future__ import annotations

import pytest
import torch

from modelaudit.measure.offobject import off_object_mass
from modelaudit.measure.offobject_sums import OffObjectSums


def _objects(n: int, size: int = 32) -> torch.Tensor:
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for k in range(n):
        x, y = 8 + k % 5, 10 + k % 4
        masks[k, y : y + 8, x : x + 9] = True
    return masks


def _case(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    masks = _objects(11)
    maps = torch.rand(11, 32, 32, generator=gen) * 0.05
    if kind == "corner":
        maps[:, 24:, 24:] += 1.0
    elif kind == "around":
        grown = torch.nn.functional.max_pool2d(masks[:, None].float(), 9, 1, 4)[:, 0]
        maps = grown + masks.float()
    elif kind == "inside":
        maps = masks.float()
    elif kind == "zeros":
        maps[:, :4, :] += 1.0
        maps[::3] = 0.0  # every third map is zero: skipped
    return maps, masks


@pytest.mark.parametrize("kind", ["corner", "around", "inside", "zeros", "noise"])
def test_sums_over_batches_equal_the_whole_batch(kind: str) -> None:
    maps, masks = _case(kind)
    whole = off_object_mass(maps, masks)
    sums = OffObjectSums((32, 32))
    for start in range(0, 11, 4):
        sums.add(maps[start : start + 4], masks[start : start + 4])
    got = sums.result()
    assert (got.region, got.count, got.describe()) == (whole.region, whole.count, whole.describe())
    for name in ("share", "area", "expected", "off_object"):
        assert getattr(got, name) == pytest.approx(getattr(whole, name), abs=1e-9)
    for name in ("mean_map", "mean_region", "off_map"):
        assert torch.allclose(getattr(got, name), getattr(whole, name), atol=1e-6)
    if whole.region_mask is None:
        assert got.region_mask is None
    else:
        assert got.region_mask is not None and torch.equal(got.region_mask, whole.region_mask)


@pytest.mark.parametrize("size", [(32, 32), (24, 40), (8, 8)])
def test_the_separable_ring_is_the_square_ring(size: tuple[int, int]) -> None:
    from modelaudit.measure.offobject import _ring as square_ring
    from modelaudit.measure.offobject_sums import _ring as separable_ring

    gen = torch.Generator().manual_seed(size[1])
    masks = torch.rand(6, *size, generator=gen) > 0.93  # scattered pixels: any shape
    masks[0] = False
    masks[1, :, : size[1] // 2] = True
    assert torch.equal(separable_ring(masks), square_ring(masks))
