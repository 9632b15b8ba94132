"""overlay / save_png / write_overlays: blend formula, outlines, validation, atomic files."""

import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.checks.record import AuditRecord, SampleViews
from modelaudit.errors import InvalidInputError
from modelaudit.report.colormap import colormap_lut
from modelaudit.report.overlay import (
    OUTLINE_COLORS,
    image_to_rgb,
    overlay,
    png_bytes,
    save_png,
    write_overlays,
)

CYAN = list(OUTLINE_COLORS["inferno"]["box"])


def _expected_blend(image_chw, heat, alpha, name="inferno"):
    """The documented formula, computed here by hand: round(255((1-a)img + a lut[h]))."""
    lut = colormap_lut(name).astype(np.float64) / 255.0
    colours = lut[np.rint(heat * 255).astype(int)]
    img = np.repeat(image_chw, 3, axis=0) if image_chw.shape[0] == 1 else image_chw
    mixed = (1 - alpha) * np.moveaxis(img, 0, -1) + alpha * colours
    return np.rint(mixed * 255).astype(np.uint8)


def test_blend_matches_the_formula():
    rng = np.random.default_rng(0)
    image, heat = rng.random((3, 12, 10)), rng.random((12, 10))
    for alpha in (0.0, 0.3, 1.0):
        assert np.array_equal(
            overlay(image, heat, alpha=alpha), _expected_blend(image, heat, alpha)
        )
    assert np.array_equal(
        overlay(image, heat, alpha=0.4, colormap="viridis"),
        _expected_blend(image, heat, 0.4, "viridis"),
    )


def test_grayscale_tensor_and_uint8_inputs_agree():
    rng = np.random.default_rng(1)
    gray = rng.random((1, 6, 7))
    heat = rng.random((6, 7))
    reference = overlay(np.repeat(gray, 3, axis=0), heat)
    assert np.array_equal(overlay(gray, heat), reference)
    assert np.array_equal(overlay(gray[0], heat), reference)  # (H, W)
    assert np.array_equal(overlay(torch.from_numpy(gray).float().double(), heat), reference)
    assert np.array_equal(overlay(torch.from_numpy(gray[None]), torch.from_numpy(heat)), reference)
    u8 = (rng.random((3, 6, 7)) * 255).astype(np.uint8)
    assert np.array_equal(overlay(u8, heat), overlay(u8 / 255.0, heat))


def test_heatmap_is_resized_to_the_image():
    image = np.zeros((3, 8, 8))
    left = np.zeros((4, 4))
    left[:, :2] = 1.0
    out = overlay(image, left, alpha=1.0)
    top = colormap_lut("inferno")[255]
    bottom = colormap_lut("inferno")[0]
    # bilinear (edge mode): the outer three columns stay fully hot or fully cold
    assert (out[:, :3] == top).all() and (out[:, 5:] == bottom).all()
    assert np.array_equal(
        overlay(image, np.full((3, 5), 0.5)), overlay(image, np.full((8, 8), 0.5))
    )


def test_box_outline_on_border_pixels_only():
    h = w = 200  # outline width max(1, round(200 / 100)) = 2 pixels
    out = overlay(np.zeros((3, h, w)), np.zeros((h, w)), box=(50, 60, 150, 120), alpha=0.0)
    painted = np.all(out == CYAN, axis=-1)
    expected = np.zeros((h, w), bool)
    expected[60:62, 50:150] = expected[118:120, 50:150] = True
    expected[60:120, 50:52] = expected[60:120, 148:150] = True
    assert np.array_equal(painted, expected)


def test_box_on_the_image_edge_stays_visible():
    out = overlay(np.zeros((3, 10, 10)), np.zeros((10, 10)), box=(0, 0, 10, 10))
    painted = np.all(out == CYAN, axis=-1)
    assert painted[0].all() and painted[-1].all() and painted[:, 0].all() and painted[:, -1].all()
    assert not painted[1:-1, 1:-1].any()
    tiny = overlay(np.zeros((3, 10, 10)), np.zeros((10, 10)), box=torch.tensor([4, 4, 5, 5]))
    assert np.all(tiny[4, 4] == CYAN) and np.all(np.all(tiny == CYAN, axis=-1).sum() == 1)


