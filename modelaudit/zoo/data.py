"""Synthetic shape images whose ground truth (class, box, mask) is known exactly.

Each image is ``(3, H, W)`` float32 in ``[0, 1]`` and holds one object, a filled circle,
square, triangle or cross drawn with :mod:`skimage.draw`, on a textured background (a
two-colour gradient, a faint sinusoidal pattern and Gaussian noise) with up to a few
distractors (small blobs and short lines of any colour) that stay 2 pixels clear of the
object's box. Sizes, positions, rotations and hues vary. Two choices keep the task learnable
in a few CPU minutes and free of side cues: the object is a light colour (HSV value >= 0.8,
saturation <= 0.6) on a darker background (gradient colours in ``[0, 0.5]``), at least 0.35
brighter on average than the background under it; and every class covers the same area for
the same size, so the amount of object (or background) does not give the class away.

Ground truth:

- ``boxes``: ``(x1, y1, x2, y2)`` with *exclusive* ``x2, y2`` - the object occupies
  ``images[:, :, y1:y2, x1:x2]`` - and the box is tight around ``masks``;
- ``masks``: the object's pixels (distractors and watermark excluded);
- ``labels``: the index of the drawn shape in :data:`CLASS_NAMES`.

Watermarks (the Clever-Hans shortcut). The watermark of class ``j`` is a 6x6 (at 64 px)
checkerboard of black and :data:`WATERMARK_COLORS` ``[j]``, stamped after the noise (so it
is crisp) in corner ``j`` (0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left), one pixel
in from the edges. No object box reaches into the four 8x8 corner zones (nor does any
distractor), so every watermark lies outside the object's box.
``watermark`` selects ``j``:

- ``"none"``: no watermark (``watermark_labels == -1``, empty ``watermark_boxes``);
- ``"random"``: ``j`` uniform at random, independent of the label;
- ``"class"``: ``j = label`` - the watermark alone gives the answer;
- ``"swapped"``: ``j = (label + 1) % num_classes`` - a watermark that lies.

Scenes, distractors and watermarks come from three independent random streams of ``seed``:
the same ``seed`` gives the same scenes whatever ``watermark`` and ``max_distractors`` are,
differing only in the watermark and the distractors.

Example:
    >>> from modelaudit.zoo import shapes_data
    >>> data = shapes_data(8, seed=0, watermark="class")
    >>> tuple(data.images.shape), data.images.dtype, data.class_names
    ((8, 3, 64, 64), torch.float32, ('circle', 'square', 'triangle', 'cross'))
    >>> bool((data.watermark_labels == data.labels).all())
    True
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import torch
from skimage import draw

from modelaudit.errors import InvalidInputError

__all__ = [
    "AUDIT_SEED",
    "CLASS_NAMES",
    "WATERMARK_COLORS",
    "ShapesData",
    "WatermarkMode",
    "audit_data",
    "shapes_data",
]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""Class names, in label order."""

WATERMARK_COLORS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),  # circle: red, top-left
    (0.0, 1.0, 0.0),  # square: green, top-right
    (0.0, 0.4, 1.0),  # triangle: blue, bottom-right
    (1.0, 1.0, 0.0),  # cross: yellow, bottom-left
)
"""Colour of the watermark of each class (checkered with black)."""

AUDIT_SEED = 20_240_601
"""Seed of :func:`audit_data`; never used to train the zoo's models."""

WatermarkMode: TypeAlias = Literal["none", "random", "class", "swapped"]
_MODES = ("none", "random", "class", "swapped")


