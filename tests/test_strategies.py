"""Hypothesis strategies: what they draw, how they validate, shrink and replay."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from modelaudit import strategies as mst

# Examples per test come from the Hypothesis profile (conftest.py): dev 25, ci 100.
PROFILE = settings(deadline=None)


def invalid(message: str) -> pytest.RaisesContext[InvalidArgument]:
    return pytest.raises(InvalidArgument, match=re.escape(message))


# ---------------------------------------------------------------- what is drawn


@PROFILE
@given(mst.images(channels=st.integers(1, 4), height=mst.sizes(3, 20), width=7))
def test_images_default_float_range_and_shape(x: torch.Tensor) -> None:
    assert x.dim() == 4 and 1 <= x.shape[0] <= 4 and 1 <= x.shape[1] <= 4
    assert 3 <= x.shape[2] <= 20 and x.shape[3] == 7
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1


@PROFILE
@given(mst.images(batch=2, height=5, width=5, dtype=torch.uint8))
def test_uint8_images_span_0_to_255(x: torch.Tensor) -> None:
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 5, 5)


@PROFILE
@given(mst.images(batch=1, height=6, width=6, dtype=torch.float64, min_value=-2.5, max_value=-1.0))
def test_images_respect_custom_bounds(x: torch.Tensor) -> None:
    assert x.dtype == torch.float64 and x.min() >= -2.5 and x.max() <= -1.0


def test_images_reach_all_styles_and_integer_extremes() -> None:
    const = find(mst.images(batch=1, channels=1, height=4, width=4), lambda x: True)
    assert const.unique().numel() == 1  # the simplest image is constant
    noisy = find(
        mst.images(batch=1, channels=1, height=4, width=4), lambda x: x.unique().numel() > 8
    )
    assert noisy.unique().numel() > 8
    hi = find(mst.images(batch=1, height=8, width=8, dtype=torch.uint8), lambda x: x.max() == 255)
    assert hi.max() == 255
    lo = find(
        mst.images(batch=1, height=8, width=8, dtype=torch.int8, min_value=-3, max_value=3),
        lambda x: x.min() == -3,
    )
    assert lo.min() == -3 and lo.max() <= 3


@PROFILE
@given(st.data())
def test_boxes_lie_inside_the_image_with_sides_in_range(data: st.DataObject) -> None:
    h, w = data.draw(mst.sizes(4, 30)), data.draw(mst.sizes(4, 30))
    lo = data.draw(st.integers(1, min(h, w)))
    hi = data.draw(st.integers(lo, 40))
    b = data.draw(mst.boxes(image_size=(h, w), min_size=lo, max_size=hi, batch=3))
    assert b.shape == (3, 4) and b.dtype == torch.long
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
    assert ((bw >= lo) & (bw <= hi) & (bh >= lo) & (bh <= hi)).all()


@PROFILE
@given(mst.masks(height=mst.sizes(2, 12), width=mst.sizes(2, 12)))
def test_masks_are_bool_and_never_empty_by_default(m: torch.Tensor) -> None:
    assert m.dtype == torch.bool and m.dim() == 3 and m.flatten(1).any(1).all()


def test_masks_may_be_empty_when_allowed() -> None:
    m = find(mst.masks(batch=2, height=4, width=4, allow_empty=True), lambda m: not m[1].any())
    assert not m[1].any()
    full = find(mst.masks(batch=1, height=3, width=3), lambda m: bool(m.all()))
    assert full.all()


@PROFILE
@given(mst.heatmaps(height=mst.sizes(2, 9), width=mst.sizes(2, 9)))
def test_heatmaps_are_finite_and_non_negative(m: torch.Tensor) -> None:
    assert m.dtype == torch.float32 and torch.isfinite(m).all() and (m >= 0).all()


@pytest.mark.slow  # find() shrinks: seconds without the example database (CI)
def test_heatmaps_include_the_zero_map_unless_disallowed() -> None:
    assert find(mst.heatmaps(), lambda m: True).abs().sum() == 0
    no_zero = find(mst.heatmaps(allow_zero=False, batch=1), lambda m: True)
    assert no_zero.max() > 0


@PROFILE
@given(mst.images_with_boxes(channels=st.integers(1, 3), min_size=3))
def test_scenes_have_exact_ground_truth(scene: mst.Scene) -> None:
    images, boxes, masks = scene
    n, _, h, w = images.shape
    assert boxes.shape == (n, 4) and masks.shape == (n, h, w)
    for i in range(n):
        x1, y1, x2, y2 = boxes[i].tolist()
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        m = masks[i]
        assert m.any() and not (m & ~inside).any()  # the object lies in its box...
        assert (
            m[y1].any() and m[y2 - 1].any() and m[:, x1].any() and m[:, x2 - 1].any()
        )  # ...tightly
        assert images[i][:, m].min() >= 0.7  # the object is bright
        if (~m).any():
            assert images[i][:, ~m].max() <= 0.3  # the background is dim


@settings(max_examples=5, deadline=None)
@given(mst.images_with_boxes(batch=2, height=16, width=16, shape="rectangle"))
def test_rectangles_fill_their_box(scene: mst.Scene) -> None:
    for (x1, y1, x2, y2), m in zip(scene.boxes.tolist(), scene.masks):
        assert m.sum() == (x2 - x1) * (y2 - y1)


@settings(max_examples=5, deadline=None)
@given(mst.images_with_boxes(batch=2, height=16, width=16, min_size=8, shape="ellipse"))
def test_ellipses_leave_the_box_corners_out(scene: mst.Scene) -> None:
    for (x1, y1, x2, y2), m in zip(scene.boxes.tolist(), scene.masks):
        assert m.sum() < (x2 - x1) * (y2 - y1) and not m[y1, x1] and not m[y2 - 1, x2 - 1]


@PROFILE
@given(mst.targets(classes=st.integers(1, 5), batch=st.integers(1, 6)))
def test_targets_are_class_indices(t: torch.Tensor) -> None:
    assert t.dtype == torch.long and t.dim() == 1 and (t >= 0).all() and (t < 5).all()


@PROFILE
@given(mst.batches(classes=3, height=16, width=st.integers(16, 20)))
def test_batches_share_one_batch_size(b: mst.Batch) -> None:
    n = b.images.shape[0]
    assert b.targets.shape == (n,) and b.boxes.shape == (n, 4) and b.masks.shape[0] == n
    assert (b.targets < 3).all()


# ---------------------------------------------------------------- shrinking and replay


@pytest.mark.slow  # find() shrinks: seconds without the example database (CI)
def test_examples_shrink_to_fewer_samples_and_smaller_images() -> None:
    assert find(mst.images(), lambda x: True).shape == (1, 3, 8, 8)
    two = find(mst.images(), lambda x: x.shape[0] >= 2)
    assert two.shape == (2, 3, 8, 8)
    assert find(mst.boxes(image_size=32), lambda b: True).tolist() == [[0, 0, 1, 1]]
    wide = find(mst.boxes(image_size=32, batch=1), lambda b: b[0, 2] - b[0, 0] >= 5)
    assert wide.tolist() == [[0, 0, 5, 1]]
    assert find(mst.targets(classes=7), lambda t: True).tolist() == [0]
    assert find(mst.sizes(3, 9), lambda s: s > 4) == 5


def test_pixels_come_from_a_seeded_generator_not_the_global_rng() -> None:
    state = torch.get_rng_state()
    a = find(mst.images(batch=1, height=6, width=6), lambda x: x.unique().numel() > 10)
    b = find(mst.images(batch=1, height=6, width=6), lambda x: x.unique().numel() > 10)
    assert torch.equal(a, b)  # the same choices replay the same pixels
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- argument validation


def test_validation_messages_read_like_hypothesis() -> None:
    with invalid("min_size=5 is larger than max_size=3"):
        mst.sizes(5, 3)
    with invalid("min_size=5 is larger than max_size=3"):
        mst.boxes(image_size=8, min_size=5, max_size=3)
    with invalid("min_size=9 is larger than the image size (8, 20) (height, width)"):
        mst.boxes(image_size=(8, 20), min_size=9)
    with invalid("min_value=1.0 is larger than max_value=0.0"):
        mst.images(min_value=1.0, max_value=0.0)
    with invalid("min_value=0 is larger than max_value=-1"):
        mst.images(min_value=0, max_value=-1)
    with invalid("max_value=inf must be a finite number"):
        mst.images(max_value=float("inf"))
    with invalid("min_value=-1, max_value=300 do not fit in torch.uint8 (range 0..255)"):
        mst.images(dtype=torch.uint8, min_value=-1, max_value=300)
    with invalid("no integer lies between min_value=0.2 and max_value=0.8"):
        mst.images(dtype=torch.uint8, min_value=0.2, max_value=0.8)
    with invalid("dtype=torch.complex64 is not supported"):
        mst.images(dtype=torch.complex64)
    with invalid("batch=0 must be at least 1"):
        mst.images(batch=0)
    with invalid("height=2.5 must be an int or a strategy of ints"):
        mst.masks(height=2.5)  # type: ignore[arg-type]
    with invalid("classes=0 must be at least 1"):
        mst.targets(classes=0)
    with invalid("image_size=(8, 0) must be an int >= 1, a (height, width) pair"):
        mst.boxes(image_size=(8, 0))
    with invalid("min_size=20 is larger than height=16"):
        mst.images_with_boxes(height=16, min_size=20)
    with invalid("shape='star' must be one of ('rectangle', 'ellipse', 'triangle')"):
        mst.images_with_boxes(shape="star")  # type: ignore[arg-type]


def test_drawn_values_are_validated_when_drawn() -> None:
    with invalid("the batch strategy drew 0; batch must be an int >= 1"):
        find(mst.images(batch=st.just(0)), lambda x: True)
    with invalid("min_size=6 does not fit in an image of size (4, 4) (height, width)"):
        find(mst.boxes(image_size=st.just(4), min_size=6), lambda b: True)
    with invalid("shape='blob' must be one of"):
        find(mst.images_with_boxes(batch=1, shape=st.just("blob")), lambda s: True)  # type: ignore[arg-type]
