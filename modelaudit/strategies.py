"""Hypothesis strategies for vision audits: images, boxes, masks, heat maps, labelled batches.

Use them like ``hypothesis.extra.numpy``: every option is keyword-only and takes either a
value or a strategy that draws it; bad arguments raise Hypothesis' ``InvalidArgument`` with
a message such as ``min_size=5 is larger than max_size=3``.

**Shrinking.** Sizes, batch sizes, class indices and box coordinates are drawn by
Hypothesis, so a failing example shrinks towards fewer samples, smaller images, smaller
boxes at the top-left corner and class 0. Pixel content is drawn as a *style* (shrinking
towards the simplest: a constant image, a zero map) plus a 32-bit *seed*.

**Replay.** Pixel values come from a ``torch.Generator`` seeded with that seed, never from
torch's global RNG (which is left untouched), so a failing example replays exactly from
Hypothesis' database, ``@seed`` or ``@reproduce_failure``.

Example:
    >>> from hypothesis import given, settings
    >>> from modelaudit import strategies as mst
    >>> @settings(max_examples=5, database=None)
    ... @given(mst.images(batch=2, channels=3, height=mst.sizes(8, 16), width=8))
    ... def test_shape(x):
    ...     assert x.shape[:2] == (2, 3) and x.shape[3] == 8 and 8 <= x.shape[2] <= 16
    ...     assert 0 <= x.min() and x.max() <= 1
    >>> test_shape()
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, TypeAlias, TypeVar

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

__all__ = [
    "Batch",
    "Scene",
    "batches",
    "boxes",
    "heatmaps",
    "images",
    "images_with_boxes",
    "masks",
    "seeds",
    "sizes",
    "targets",
]

T = TypeVar("T")
IntArg: TypeAlias = int | SearchStrategy[int]
SizeArg: TypeAlias = int | tuple[int, int] | SearchStrategy[int] | SearchStrategy[tuple[int, int]]
ShapeName = Literal["rectangle", "ellipse", "triangle"]
SHAPES: tuple[ShapeName, ...] = ("rectangle", "ellipse", "triangle")

_DEFAULT_BATCH = st.integers(1, 4)


def _default_side() -> SearchStrategy[int]:
    return st.integers(8, 32)


# ------------------------------------------------------------------ argument checking


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(name: str, value: Any, *, least: int, allow_none: bool = False) -> None:
    """Validate a concrete int option (strategies are checked when drawn)."""
    if isinstance(value, SearchStrategy) or (allow_none and value is None):
        return
    if not _is_int(value):
        raise InvalidArgument(f"{name}={value!r} must be an int or a strategy of ints")
    if value < least:
        raise InvalidArgument(f"{name}={value} must be at least {least}")


def _check_order(lo_name: str, lo: Any, hi_name: str, hi: Any) -> None:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi))
    if numbers and lo > hi:
        raise InvalidArgument(f"{lo_name}={lo!r} is larger than {hi_name}={hi!r}")


def _draw(draw: Any, name: str, value: Any, *, least: int = 1) -> int:
    """A concrete int, drawing it first when ``value`` is a strategy."""
    got = draw(value) if isinstance(value, SearchStrategy) else value
    if not _is_int(got) or got < least:
        raise InvalidArgument(f"the {name} strategy drew {got!r}; {name} must be an int >= {least}")
    return int(got)


def _draw_size(draw: Any, value: Any) -> tuple[int, int]:
    got = draw(value) if isinstance(value, SearchStrategy) else value
    if _is_int(got):
        got = (got, got)
    if (
        not isinstance(got, tuple | list)
        or len(got) != 2
        or not all(_is_int(v) and v >= 1 for v in got)
    ):
        raise InvalidArgument(
            f"image_size={got!r} must be an int >= 1 or a (height, width) pair of ints >= 1"
        )
    return int(got[0]), int(got[1])


def _check_size_arg(value: Any) -> None:
    if isinstance(value, SearchStrategy):
        return
    if _is_int(value):
        value = (value, value)
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(_is_int(v) and v >= 1 for v in value)
    ):
        raise InvalidArgument(
            f"image_size={value!r} must be an int >= 1, a (height, width) pair of ints >= 1 or "
            "a strategy drawing one"
        )


# ------------------------------------------------------------------ simple strategies


def seeds() -> SearchStrategy[int]:
    """32-bit seeds for a ``torch.Generator`` (shrinks towards 0).

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> find(mst.seeds(), lambda s: s > 1000)  # the simplest seed above 1000
        1001
    """
    return st.integers(0, 2**32 - 1)


def sizes(min_size: int = 8, max_size: int = 64) -> SearchStrategy[int]:
    """Image side lengths in pixels, ``min_size..max_size`` (shrinks towards ``min_size``).

    Example:
        >>> from modelaudit import strategies as mst
        >>> mst.sizes(5, 3)
        Traceback (most recent call last):
        ...
        hypothesis.errors.InvalidArgument: min_size=5 is larger than max_size=3
    """
    _check_int("min_size", min_size, least=1)
    _check_int("max_size", max_size, least=1)
    _check_order("min_size", min_size, "max_size", max_size)
    return st.integers(min_size, max_size)


def targets(*, classes: IntArg, batch: IntArg = _DEFAULT_BATCH) -> SearchStrategy[torch.Tensor]:
    """Class indices: a long tensor ``(N,)`` with values in ``[0, classes)``.

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> t = find(mst.targets(classes=3, batch=5), lambda _: True)
        >>> t.shape, t.dtype, bool(((0 <= t) & (t < 3)).all())
        (torch.Size([5]), torch.int64, True)
    """
    _check_int("classes", classes, least=1)
    _check_int("batch", batch, least=1)

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        n = _draw(draw, "batch", batch)
        k = _draw(draw, "classes", classes)
        return torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))

    return build()


# ------------------------------------------------------------------ pixel content


def _smooth(gen: torch.Generator, lead: tuple[int, ...], h: int, w: int) -> torch.Tensor:
    """Smooth noise in [0, 1]: coarse uniform noise, bilinearly upsampled."""
    coarse = torch.rand((*lead, max(2, math.ceil(h / 4)), max(2, math.ceil(w / 4))), generator=gen)
    flat = coarse.reshape(-1, 1, *coarse.shape[-2:])
    up = F.interpolate(flat, size=(h, w), mode="bilinear", align_corners=False)
    return up.reshape(*lead, h, w)


def _content(style: str, gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Values in [0, 1] of the given style, float64."""
    *lead, h, w = shape
    if style == "constant":
        return torch.rand((*lead, 1, 1), generator=gen, dtype=torch.float64).expand(shape).clone()
    if style == "uniform":
        return torch.rand(shape, generator=gen, dtype=torch.float64)
    return _smooth(gen, tuple(lead), h, w).double()


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _value_range(
    dtype: torch.dtype, min_value: float | None, max_value: float | None
) -> tuple[float, float]:
    """The checked ``(min_value, max_value)`` of :func:`images`, defaults filled in by dtype.

    Example:
        >>> _value_range(torch.uint8, None, None), _value_range(torch.float32, -1.0, None)
        ((0.0, 255.0), (-1.0, 1.0))
    """
    if dtype not in _FLOAT_DTYPES + _INT_DTYPES:
        raise InvalidArgument(
            f"dtype={dtype!r} is not supported; use a floating dtype or an integer one such as "
            "torch.uint8"
        )
    is_int = dtype in _INT_DTYPES
    lo = 0.0 if min_value is None else min_value
    hi = (
        (255.0 if dtype == torch.uint8 else 100.0 if is_int else 1.0)
        if max_value is None
        else max_value
    )
    for name, bound in (("min_value", lo), ("max_value", hi)):
        if (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
        ):
            raise InvalidArgument(f"{name}={bound!r} must be a finite number")
    _check_order("min_value", lo, "max_value", hi)
    if is_int:
        info = torch.iinfo(dtype)
        if lo < info.min or hi > info.max:
            raise InvalidArgument(
                f"min_value={lo!r}, max_value={hi!r} do not fit in {dtype} "
                f"(range {info.min}..{info.max})"
            )
        if math.ceil(lo) > math.floor(hi):
            raise InvalidArgument(f"no integer lies between min_value={lo!r} and max_value={hi!r}")
    return lo, hi