def test_mask_boundary_is_outlined():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 3:8] = True
    out = overlay(np.zeros((3, 9, 9)), np.zeros((9, 9)), mask=mask)
    green = np.all(out == OUTLINE_COLORS["inferno"]["mask"], axis=-1)
    ring = mask.copy()
    ring[3:6, 4:7] = False  # the inner boundary of a solid rectangle is its border ring
    assert np.array_equal(green, ring)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"image": np.full((3, 4, 4), 1.5)},
            r"image values must lie in \[0, 1\].*max 1.5.*normalis",
        ),
        ({"image": np.zeros((2, 4, 4))}, r"image must be \(C, H, W\) with C = 1 or 3"),
        ({"heatmap": np.full((4, 4), np.nan)}, r"heatmap has 16 NaN"),
        ({"heatmap": np.zeros((2, 4, 4))}, r"heatmap must be \(H, W\)"),
        ({"box": (2, 2, 1, 3)}, r"box \(x1=2, y1=2, x2=1, y2=3\) must satisfy 0 <= x1 < x2 <= 4"),
        ({"box": (0, 0, 5, 4)}, r"inside the 4x4 image"),
        ({"box": (0.5, 0, 2, 2)}, r"whole pixels"),
        ({"box": (0, 0, 2)}, r"4 finite numbers"),
        ({"alpha": 1.5}, r"alpha must be a number in \[0, 1\]"),
        ({"colormap": "jet"}, r"unknown colormap 'jet'"),
        ({"mask": np.ones((3, 3), bool)}, r"mask must be \(H, W\) = \(4, 4\)"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, message):
    args = {"image": np.zeros((3, 4, 4)), "heatmap": np.zeros((4, 4))} | kwargs
    image, heatmap = args.pop("image"), args.pop("heatmap")
    with pytest.raises(InvalidInputError, match=message):
        overlay(image, heatmap, **args)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.floats(0, 1),
    st.integers(0, 2**32 - 1),
)
def test_blend_lies_between_image_and_colour(h, w, alpha, seed):
    rng = np.random.default_rng(seed)
    image, heat = rng.random((3, h, w)), rng.random((h, w))
    out = overlay(image, heat, alpha=alpha).astype(np.float64)
    colours = colormap_lut("inferno")[np.rint(heat * 255).astype(int)].astype(np.float64)
    img = np.moveaxis(image, 0, -1) * 255
    lo, hi = np.minimum(img, colours), np.maximum(img, colours)
    assert np.all(out >= np.floor(lo) - 0.5) and np.all(out <= np.ceil(hi) + 0.5)


def test_image_to_rgb_accepts_channels_last():
    hwc = np.random.default_rng(2).random((5, 6, 3))
    assert np.array_equal(image_to_rgb(hwc), hwc)
    assert image_to_rgb(np.moveaxis(hwc, -1, 0)).shape == (5, 6, 3)


def test_save_png_round_trip_and_atomicity(tmp_path, monkeypatch):
    picture = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    target = save_png(picture, tmp_path / "deep" / "dir" / "x.png")
    assert target == tmp_path / "deep" / "dir" / "x.png"
    assert np.array_equal(iio.imread(target), picture)
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    # a crash before the rename leaves the old file intact and no temporary file behind
    before = target.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_png(np.zeros((2, 2), np.uint8), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.png"]


def test_png_bytes_accepts_floats_and_channels_first():
    chw = torch.rand(3, 4, 6)
    decoded = iio.imread(png_bytes(chw))
    assert decoded.shape == (4, 6, 3)
    assert np.array_equal(decoded, np.rint(chw.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        png_bytes(np.full((2, 2), 3.0))


def _record(failing, n=3, size=8, values=None):
    gen = torch.Generator().manual_seed(0)
    return AuditRecord(
        check="mass in/box",
        assertion="assert_mass_in_box",
        passed=not failing,
        values=tuple(values or [0.5] * n),
        direction="higher",
        failing=tuple(failing),
        samples=SampleViews(
            images=torch.rand(n, 3, size, size, generator=gen),
            maps=torch.rand(n, size, size, generator=gen),
            boxes=torch.tensor([[0, 0, 4, 4]] * n),
        ),
    )


def test_write_overlays_draws_failing_samples_worst_first(tmp_path):
    rec = _record([0, 2], values=[0.3, 0.9, 0.1])
    paths = write_overlays(rec, tmp_path)
    assert [os.path.basename(p) for p in paths] == ["mass_in_box-2.png", "mass_in_box-0.png"]
    views = rec.samples
    assert views is not None and views.images is not None and views.maps is not None
    expected = overlay(views.images[2], views.maps[2], box=(0, 0, 4, 4))
    assert np.array_equal(iio.imread(paths[0]), expected)
    # the same check again into the same directory gets its own names
    again = write_overlays(rec, tmp_path)
    assert [os.path.basename(p) for p in again] == ["mass_in_box_2-2.png", "mass_in_box_2-0.png"]


def test_write_overlays_without_failures_draws_every_sample(tmp_path):
    assert len(write_overlays(_record([]), tmp_path)) == 3
    assert write_overlays(_record([]), tmp_path / "x", samples=[1])[0].endswith("-1.png")
    assert write_overlays(AuditRecord("c", "assert_c", True, (1.0,)), tmp_path) == []
    with pytest.raises(InvalidInputError, match="sample index 5 is out of range for 3"):
        write_overlays(_record([]), tmp_path, samples=[5])


def test_write_overlays_without_images_shows_the_map(tmp_path):
    rec = AuditRecord("c", "assert_c", True, (1.0,), samples=SampleViews(maps=torch.zeros(1, 4, 4)))
    (path,) = write_overlays(rec, tmp_path)
    assert (iio.imread(path) == colormap_lut("inferno")[0]).all()