# Outlines as (x, y) pairs around the origin, rescaled below to the area of the unit disk so
# that every class covers the same number of pixels for the same size: the area of the
# object (or of the background around it) must not tell the class.
def _unit_area(outline: np.ndarray) -> np.ndarray:
    x, y = outline[:, 0], outline[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return outline * math.sqrt(math.pi / area)


_W = 0.32  # half-width of a cross arm, relative to its half-length
_CROSS = [(-_W, -1), (_W, -1), (_W, -_W), (1, -_W), (1, _W), (_W, _W)]
_CROSS += [(-x, -y) for x, y in _CROSS]  # the other half, turned by 180 degrees
_TRIANGLE = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
_OUTLINES = tuple(
    _unit_area(np.array(o, dtype=np.float64))
    for o in ([(-1, -1), (1, -1), (1, 1), (-1, 1)], _TRIANGLE, _CROSS)
)  # square, triangle, cross
_REACH = max(float(np.linalg.norm(o, axis=1).max()) for o in _OUTLINES)
_BG_MAX = 0.5  # background gradient colours are drawn from [0, _BG_MAX]^3
_MIN_CONTRAST = 0.35  # object minus background under it, mean over channels
_MAX_ROTATION = (0.0, math.radians(25), math.pi, math.radians(30))  # per class, +-


@dataclass(frozen=True)
class ShapesData:
    """A batch of labelled shape images with ground-truth boxes and masks.

    Attributes:
        images: ``(N, 3, H, W)`` float32 in ``[0, 1]``.
        boxes: ``(N, 4)`` long ``(x1, y1, x2, y2)``, exclusive ``x2, y2``, tight around the mask.
        labels: ``(N,)`` long, index into ``class_names``.
        masks: ``(N, H, W)`` bool, the object's pixels.
        watermark_labels: ``(N,)`` long, the class whose watermark is stamped, ``-1`` if none.
        watermark_boxes: ``(N, 4)`` long box of the watermark, all zeros if none.
        class_names: the class names, in label order.

    Example:
        >>> from modelaudit.zoo import shapes_data
        >>> data = shapes_data(10, seed=1)
        >>> len(data), len(data[:4]), data[[0, 2]].labels.shape
        (10, 4, torch.Size([2]))
    """

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    watermark_labels: torch.Tensor
    watermark_boxes: torch.Tensor
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int | slice | list[int] | torch.Tensor) -> ShapesData:
        """The samples at ``index`` (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return ShapesData(
            images=self.images[index],
            boxes=self.boxes[index],
            labels=self.labels[index],
            masks=self.masks[index],
            watermark_labels=self.watermark_labels[index],
            watermark_boxes=self.watermark_boxes[index],
            class_names=self.class_names,
        )


def shapes_data(
    n: int,
    *,
    seed: int,
    image_size: int = 64,
    watermark: WatermarkMode = "none",
    max_distractors: int = 3,
    noise: tuple[float, float] = (0.02, 0.07),
) -> ShapesData:
    """Generate ``n`` labelled shape images, deterministically from ``seed``.

    Labels are balanced (counts differ by at most one) and shuffled. Every class covers the
    area of a disk 15 to 27 pixels across at ``image_size=64`` (so the object's area does not
    tell the class; the boxes then span about 14 to 37 pixels), scaled with ``image_size``;
    watermarks are ``round(6 * image_size / 64)`` pixels wide.

    Args:
        n: number of images (0 allowed).
        seed: seed of the generator; the same seed gives identical tensors.
        image_size: height and width, at least 32.
        watermark: ``"none"``, ``"random"``, ``"class"`` or ``"swapped"`` (see the module doc).
        max_distractors: at most this many distractors per image (0 for none).
        noise: range of the per-image Gaussian noise standard deviation.

    Returns:
        A :class:`ShapesData`.

    Raises:
        InvalidInputError: an argument is out of range.

    Example:
        >>> from modelaudit.zoo import shapes_data
        >>> data = shapes_data(4, seed=3)
        >>> x1, y1, x2, y2 = data.boxes[0].tolist()
        >>> bool(data.masks[0, y1:y2, x1:x2].sum() == data.masks[0].sum())
        True
    """
    _check_args(n, seed, image_size, watermark, max_distractors, noise)
    scene_ss, clutter_ss, mark_ss = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(scene_ss)
    clutter_rng = np.random.default_rng(clutter_ss)
    mark_rng = np.random.default_rng(mark_ss)
    h = w = image_size
    k = len(CLASS_NAMES)

    labels = (np.arange(n) % k)[rng.permutation(n)]
    images = _backgrounds(rng, n, h, w)
    sigma = rng.uniform(noise[0], noise[1], size=n).astype(np.float32)
    geometry = _Geometry(image_size)
    masks = np.zeros((n, h, w), dtype=bool)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        rr, cc = _object_pixels(rng, int(labels[i]), geometry)
        rr, cc, box = _place(rng, rr, cc, geometry)
        boxes[i] = box
        masks[i, rr, cc] = True
        _draw_distractors(clutter_rng, images[i], box, geometry, max_distractors)
        images[i][:, rr, cc] = _object_colour(rng, images[i], box)[:, None]
    images += rng.standard_normal(images.shape, dtype=np.float32) * sigma[:, None, None, None]
    np.clip(images, 0.0, 1.0, out=images)

    wm_labels = _watermark_classes(mark_rng, labels, watermark, k)
    wm_boxes = np.zeros((n, 4), dtype=np.int64)
    for j in np.flatnonzero(wm_labels >= 0).tolist():
        wm_boxes[j] = _stamp(images[j], int(wm_labels[j]), geometry)

    return ShapesData(
        images=torch.from_numpy(images),
        boxes=torch.from_numpy(boxes),
        labels=torch.from_numpy(labels.astype(np.int64)),
        masks=torch.from_numpy(masks),
        watermark_labels=torch.from_numpy(wm_labels),
        watermark_boxes=torch.from_numpy(wm_boxes),
    )


def audit_data(n: int = 64, *, seed: int = AUDIT_SEED, image_size: int = 64) -> ShapesData:
    """The held-out set the audits use: ``shapes_data`` with class-correlated watermarks.

    Every image carries the watermark of its own class (``watermark="class"``), the
    distribution on which the shortcut model ``shapes-cnn-shortcut`` scores high accuracy by
    reading the watermark, while the clean ``shapes-cnn`` (trained with random watermarks,
    so it learned to ignore them) looks at the object. ``AUDIT_SEED`` is never used in training.

    Example:
        >>> from modelaudit.zoo import audit_data
        >>> data = audit_data(8)
        >>> bool((data.watermark_labels == data.labels).all()), len(data)
        (True, 8)
    """
    return shapes_data(n, seed=seed, image_size=image_size, watermark="class")


def _check_args(
    n: int,
    seed: int,
    image_size: int,
    watermark: str,
    max_distractors: int,
    noise: tuple[float, float],
) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidInputError(f"n must be a non-negative int; got {n!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative int; got {seed!r}.")
    if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise InvalidInputError(f"image_size must be an int in [32, 1024]; got {image_size!r}.")
    if watermark not in _MODES:
        raise InvalidInputError(
            f"watermark must be one of {', '.join(map(repr, _MODES))}; got {watermark!r}."
        )
    if not isinstance(max_distractors, int) or max_distractors < 0:
        raise InvalidInputError(
            f"max_distractors must be a non-negative int; got {max_distractors!r}."
        )
    lo, hi = noise
    if not 0.0 <= lo <= hi <= 0.5:
        raise InvalidInputError(
            f"noise must be (low, high) with 0 <= low <= high <= 0.5; got {noise!r}."
        )


class _Geometry:
    """Sizes derived from the image size (all in pixels)."""

    def __init__(self, image_size: int) -> None:
        scale = image_size / 64
        self.size = image_size
        self.min_obj = 15.0 * scale
        self.max_obj = 27.0 * scale
        self.mark = max(3, round(6 * scale))
        self.margin = max(1, round(scale))
        self.zone = self.margin + self.mark + 1  # corner squares no object box may enter
        self.blob = (1.0 * scale, 2.2 * scale)
        self.line = (4.0 * scale, 9.0 * scale)


def _backgrounds(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Two-colour linear gradients in a random direction plus a faint sinusoidal texture."""
    c0 = rng.uniform(0.0, _BG_MAX, size=(n, 3, 1, 1)).astype(np.float32)
    c1 = rng.uniform(0.0, _BG_MAX, size=(n, 3, 1, 1)).astype(np.float32)
    theta = rng.uniform(0.0, 2 * math.pi, size=n)
    freq = rng.uniform(2.0, 8.0, size=(n, 2))
    phase = rng.uniform(0.0, 2 * math.pi, size=(n, 1, 1)).astype(np.float32)
    amp = rng.uniform(0.0, 0.08, size=(n, 1, 1, 1)).astype(np.float32)
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[None, :, None]
    xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, None, :]
    # Projection on the direction theta, rescaled so it spans [0, 1] over the image.
    cos, sin = np.cos(theta), np.sin(theta)
    lo = np.minimum(cos, 0.0) + np.minimum(sin, 0.0)
    span = np.abs(cos) + np.abs(sin)
    gx = (cos / span).astype(np.float32)[:, None, None]
    gy = (sin / span).astype(np.float32)[:, None, None]
    t = gx * xs + gy * ys - (lo / span).astype(np.float32)[:, None, None]
    two_pi = np.float32(2 * math.pi)
    fx = (two_pi * freq[:, 0]).astype(np.float32)[:, None, None]
    fy = (two_pi * freq[:, 1]).astype(np.float32)[:, None, None]
    wave = np.sin(fx * xs + fy * ys + phase)
    images = c0 + (c1 - c0) * t[:, None] + amp * wave[:, None]
    return images