def _scale(unit: torch.Tensor, lo: float, hi: float, dtype: torch.dtype) -> torch.Tensor:
    """Map values in [0, 1] onto ``[lo, hi]`` in ``dtype`` (integers: equal-width bins).

    Example:
        >>> _scale(torch.tensor([0.0, 0.49, 0.5, 1.0]), 0, 1, torch.uint8).tolist()
        [0, 0, 1, 1]
    """
    if dtype in _INT_DTYPES:
        a, b = math.ceil(lo), math.floor(hi)
        return (a + torch.floor(unit * (b - a + 1)).clamp(max=b - a)).to(dtype)
    return (lo + unit * (hi - lo)).to(dtype).clamp(lo, hi)


def images(
    *,
    batch: IntArg = _DEFAULT_BATCH,
    channels: IntArg = 3,
    height: IntArg | None = None,
    width: IntArg | None = None,
    dtype: torch.dtype = torch.float32,
    min_value: float | None = None,
    max_value: float | None = None,
) -> SearchStrategy[torch.Tensor]:
    """Image batches ``(N, C, H, W)`` with values in ``[min_value, max_value]``.

    Content is one of three styles per batch: constant per image and channel, uniform noise,
    or smooth noise (shrinks towards constant); see the module notes on seeding.

    Args:
        batch: samples N (default 1..4).
        channels: C.
        height: H (default ``sizes(8, 32)``).
        width: W (default ``sizes(8, 32)``).
        dtype: a floating dtype, or an integer one such as ``torch.uint8``.
        min_value: smallest value (default 0).
        max_value: largest value (default 1 for floats, 255 for ``uint8``, else 100).

    Example:
        >>> import torch
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> x = find(mst.images(batch=1, height=4, width=6, dtype=torch.uint8), lambda _: True)
        >>> x.shape, x.dtype
        (torch.Size([1, 3, 4, 6]), torch.uint8)
        >>> mst.images(min_value=1.0, max_value=0.0)
        Traceback (most recent call last):
        ...
        hypothesis.errors.InvalidArgument: min_value=1.0 is larger than max_value=0.0
    """
    for name, v in (("batch", batch), ("channels", channels), ("height", height), ("width", width)):
        _check_int(name, v, least=1, allow_none=True)
    lo, hi = _value_range(dtype, min_value, max_value)
    h_arg = _default_side() if height is None else height
    w_arg = _default_side() if width is None else width

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        n = _draw(draw, "batch", batch)
        c = _draw(draw, "channels", channels)
        h = _draw(draw, "height", h_arg)
        w = _draw(draw, "width", w_arg)
        style = draw(st.sampled_from(("constant", "uniform", "smooth")))
        gen = torch.Generator().manual_seed(draw(seeds()))
        return _scale(_content(style, gen, (n, c, h, w)), lo, hi, dtype)

    return build()


