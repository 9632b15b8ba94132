"""choose_layer: the deepest layer whose cells fit the objects, a block's rectified output."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import modelaudit as ma
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.layer_choice import _probe, feature_grids, median_box_size


class Block(nn.Module):
    """A downsampling block: a 1x1 expansion at the input grid, then a stride-2 conv."""

    def __init__(self, relu_out: bool = True) -> None:
        super().__init__()
        self.expand = nn.Conv2d(4, 4, 1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.act = nn.ReLU() if relu_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.down(self.expand(x)))


def _net() -> nn.Module:
    # grids at 32 px: stem 32, s1 16, s2 8 (s2.expand runs at 16), s3 4
    with torch.random.fork_rng():  # fixed weights: whether a conv's output is >= 0 is fixed
        torch.manual_seed(0)
        return _layers()


def _layers() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),  # "0": 32x32
        nn.Sequential(nn.MaxPool2d(2)),  # "1": 16x16
        Block(),  # "2": 8x8, "2.expand" at 16x16
        Block(),  # "3": 4x4, "3.expand" at 8x8
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()


IMAGES = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _boxes(side: int) -> torch.Tensor:
    return torch.tensor([[0, 0, side, side], [4, 4, 4 + side, 4 + side]])


@pytest.mark.parametrize(
    ("side", "min_cells", "name", "grid"),
    [
        (16, 2, "3", (4, 4)),  # 16 px boxes on 8 px cells: 2 cells -> the 4x4 grid
        (15, 2, "2", (8, 8)),  # 15 / 8 < 2 -> the 8x8 grid (4 px cells: 3.75)
        (8, 2, "2", (8, 8)),  # exactly 2 cells of 4 px
        (8, 1, "3", (4, 4)),  # one cell of 8 px is enough
        (5, 2, "1", (16, 16)),  # 2.5 cells of 2 px
        (1, 2, "0", (32, 32)),  # < 2 cells even at the finest grid: the finest one
    ],
)
def test_the_deepest_grid_that_fits_and_its_block_output(side, min_cells, name, grid):
    choice = ma.choose_layer(_net(), IMAGES, _boxes(side), min_cells=min_cells)
    assert (choice.name, choice.grid) == (name, grid)
    assert choice.cell == (32 / grid[0], 32 / grid[1])
    assert choice.median_box == (float(side), float(side))
    assert choice.name in choice.reason and f"{grid[0]}x{grid[1]} cells" in choice.reason


def test_a_module_inside_the_next_block_is_not_chosen():
    # "3.expand" also runs at 8x8 and finishes after "2": the block output "2" wins
    grids = dict(feature_grids(_net(), IMAGES))
    assert grids["3.expand"] == grids["2"] == (8, 8)
    assert ma.choose_layer(_net(), IMAGES, _boxes(15)).name == "2"


def test_a_rectified_layer_is_preferred_to_a_linear_block_output():
    net = _net()
    net[2] = Block(relu_out=False)  # a linear bottleneck output at 8x8
    net.eval()
    # at 8x8: "2.down", "2.act" (Identity), "2" and the conv "3.expand": all signed here
    signs = {n: nonneg for n, g, nonneg in _probe(net, IMAGES) if g == (8, 8)}
    assert signs == {"2.down": False, "2.act": False, "2": False, "3.expand": False}
    assert ma.choose_layer(net, IMAGES, _boxes(15)).name == "2"  # the shallowest output
    net[3].expand = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())  # now rectified at 8x8
    assert ma.choose_layer(net, IMAGES, _boxes(15)).name == "3.expand"


def test_torchvision_stages():
    boxes = torch.tensor([[10, 10, 30, 30]] * 2)  # 20 px at 64 px input
    res = torchvision.models.resnet18(num_classes=4).eval()
    assert ma.choose_layer(res, torch.rand(2, 3, 64, 64), boxes).name == "layer2"  # 8 px cells
    mob = torchvision.models.mobilenet_v3_small(num_classes=4).eval()
    # 96 px: 12x12 cells of 8 px; features.3's output is a linear bottleneck, its last ReLU
    # (features.3.block.1) is rectified
    assert ma.choose_layer(mob, torch.rand(2, 3, 96, 96), boxes).name == "features.3.block.1"


def test_an_upsampling_pool_is_not_a_finer_grid():
    vgg = torchvision.models.vgg11(num_classes=4).eval()
    names = [n for n, _ in feature_grids(vgg, torch.rand(1, 3, 64, 64))]
    assert "avgpool" not in names  # 2x2 -> 7x7 adaptive pool
    assert ma.choose_layer(vgg, torch.rand(1, 3, 64, 64)).name == "features"


def test_without_boxes_the_default_layer():
    choice = ma.choose_layer(_net(), IMAGES)
    assert (choice.name, choice.grid, choice.median_box) == ("3", (4, 4), None)
    assert "no boxes given" in choice.reason


def test_median_box_size_from_boxes_and_masks():
    assert median_box_size(torch.tensor([[0, 0, 4, 2], [0, 0, 8, 6], [1, 1, 3, 3]])) == (2.0, 4.0)
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    assert median_box_size(masks) == (3.0, 5.0)


@pytest.mark.parametrize(
    ("boxes", "kwargs", "phrase"),
    [
        (torch.tensor([[0, 0, 4, 4]] * 2), {"min_cells": 0}, "min_cells"),
        (torch.zeros(2, 5), {}, "boxes must be"),
        (torch.zeros(2, 32, 32, dtype=torch.bool), {}, "mask is empty"),
    ],
)
def test_bad_input(boxes, kwargs, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        ma.choose_layer(_net(), IMAGES, boxes, **kwargs)


def test_the_layer_probe_leaves_a_training_model_as_it_was() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3), nn.BatchNorm1d(3),  # a batch of one in train mode would raise here
    ).train()  # fmt: skip
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 16, 16)
    ma.choose_layer(net, x, torch.tensor([[2, 2, 12, 12], [4, 4, 14, 14]]))
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # stats untouched
