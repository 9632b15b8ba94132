"""The calibration study's generated datasets: shapes of known box and mask, plus a cue.

Each image holds one object (circle, square, triangle or cross: the label) drawn with
:mod:`skimage.draw` on a dark two-colour gradient with noise. The object's *box* covers a
chosen fraction of the image (``area=(lo, hi)``, e.g. 4-30%). A **cue** of a class is added
to the background; the cue kinds:

============  ==========================================================================
``corner``    a checkered patch in the corner of the cue's class (0 top-left, clockwise)
``tint``      the background blended toward the class's colour
``texture``   faint stripes whose orientation is the class (0, 45, 90, 135 degrees)
``frame``     a thin frame along the image border in the class's colour (our design)
``dots``      five small dots of the class's colour scattered over the background (our
              design: no fixed place, so no audit can be told where to look)
``bar``       a grey bar along one side of the image; the side is the class (0 top,
              clockwise; our design, used only by the confirmation split)
============  ==========================================================================

``agree`` is the probability that the cue shows the label's class (else another class,
uniformly); ``cue_agree=None`` draws the cue's class independently of the label (a
cue-randomised set). ``shape_agree`` is the probability that the drawn shape is the
label's (else another shape): shortcut models train with ``shape_agree < 1`` so the cue is
the more reliable signal; clean models train with ``shape_agree=1`` and a random cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from skimage import draw

CUES = ("corner", "tint", "texture", "frame", "dots")  # clean models train with these
CONFIRM_CUES = ("bar",)  # a sixth kind, used only by the confirmation split
COLOURS = np.array(
    [[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.4, 1.0], [1.0, 1.0, 0.0]], dtype=np.float32
)
K = 4  # classes


@dataclass(frozen=True)
class Batch:
    images: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    labels: torch.Tensor  # (N,) long
    boxes: torch.Tensor  # (N, 4) long XYXY, exclusive x2, y2
    masks: torch.Tensor  # (N, S, S) bool
    cue_labels: torch.Tensor  # (N,) long: the class the cue shows


def _other(rng: np.random.Generator, label: int) -> int:
    return int((label + rng.integers(1, K)) % K)


def _shape(kind: int, side: int) -> np.ndarray:
    """A boolean ``side x side`` canvas with a shape of class ``kind`` filling it."""
    canvas = np.zeros((side, side), dtype=bool)
    c = (side - 1) / 2
    if kind == 0:
        rr, cc = draw.disk((c, c), side / 2, shape=canvas.shape)
    elif kind == 1:
        m = side * 0.1
        rr, cc = draw.rectangle((round(m), round(m)), (round(side - 1 - m),) * 2)
    elif kind == 2:
        rr, cc = draw.polygon([0, side - 1, side - 1], [c, 0, side - 1], shape=canvas.shape)
    else:
        t = max(1, round(side * 0.17))
        canvas[:, round(c - t) : round(c + t) + 1] = True
        canvas[round(c - t) : round(c + t) + 1, :] = True
        return canvas
    canvas[rr, cc] = True
    return canvas


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    c0, c1 = rng.uniform(0.0, 0.45, size=(2, 3, 1, 1)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) / max(1, s - 1)
    t = (math.cos(theta) * xs + math.sin(theta) * ys + 2) / 4
    return (c0 + (c1 - c0) * t[None]).astype(np.float32)


def _add_cue(
    rng: np.random.Generator, img: np.ndarray, kind: str, cls: int, keep: np.ndarray
) -> None:
    """Paint the cue of class ``cls`` into ``img`` (3, S, S), never over ``keep`` pixels."""
    s = img.shape[-1]
    colour = COLOURS[cls][:, None, None]
    free = ~keep
    if kind == "tint":
        img[:] = 0.6 * img + 0.4 * 0.55 * colour  # the object is drawn over it later
    elif kind == "texture":
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
        a = cls * math.pi / 4
        period = max(4.0, s / 8)
        wave = np.sin(2 * math.pi * (math.cos(a) * xs + math.sin(a) * ys) / period)
        img[:] = np.clip(img + 0.12 * wave[None], 0, 1)
    elif kind == "corner":
        p = max(3, round(s / 10))
        m = max(1, s // 64)
        x1 = m if cls in (0, 3) else s - m - p
        y1 = m if cls in (0, 1) else s - m - p
        cell = max(1, p // 3)
        yy, xx = np.mgrid[0:p, 0:p]
        on = ((yy // cell + xx // cell) % 2 == 0)[None]
        img[:, y1 : y1 + p, x1 : x1 + p] = np.where(on, colour, 0.0)
    elif kind == "frame":
        t = max(1, s // 32)
        ring = np.zeros((s, s), dtype=bool)
        ring[:t], ring[-t:], ring[:, :t], ring[:, -t:] = True, True, True, True
        img[:] = np.where(ring[None] & free, colour, img)
    elif kind == "bar":
        t = max(2, s // 16)
        side = np.zeros((s, s), dtype=bool)
        [side[:t], side[:, -t:], side[-t:], side[:, :t]][cls][...] = True
        img[:] = np.where(side[None] & free, 0.7, img)
    elif kind == "dots":
        r = max(1.0, s / 40)
        for _ in range(5):
            for _try in range(20):
                cy, cx = rng.uniform(r, s - r, size=2)
                rr, cc = draw.disk((cy, cx), r + 0.5, shape=(s, s))
                if not keep[rr, cc].any():
                    img[:, rr, cc] = colour[:, :, 0]
                    break
    else:
        raise ValueError(f"unknown cue {kind!r}")


def _place(rng: np.random.Generator, s: int, side: int, zone: int) -> tuple[int, int]:
    """Top-left of a ``side`` box clear of the four ``zone`` corner squares."""
    for _ in range(200):
        x, y = (int(v) for v in rng.integers(1, s - side, size=2))
        near_x = x < zone or x + side > s - zone
        near_y = y < zone or y + side > s - zone
        if not (near_x and near_y):
            return x, y
    return (s - side) // 2, (s - side) // 2


def make(
    n: int,
    *,
    seed: int,
    size: int,
    area: tuple[float, float],
    cue: str | tuple[str, ...],
    cue_agree: float | None,
    shape_agree: float = 1.0,
) -> Batch:
    """``n`` images of ``size`` px; ``cue`` a kind, or a tuple to draw one per image."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % K)[rng.permutation(n)]
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    boxes = np.zeros((n, 4), dtype=np.int64)
    cue_labels = np.zeros(n, dtype=np.int64)
    zone = max(3, round(size / 10)) + 2
    kinds = (cue,) if isinstance(cue, str) else cue
    for i in range(n):
        y = int(labels[i])
        kind = y if rng.random() < shape_agree else _other(rng, y)
        frac = rng.uniform(*area)
        side = int(np.clip(round(math.sqrt(frac) * size), 4, size - 2 * zone))
        shape = _shape(kind, side)
        x0, y0 = _place(rng, size, side, zone)
        mask = np.zeros((size, size), dtype=bool)
        mask[y0 : y0 + side, x0 : x0 + side] = shape
        rows, cols = np.nonzero(mask)
        boxes[i] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        img = _background(rng, size)
        c = (
            rng.integers(0, K)
            if cue_agree is None
            else (y if rng.random() < cue_agree else _other(rng, y))
        )
        cue_labels[i] = c
        x1, y1, x2, y2 = boxes[i]
        keep = np.zeros((size, size), dtype=bool)
        keep[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1] = True
        _add_cue(rng, img, kinds[int(rng.integers(0, len(kinds)))], int(c), keep)
        hue = rng.uniform(0.75, 1.0, size=3).astype(np.float32)
        img[:, mask] = hue[:, None]
        img += rng.normal(0, 0.03, size=img.shape).astype(np.float32)
        images[i] = np.clip(img, 0, 1)
        masks[i] = mask
    return Batch(
        torch.from_numpy(images),
        torch.from_numpy(labels.astype(np.int64)),
        torch.from_numpy(boxes),
        torch.from_numpy(masks),
        torch.from_numpy(cue_labels),
    )
