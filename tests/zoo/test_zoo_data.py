"""The shape generator: determinism, exact ground truth, watermark placement and correlation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.errors import InvalidInputError
from modelaudit.zoo import (
    AUDIT_SEED,
    CLASS_NAMES,
    WATERMARK_COLORS,
    ShapesData,
    audit_data,
    shapes_data,
)

MODES = ("none", "random", "class", "swapped")


def _fields(data: ShapesData) -> list[torch.Tensor]:
    return [
        data.images,
        data.boxes,
        data.labels,
        data.masks,
        data.watermark_labels,
        data.watermark_boxes,
    ]


def _tight_box(mask: torch.Tensor) -> list[int]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _overlap(a: list[int], b: list[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_same_seed_gives_identical_tensors_and_other_seed_differs() -> None:
    a = shapes_data(40, seed=11, watermark="random")
    b = shapes_data(40, seed=11, watermark="random")
    for x, y in zip(_fields(a), _fields(b)):
        assert torch.equal(x, y)
    c = shapes_data(40, seed=12, watermark="random")
    assert not torch.equal(a.images, c.images)


def test_shapes_dtypes_and_range() -> None:
    data = shapes_data(12, seed=0, image_size=48)
    assert data.images.shape == (12, 3, 48, 48) and data.images.dtype == torch.float32
    assert data.boxes.shape == (12, 4) and data.boxes.dtype == torch.long
    assert data.labels.shape == (12,) and data.labels.dtype == torch.long
    assert data.masks.shape == (12, 48, 48) and data.masks.dtype == torch.bool
    assert data.watermark_labels.dtype == torch.long
    assert data.watermark_boxes.shape == (12, 4) and data.watermark_boxes.dtype == torch.long
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    assert data.class_names == CLASS_NAMES == ("circle", "square", "triangle", "cross")


@pytest.mark.parametrize("n", [1, 7, 40, 401])
def test_labels_are_balanced_within_one(n: int) -> None:
    counts = torch.bincount(shapes_data(n, seed=n, max_distractors=0).labels, minlength=4)
    assert int(counts.sum()) == n
    assert int(counts.max() - counts.min()) <= 1


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    image_size=st.integers(32, 96),
    mode=st.sampled_from(MODES),
)
def test_boxes_are_tight_inside_the_image_and_clear_of_the_watermark(
    seed: int, image_size: int, mode: str
) -> None:
    data = shapes_data(6, seed=seed, image_size=image_size, watermark=mode)  # type: ignore[arg-type]
    for i in range(len(data)):
        box = data.boxes[i].tolist()
        assert _tight_box(data.masks[i]) == box
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= image_size and 0 <= y1 < y2 <= image_size
        # Every shape has the area of a disk of radius r in [7.5, 13.5] px at 64 px (scaled):
        # the smallest extent is a square's side sqrt(pi) r, the largest a triangle's side
        # sqrt(3) R with circumradius R = r sqrt(4 pi / (3 sqrt(3))), i.e. 2.69 r.
        extent = max(x2 - x1, y2 - y1)
        scale = image_size / 64
        smallest = math.sqrt(math.pi) * 7.5 * scale
        largest = math.sqrt(3) * math.sqrt(4 * math.pi / (3 * math.sqrt(3))) * 13.5 * scale
        assert smallest - 1 <= extent <= largest + 2
        if mode == "none":
            assert data.watermark_labels[i] == -1 and data.watermark_boxes[i].tolist() == [0] * 4
        else:
            assert not _overlap(box, data.watermark_boxes[i].tolist())


def test_object_is_one_flat_colour_exactly_on_its_mask_without_noise() -> None:
    data = shapes_data(30, seed=5, noise=(0.0, 0.0), max_distractors=0)
    for i in range(len(data)):
        x1, y1, x2, y2 = data.boxes[i].tolist()
        mask = data.masks[i]
        pixels = data.images[i][:, mask]  # (3, P)
        colour = pixels[:, 0]
        assert torch.equal(pixels, colour[:, None].expand_as(pixels))
        crop = data.images[i][:, y1:y2, x1:x2]
        same = (crop == colour[:, None, None]).all(0)
        assert torch.equal(same, mask[y1:y2, x1:x2])
        # Brighter than the background in the box by the documented contrast.
        background = crop[:, ~mask[y1:y2, x1:x2]]
        if background.numel():
            assert float((colour - background.mean(1)).mean()) > 0.25


def _expected_corner(cls: int, size: int, mark: int = 6, margin: int = 1) -> list[int]:
    x1 = margin if cls in (0, 3) else size - margin - mark
    y1 = margin if cls in (0, 1) else size - margin - mark
    return [x1, y1, x1 + mark, y1 + mark]


@pytest.mark.parametrize("mode", ["class", "swapped", "random"])
def test_watermark_is_the_checkerboard_of_its_class_in_its_corner(mode: str) -> None:
    data = shapes_data(24, seed=9, watermark=mode)  # type: ignore[arg-type]
    wm = data.watermark_labels
    if mode == "class":
        assert torch.equal(wm, data.labels)
    elif mode == "swapped":
        assert torch.equal(wm, (data.labels + 1) % 4)
    for i in range(len(data)):
        cls = int(wm[i])
        assert data.watermark_boxes[i].tolist() == _expected_corner(cls, 64)
        x1, y1, x2, y2 = data.watermark_boxes[i].tolist()
        patch = data.images[i][:, y1:y2, x1:x2]
        colour = torch.tensor(WATERMARK_COLORS[cls])
        cells = torch.arange(6) // 2
        on = (cells[:, None] + cells[None, :]) % 2 == 0
        expected = torch.where(on, colour[:, None, None], torch.zeros(()))
        assert torch.equal(patch, expected)


def test_random_watermark_is_uncorrelated_with_the_label() -> None:
    data = shapes_data(800, seed=3, watermark="random", max_distractors=0)
    joint = torch.zeros(4, 4)
    for label, mark in zip(data.labels.tolist(), data.watermark_labels.tolist()):
        joint[label, mark] += 1
    # Each of the 16 cells expects 50 images; independence keeps all within +-30 (4.5 sd).
    assert float((joint - 50).abs().max()) < 30
    agreement = float((data.labels == data.watermark_labels).float().mean())
    assert abs(agreement - 0.25) < 0.07


def test_modes_share_the_scene_and_differ_only_in_the_watermark() -> None:
    base = shapes_data(20, seed=21, watermark="none")
    for mode in ("random", "class", "swapped"):
        other = shapes_data(20, seed=21, watermark=mode)  # type: ignore[arg-type]
        assert torch.equal(base.boxes, other.boxes) and torch.equal(base.masks, other.masks)
        outside = torch.ones(20, 64, 64, dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(other.watermark_boxes.tolist()):
            outside[i, y1:y2, x1:x2] = False
        diff = (base.images != other.images).any(1)
        assert not bool((diff & outside).any())
        assert bool(diff.any())


def test_distractors_stay_clear_of_the_box_and_the_corners() -> None:
    plain = shapes_data(60, seed=4, max_distractors=0)
    busy = shapes_data(60, seed=4, max_distractors=3)
    assert torch.equal(plain.boxes, busy.boxes) and torch.equal(plain.masks, busy.masks)
    diff = (plain.images != busy.images).any(1)
    zone = 8  # margin 1 + watermark 6 + 1
    for i in range(60):
        x1, y1, x2, y2 = busy.boxes[i].tolist()
        # The box grown by 2 pixels and the four corner zones stay untouched.
        assert not bool(diff[i, max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2].any())
        for ys in (slice(0, zone), slice(64 - zone, 64)):
            for xs in (slice(0, zone), slice(64 - zone, 64)):
                assert not bool(diff[i, ys, xs].any())
    # Up to 3 distractors per image: most images get some.
    assert 30 <= int(diff.flatten(1).any(1).sum()) <= 60


def test_audit_data_uses_class_watermarks_and_the_audit_seed() -> None:
    data = audit_data(16)
    ref = shapes_data(16, seed=AUDIT_SEED, watermark="class")
    assert torch.equal(data.images, ref.images) and torch.equal(data.labels, ref.labels)
    assert torch.equal(data.watermark_labels, data.labels)


def test_indexing_keeps_fields_aligned() -> None:
    data = shapes_data(10, seed=2, watermark="class")
    sub = data[[1, 3]]
    assert len(sub) == 2 and torch.equal(sub.images[1], data.images[3])
    assert torch.equal(sub.masks[0], data.masks[1]) and torch.equal(sub.boxes[1], data.boxes[3])
    one = data[-1]
    assert len(one) == 1 and torch.equal(one.labels, data.labels[-1:])
    assert len(data[2:5]) == 3 and len(shapes_data(0, seed=0)) == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n": -1}, "n must be"),
        ({"image_size": 16}, "image_size must be"),
        ({"watermark": "corner"}, "watermark must be one of"),
        ({"max_distractors": -2}, "max_distractors"),
        ({"noise": (0.2, 0.1)}, "noise must be"),
        ({"seed": -3}, "seed must be"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"n": 2, "seed": 0, **kwargs}
    with pytest.raises(InvalidInputError, match=fragment):
        shapes_data(**args)  # type: ignore[arg-type]


def test_each_label_draws_its_shape() -> None:
    # Independent check of the label -> shape mapping from the masks alone: the fill ratio of
    # the mask in its box (disk: pi/4 up to rasterisation; triangle and cross about 1/2;
    # square >= 1/2) and point symmetry (IoU of the mask with itself turned by 180 degrees:
    # 1 for disks, squares and crosses, which are centred in their boxes; low for triangles).
    data = shapes_data(200, seed=8, max_distractors=0)
    area = (data.boxes[:, 2] - data.boxes[:, 0]) * (data.boxes[:, 3] - data.boxes[:, 1])
    fill = data.masks.sum((1, 2)).float() / area.float()
    sym = []
    for i in range(len(data)):
        x1, y1, x2, y2 = data.boxes[i].tolist()
        m = data.masks[i, y1:y2, x1:x2]
        turned = m.flip(0).flip(1)
        sym.append(float((m & turned).sum() / (m | turned).sum()))
    symmetry = torch.tensor(sym)
    labels = data.labels
    assert float((fill[labels == 0] - torch.pi / 4).abs().max()) < 0.12
    assert float(fill[labels == 1].min()) >= 0.5
    assert float(fill[labels == 2].max()) <= 0.6 and float(fill[labels == 3].max()) <= 0.6
    assert float(symmetry[labels == 2].max()) < 0.6
    assert float(symmetry[labels != 2].min()) > 0.9


def test_every_class_covers_the_same_area_on_average() -> None:
    # Equal areas by design: the disk-equivalent radius r is uniform in [7.5, 13.5] px, so the
    # mean area is pi E[r^2] = pi (13.5^3 - 7.5^3) / (3 * 6) = 355.8 px for every class.
    data = shapes_data(800, seed=12, max_distractors=0)
    area = data.masks.sum((1, 2)).float()
    expected = math.pi * (13.5**3 - 7.5**3) / (3 * 6)
    for k in range(4):
        mean = float(area[data.labels == k].mean())
        assert abs(mean / expected - 1) < 0.07, (CLASS_NAMES[k], mean)