def heatmaps(
    *,
    batch: IntArg = _DEFAULT_BATCH,
    height: IntArg | None = None,
    width: IntArg | None = None,
    allow_zero: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Non-negative float32 heat maps ``(N, H, W)``, one style per batch.

    Styles, in shrinking order: all zero (only with ``allow_zero``), constant per map, a
    single peak, smooth noise, uniform noise, sparse (mostly zero) noise.

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> m = find(mst.heatmaps(batch=2, height=5, width=7), lambda _: True)
        >>> m.shape, bool((m >= 0).all())
        (torch.Size([2, 5, 7]), True)
    """
    for name, v in (("batch", batch), ("height", height), ("width", width)):
        _check_int(name, v, least=1, allow_none=True)
    h_arg = _default_side() if height is None else height
    w_arg = _default_side() if width is None else width
    styles = ("zero",) * bool(allow_zero) + ("constant", "peak", "smooth", "uniform", "sparse")

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        n = _draw(draw, "batch", batch)
        h = _draw(draw, "height", h_arg)
        w = _draw(draw, "width", w_arg)
        style = draw(st.sampled_from(styles))
        gen = torch.Generator().manual_seed(draw(seeds()))
        if style == "zero":
            return torch.zeros(n, h, w)
        if style == "peak":
            out = torch.zeros(n, h * w, dtype=torch.float64)
            where = torch.randint(h * w, (n, 1), generator=gen)
            out.scatter_(1, where, 1.0)
            return out.view(n, h, w).float()
        if style == "sparse":
            vals = torch.rand(n, h, w, generator=gen, dtype=torch.float64)
            keep = torch.rand(n, h, w, generator=gen) < 0.2
            return (vals * keep).float()
        return _content(style, gen, (n, h, w)).float()

    return build()


# ------------------------------------------------------------------ boxes and masks


def _box_draws(
    draw: Any, n: int, h: int, w: int, min_size: int, max_size: int | None
) -> torch.Tensor:
    if min_size > min(h, w):
        raise InvalidArgument(
            f"min_size={min_size} does not fit in an image of size {(h, w)} (height, width); "
            "draw larger images or lower min_size"
        )
    top = min(h, w) if max_size is None else max_size
    out = torch.empty(n, 4, dtype=torch.long)
    for i in range(n):
        bw = draw(st.integers(min_size, min(top, w)))
        bh = draw(st.integers(min_size, min(top, h)))
        x1 = draw(st.integers(0, w - bw))
        y1 = draw(st.integers(0, h - bh))
        out[i] = torch.tensor([x1, y1, x1 + bw, y1 + bh])
    return out


def boxes(
    *,
    image_size: SizeArg,
    min_size: int = 1,
    max_size: int | None = None,
    batch: IntArg = _DEFAULT_BATCH,
) -> SearchStrategy[torch.Tensor]:
    """Boxes ``(N, 4)`` long XYXY with exclusive ``x2, y2`` inside an ``(H, W)`` image.

    Each side of a box is between ``min_size`` and ``max_size`` pixels (and the image side);
    boxes shrink towards ``min_size`` at the top-left corner.

    Args:
        image_size: ``H`` for a square image, ``(H, W)``, or a strategy of either.
        min_size: smallest box side in pixels.
        max_size: largest box side (default: the image side).
        batch: number of boxes N.

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> b = find(mst.boxes(image_size=(8, 10), min_size=2, batch=3), lambda _: True)
        >>> b.shape, bool(((b[:, 2] - b[:, 0]) >= 2).all() and (b[:, 2] <= 10).all())
        (torch.Size([3, 4]), True)
        >>> mst.boxes(image_size=8, min_size=5, max_size=3)
        Traceback (most recent call last):
        ...
        hypothesis.errors.InvalidArgument: min_size=5 is larger than max_size=3
    """
    _check_size_arg(image_size)
    _check_int("min_size", min_size, least=1)
    _check_int("max_size", max_size, least=1, allow_none=True)
    _check_int("batch", batch, least=1)
    _check_order("min_size", min_size, "max_size", max_size)
    if not isinstance(image_size, SearchStrategy):
        size = (
            (image_size, image_size)
            if isinstance(image_size, int)
            else (int(image_size[0]), int(image_size[1]))
        )
        if min_size > min(size):
            raise InvalidArgument(
                f"min_size={min_size} is larger than the image size {size} (height, width)"
            )

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        n = _draw(draw, "batch", batch)
        h, w = _draw_size(draw, image_size)
        return _box_draws(draw, n, h, w, min_size, max_size)

    return build()


def masks(
    *,
    batch: IntArg = _DEFAULT_BATCH,
    height: IntArg | None = None,
    width: IntArg | None = None,
    allow_empty: bool = False,
) -> SearchStrategy[torch.Tensor]:
    """Boolean masks ``(N, H, W)``: blobs from thresholded smooth noise.

    Each mask covers a drawn fraction of the image (at least one pixel, unless
    ``allow_empty`` lets a sample be all False).

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> m = find(mst.masks(batch=2, height=6, width=6), lambda _: True)
        >>> m.dtype, bool(m.flatten(1).any(1).all())
        (torch.bool, True)
    """
    for name, v in (("batch", batch), ("height", height), ("width", width)):
        _check_int(name, v, least=1, allow_none=True)
    h_arg = _default_side() if height is None else height
    w_arg = _default_side() if width is None else width

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        n = _draw(draw, "batch", batch)
        h = _draw(draw, "height", h_arg)
        w = _draw(draw, "width", w_arg)
        gen = torch.Generator().manual_seed(draw(seeds()))
        field = _smooth(gen, (n,), h, w).flatten(1)
        out = torch.zeros(n, h * w, dtype=torch.bool)
        for i in range(n):
            if allow_empty and draw(st.booleans()):
                continue
            keep = draw(st.integers(1, h * w))  # shrinks towards a single pixel
            out[i, field[i].topk(keep).indices] = True
        return out.view(n, h, w)

    return build()


# ------------------------------------------------------------------ scenes with ground truth


class Scene(NamedTuple):
    """Images with one object each and its exact ground truth.

    Attributes:
        images: ``(N, C, H, W)`` float in [0, 1].
        boxes: ``(N, 4)`` long XYXY, exclusive ``x2, y2``, tight around the object.
        masks: ``(N, H, W)`` bool, the object's pixels.
    """

    images: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor


class Batch(NamedTuple):
    """A labelled batch: a :class:`Scene` plus one target class per image."""

    images: torch.Tensor
    targets: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor


def _object_mask(shape: ShapeName, box: list[int], h: int, w: int) -> torch.Tensor:
    from skimage import draw as skdraw

    x1, y1, x2, y2 = box
    mask = torch.zeros(h, w, dtype=torch.bool)
    if shape == "ellipse":
        rr, cc = skdraw.ellipse(
            (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, (y2 - y1) / 2, (x2 - x1) / 2, shape=(h, w)
        )
    elif shape == "triangle":
        rr, cc = skdraw.polygon([y2 - 1, y2 - 1, y1], [x1, x2 - 1, (x1 + x2 - 1) / 2], shape=(h, w))
    else:
        rr, cc = skdraw.rectangle((y1, x1), end=(y2 - 1, x2 - 1), shape=(h, w))
    mask[torch.as_tensor(rr, dtype=torch.long), torch.as_tensor(cc, dtype=torch.long)] = True
    inside = torch.zeros_like(mask)
    inside[y1:y2, x1:x2] = True
    mask &= inside
    if not mask.any():  # a shape too small to rasterise: fill its box
        mask = inside
    return mask


def _scene(
    draw: Any,
    n: int,
    c: int,
    h: int,
    w: int,
    min_size: int,
    max_size: int | None,
    shape: Any,
) -> Scene:
    placed = _box_draws(draw, n, h, w, min_size, max_size)
    gen = torch.Generator().manual_seed(draw(seeds()))
    imgs = 0.3 * _smooth(gen, (n, c), h, w)
    obj_masks = torch.zeros(n, h, w, dtype=torch.bool)
    tight = torch.empty(n, 4, dtype=torch.long)
    for i in range(n):
        kind = draw(shape) if isinstance(shape, SearchStrategy) else shape
        if kind not in SHAPES:
            raise InvalidArgument(f"shape={kind!r} must be one of {SHAPES}")
        m = _object_mask(kind, placed[i].tolist(), h, w)
        colour = 0.7 + 0.3 * torch.rand(c, generator=gen)
        imgs[i][:, m] = colour[:, None]
        rows, cols = m.any(dim=1).nonzero()[:, 0], m.any(dim=0).nonzero()[:, 0]
        tight[i] = torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        obj_masks[i] = m
    return Scene(images=imgs.float(), boxes=tight, masks=obj_masks)


def _check_scene_args(
    batch: Any, channels: Any, height: Any, width: Any, min_size: Any, max_size: Any, shape: Any
) -> None:
    for name, v in (("batch", batch), ("channels", channels), ("height", height), ("width", width)):
        _check_int(name, v, least=1, allow_none=True)
    _check_int("min_size", min_size, least=1)
    _check_int("max_size", max_size, least=1, allow_none=True)
    _check_order("min_size", min_size, "max_size", max_size)
    for name, side in (("height", height), ("width", width)):
        if _is_int(side) and _is_int(min_size) and min_size > side:
            raise InvalidArgument(f"min_size={min_size} is larger than {name}={side}")
    if shape is not None and not isinstance(shape, SearchStrategy) and shape not in SHAPES:
        raise InvalidArgument(f"shape={shape!r} must be one of {SHAPES} or a strategy of them")


def images_with_boxes(
    *,
    batch: IntArg = _DEFAULT_BATCH,
    channels: IntArg = 3,
    height: IntArg | None = None,
    width: IntArg | None = None,
    min_size: int = 4,
    max_size: int | None = None,
    shape: ShapeName | SearchStrategy[ShapeName] | None = None,
) -> SearchStrategy[Scene]:
    """Images with one bright object each, drawn with ``skimage.draw``, and its ground truth.

    The background is dim smooth noise in ``[0, 0.3]``; the object (a rectangle, ellipse or
    triangle filling a drawn box) has a colour in ``[0.7, 1]`` per channel. ``boxes`` is
    the tight box of the drawn pixels, ``masks`` the pixels themselves.

    Args:
        batch: samples N.
        channels: C.
        height: H (default ``sizes(16, 32)``).
        width: W (default ``sizes(16, 32)``).
        min_size: smallest side of the box the object is drawn in.
        max_size: largest side (default: the image side).
        shape: the object's shape, or a strategy (default: any of the three).

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> scene = find(mst.images_with_boxes(batch=2, height=16, width=16), lambda _: True)
        >>> x1, y1, x2, y2 = scene.boxes[0].tolist()
        >>> bool(scene.masks[0, y1:y2, x1:x2].sum() == scene.masks[0].sum())
        True
    """
    _check_scene_args(batch, channels, height, width, min_size, max_size, shape)
    h_arg = st.integers(16, 32) if height is None else height
    w_arg = st.integers(16, 32) if width is None else width
    shape_arg = st.sampled_from(SHAPES) if shape is None else shape

    @st.composite
    def build(draw: Any) -> Scene:
        n = _draw(draw, "batch", batch)
        c = _draw(draw, "channels", channels)
        h = _draw(draw, "height", h_arg)
        w = _draw(draw, "width", w_arg)
        return _scene(draw, n, c, h, w, min_size, max_size, shape_arg)

    return build()


def batches(
    *,
    classes: IntArg = 10,
    batch: IntArg = _DEFAULT_BATCH,
    channels: IntArg = 3,
    height: IntArg | None = None,
    width: IntArg | None = None,
    min_size: int = 4,
    max_size: int | None = None,
    shape: ShapeName | SearchStrategy[ShapeName] | None = None,
) -> SearchStrategy[Batch]:
    """Labelled batches: :func:`images_with_boxes` plus a target class per image.

    Example:
        >>> from hypothesis import find
        >>> from modelaudit import strategies as mst
        >>> b = find(mst.batches(classes=4, batch=3, height=16, width=16), lambda _: True)
        >>> b.images.shape, b.targets.shape, b.boxes.shape, b.masks.shape
        (torch.Size([3, 3, 16, 16]), torch.Size([3]), torch.Size([3, 4]), torch.Size([3, 16, 16]))
    """
    _check_int("classes", classes, least=1)
    _check_scene_args(batch, channels, height, width, min_size, max_size, shape)
    h_arg = st.integers(16, 32) if height is None else height
    w_arg = st.integers(16, 32) if width is None else width
    shape_arg = st.sampled_from(SHAPES) if shape is None else shape

    @st.composite
    def build(draw: Any) -> Batch:
        n = _draw(draw, "batch", batch)
        c = _draw(draw, "channels", channels)
        h = _draw(draw, "height", h_arg)
        w = _draw(draw, "width", w_arg)
        k = _draw(draw, "classes", classes)
        scene = _scene(draw, n, c, h, w, min_size, max_size, shape_arg)
        labels = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
        return Batch(images=scene.images, targets=labels, boxes=scene.boxes, masks=scene.masks)

    return build()