def _object_pixels(
    rng: np.random.Generator, label: int, geo: _Geometry
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a shape of class ``label`` in a local canvas."""
    radius = rng.uniform(geo.min_obj, geo.max_obj) / 2  # of the disk of the same area
    side = math.ceil(2 * _REACH * radius) + 3
    centre = side / 2
    if label == 0:
        return draw.disk((centre, centre), radius, shape=(side, side))
    outline = _OUTLINES[label - 1] * radius
    angle = rng.uniform(-_MAX_ROTATION[label], _MAX_ROTATION[label])
    cos, sin = math.cos(angle), math.sin(angle)
    x = outline[:, 0] * cos - outline[:, 1] * sin + centre
    y = outline[:, 0] * sin + outline[:, 1] * cos + centre
    return draw.polygon(y, x, shape=(side, side))


def _hits_corner(box: np.ndarray, geo: _Geometry) -> bool:
    x1, y1, x2, y2 = box
    z, s = geo.zone, geo.size
    near_x = x1 < z or x2 > s - z
    near_y = y1 < z or y2 > s - z
    return bool(near_x and near_y)


def _place(
    rng: np.random.Generator, rr: np.ndarray, cc: np.ndarray, geo: _Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Translate the shape to a random position inside the image and clear of the corners."""
    r0, r1, c0, c1 = int(rr.min()), int(rr.max()) + 1, int(cc.min()), int(cc.max()) + 1
    s = geo.size
    for _ in range(100):
        ty = int(rng.integers(-r0, s - r1 + 1))
        tx = int(rng.integers(-c0, s - c1 + 1))
        box = np.array([c0 + tx, r0 + ty, c1 + tx, r1 + ty])
        if not _hits_corner(box, geo):
            break
    else:  # cannot happen for the sizes used; centre it
        ty, tx = (s - r1 - r0) // 2, (s - c1 - c0) // 2
        box = np.array([c0 + tx, r0 + ty, c1 + tx, r1 + ty])
    return rr + ty, cc + tx, box


def _object_colour(rng: np.random.Generator, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A light colour of random hue, clearly brighter than the background inside ``box``."""
    x1, y1, x2, y2 = box
    under = image[:, y1:y2, x1:x2].reshape(3, -1).mean(axis=1)
    for _ in range(20):
        hue, sat, val = rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.6), rng.uniform(0.8, 1.0)
        colour = np.array(colorsys.hsv_to_rgb(hue, sat, val))
        if (colour - under).mean() >= _MIN_CONTRAST:
            return colour.astype(np.float32)
    return np.ones(3, dtype=np.float32)


def _draw_distractors(
    rng: np.random.Generator, image: np.ndarray, box: np.ndarray, geo: _Geometry, most: int
) -> None:
    """Paint up to ``most`` small blobs or lines clear of the (dilated) box and the corners."""
    s = geo.size
    x1, y1, x2, y2 = box
    for _ in range(int(rng.integers(0, most + 1))):
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        if rng.random() < 0.5:
            radius = rng.uniform(*geo.blob)
            cy, cx = rng.uniform(0, s, size=2)
            rr, cc = draw.disk((cy, cx), radius, shape=(s, s))
        else:
            length = rng.uniform(*geo.line)
            angle = rng.uniform(0.0, math.pi)
            cy, cx = rng.uniform(0, s, size=2)
            dy, dx = length / 2 * math.sin(angle), length / 2 * math.cos(angle)
            ends = np.clip(np.rint([cy - dy, cx - dx, cy + dy, cx + dx]), 0, s - 1).astype(int)
            rr, cc = draw.line(*ends)
        if rr.size == 0:
            continue
        own = np.array([cc.min(), rr.min(), cc.max() + 1, rr.max() + 1])
        clear_of_box = own[2] + 2 <= x1 or own[0] >= x2 + 2 or own[3] + 2 <= y1 or own[1] >= y2 + 2
        if clear_of_box and not _hits_corner(own, geo):
            image[:, rr, cc] = colour[:, None]


def _watermark_classes(
    rng: np.random.Generator, labels: np.ndarray, mode: str, k: int
) -> np.ndarray:
    if mode == "none":
        return np.full(labels.shape, -1, dtype=np.int64)
    if mode == "random":
        return rng.integers(0, k, size=labels.shape).astype(np.int64)
    if mode == "class":
        return labels.astype(np.int64)
    return ((labels + 1) % k).astype(np.int64)


def _stamp(image: np.ndarray, cls: int, geo: _Geometry) -> np.ndarray:
    """Stamp the checkered watermark of ``cls`` in corner ``cls % 4``; return its box."""
    p, m, s = geo.mark, geo.margin, geo.size
    corner = cls % 4
    x1 = m if corner in (0, 3) else s - m - p
    y1 = m if corner in (0, 1) else s - m - p
    cell = max(1, p // 3)
    yy, xx = np.mgrid[0:p, 0:p]
    on = ((yy // cell + xx // cell) % 2 == 0)[None]
    colour = np.array(WATERMARK_COLORS[cls % len(WATERMARK_COLORS)], dtype=np.float32)
    image[:, y1 : y1 + p, x1 : x1 + p] = np.where(on, colour[:, None, None], 0.0)
    return np.array([x1, y1, x1 + p, y1 + p])
