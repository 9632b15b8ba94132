"""feature_map_grid: one tile per channel, each scaled on its own, written to PNG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage import io
from torch import nn

from modelaudit import InvalidInputError
from modelaudit.hooks import feature_map_grid, grid_layout, hook_count, scale_each


def expected_tile(channel: np.ndarray) -> np.ndarray:
    """Independent min-max scaling to uint8, as torchvision's save_image rounds."""
    low, high = channel.min(), channel.max()
    scaled = np.zeros_like(channel) if high == low else (channel - low) / (high - low)
    return np.clip(np.floor(scaled * 255 + 0.5), 0, 255).astype(np.uint8)


def test_tiles_are_scaled_each_on_its_own_and_laid_out_row_by_row():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 5, 3)
    with torch.no_grad():
        conv.weight[4].zero_()  # channel 4 is constant (its bias): an all-black tile
        conv.weight[1] *= 100  # a channel with a much larger range: scaled on its own
    net = nn.Sequential(conv)
    image = torch.rand(1, 8, 8)
    grid = feature_map_grid(net, image, nrow=3, padding=2)["0"]
    fmap = conv(image[None])[0].detach().numpy()
    assert grid.shape == grid_layout(5, 6, 6, nrow=3, padding=2) == (2 * 8 + 2, 3 * 8 + 2)
    for k in range(5):
        top, left = 2 + (k // 3) * 8, 2 + (k % 3) * 8
        tile = grid[top : top + 6, left : left + 6]
        np.testing.assert_array_equal(tile, expected_tile(fmap[k]), err_msg=f"channel {k}")
        if k != 4:
            assert tile.min() == 0 and tile.max() == 255
    assert (grid[grid_tile_mask(grid.shape, 5, 6, 3, 2)] == 255).all()  # padding is pad_value=1
    assert (
        grid[8 + 2 : 8 + 2 + 6, 2 * 8 + 2 : 2 * 8 + 2 + 6] == 255
    ).all()  # the 6th slot is empty
    assert (grid[10:16, 10:16] == 0).all()  # channel 4: constant -> black


def grid_tile_mask(
    shape: tuple[int, ...], channels: int, size: int, nrow: int, padding: int
) -> np.ndarray:
    """True on padding pixels (outside every tile slot)."""
    mask = np.ones(shape, dtype=bool)
    for k in range(math.ceil(channels / nrow) * nrow):
        top, left = (
            padding + (k // nrow) * (size + padding),
            padding + (k % nrow) * (size + padding),
        )
        mask[top : top + size, left : left + size] = False
    return mask


def test_alexnet_walk_through_writes_one_png_per_conv(alexnet, tmp_path):
    torch.manual_seed(0)
    image = torch.rand(3, 224, 224)
    files = feature_map_grid(alexnet, image, path=tmp_path / "maps")
    assert list(files) == ["features.0", "features.3", "features.6", "features.8", "features.10"]
    sizes = {name: io.imread(path).shape for name, path in files.items()}
    assert sizes == {
        "features.0": (449, 449),  # 64 tiles of 55: 8 x 8
        "features.3": (393, 393),  # 192 tiles of 27: 14 per row, 14 rows
        "features.6": (281, 281),  # 384 tiles of 13: 20 x 20 (16 empty slots)
        "features.8": (225, 225),  # 256 tiles of 13: 16 x 16
        "features.10": (225, 225),
    }
    first = io.imread(files["features.0"])
    assert first.dtype == np.uint8
    with torch.no_grad():
        conv0 = alexnet.features[0](image[None])[0].numpy()
    for k in (0, 9, 63):  # spot-check tiles against the independent scaling
        top, left = 1 + (k // 8) * 56, 1 + (k % 8) * 56
        np.testing.assert_array_equal(
            first[top : top + 55, left : left + 55], expected_tile(conv0[k])
        )
    arrays_only = feature_map_grid(alexnet, image[None], layers="features.0")
    np.testing.assert_array_equal(arrays_only["features.0"], first)
    assert sum(hook_count(alexnet).values()) == 0 and not alexnet.training


def test_bad_images_and_layers_are_clear_errors():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(InvalidInputError, match="got a batch of 2"):
        feature_map_grid(net, torch.rand(2, 1, 5, 5))
    with pytest.raises(
        InvalidInputError, match=r"one image, \(C, H, W\) or \(1, C, H, W\); got \(5, 5\)"
    ):
        feature_map_grid(net, torch.rand(5, 5))
    with pytest.raises(
        InvalidInputError,
        match=r"layer '1' does not output a \(1, K, h, w\) feature map \(got \(1, 18\)\)",
    ):
        feature_map_grid(net, torch.rand(1, 5, 5), layers=nn.Flatten)


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, (3, 4, 5), elements=st.floats(-1e3, 1e3, width=32)))
def test_scale_each_maps_every_channel_onto_0_1_preserving_order(values):
    scaled = scale_each(torch.from_numpy(values)).numpy()
    for k in range(3):
        channel, out = values[k].ravel(), scaled[k].ravel()
        if channel.max() == channel.min():
            assert (out == 0).all()
            continue
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
        order = np.argsort(channel, kind="stable")
        assert (np.diff(out[order]) >= -1e-6).all()  # monotone: the tile keeps the map's order
