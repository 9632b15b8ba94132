"""Heat-map overlays: colour a map with a perceptual colormap, blend it, outline the truth.

``overlay`` is the one renderer used everywhere (the HTML report and the overlay PNGs it
writes for failing samples, the CLI): what a reviewer sees in CI is exactly what a user
gets from ``ma.overlay`` in a notebook.

Conventions:
    - images are (C, H, W) (C = 1 or 3) or (H, W) tensors/arrays with values in [0, 1]
      (uint8 arrays in 0..255 are accepted too);
    - heat maps are (H, W) in [0, 1]; a map of another size is resized bilinearly to the
      image (scikit-image ``resize``, ``order=1``);
    - the blend is ``(1 - alpha) * image + alpha * colormap(heatmap)`` per pixel;
    - boxes are XYXY pixel boxes with exclusive ``x2``/``y2`` (torchvision's convention);
      the outline is drawn on the box's own border pixels, so it is visible even when the
      box touches the image edge; its width is ``max(1, round(min(H, W) / 100))`` pixels;
    - a mask is outlined along its inner boundary.

Example:
    >>> import numpy as np
    >>> from modelaudit.report.overlay import overlay
    >>> img = np.zeros((3, 8, 8))
    >>> heat = np.zeros((8, 8)); heat[2:4, 2:4] = 1.0
    >>> out = overlay(img, heat, box=(2, 2, 4, 4), alpha=0.5)
    >>> out.shape, out.dtype.name
    ((8, 8, 3), 'uint8')
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelaudit._atomic import atomic_write_bytes
from modelaudit.errors import InvalidInputError
from modelaudit.report.colormap import colorize, colormap_lut
from modelaudit.report.picking import sample_order

if TYPE_CHECKING:
    from modelaudit.checks.record import AuditRecord, Overview

__all__ = [
    "OUTLINE_COLORS",
    "PEAK_COLORS",
    "image_to_rgb",
    "overlay",
    "overview_picture",
    "png_bytes",
    "save_png",
    "write_overlays",
]

OUTLINE_COLORS: dict[str, dict[str, tuple[int, int, int]]] = {
    "inferno": {"box": (0, 229, 255), "mask": (57, 255, 20), "forbidden": (255, 0, 200)},
    "viridis": {"box": (255, 0, 200), "mask": (255, 80, 80), "forbidden": (0, 229, 255)},
}
"""Outline colours per colormap, chosen not to occur in it: an object's box / mask in
cyan / green on inferno (magenta / red on viridis); a forbidden region (mass must stay off
it, e.g. a watermark) in magenta on inferno (cyan on viridis)."""

PEAK_COLORS = ((255, 255, 255), (0, 0, 0))
"""The hottest-pixel marker: a white plus with a black rim, visible on every colour."""

_RANGE_SLACK = 1e-6


def _to_numpy(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise InvalidInputError(
            f"{what} must be a tensor or array, got {type(x).__name__}"
        ) from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return arr


def _unit_range(arr: np.ndarray, what: str, hint: str) -> np.ndarray:
    """Return ``arr`` as float64 in [0, 1]; uint8 is scaled by 1/255, bool becomes 0/1."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise InvalidInputError(f"{what} has {bad} NaN or infinite values; {hint}")
    if out.size and (out.min() < -_RANGE_SLACK or out.max() > 1 + _RANGE_SLACK):
        raise InvalidInputError(
            f"{what} values must lie in [0, 1], got min {out.min():.4g} and max "
            f"{out.max():.4g}; {hint}"
        )
    return np.clip(out, 0.0, 1.0)


def image_to_rgb(image: Any) -> np.ndarray:
    """Convert an image to an (H, W, 3) float64 array in [0, 1].

    Args:
        image: (C, H, W) with C in {1, 3}, (1, C, H, W), (H, W), or channels-last
            (H, W, 3) / (H, W, 1); float values in [0, 1] or uint8 in 0..255.

    Raises:
        InvalidInputError: for other shapes, NaN, or values outside [0, 1] (for example a
            normalised image: undo the mean/std normalisation first).

    Example:
        >>> import numpy as np
        >>> image_to_rgb(np.full((1, 2, 2), 0.5))[0, 0].tolist()
        [0.5, 0.5, 0.5]
    """
    arr = _to_numpy(image, "image")
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        hwc = np.moveaxis(arr, 0, -1)
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3):
        hwc = arr
    else:
        raise InvalidInputError(
            f"image must be (C, H, W) with C = 1 or 3, or (H, W); got shape {tuple(arr.shape)}"
        )
    if hwc.shape[0] == 0 or hwc.shape[1] == 0:
        raise InvalidInputError(f"image is empty (shape {tuple(arr.shape)})")
    rgb = _unit_range(hwc, "image", "pass pixel values in [0, 1] (undo any normalisation)")
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return rgb


def _heatmap(heatmap: Any, size: tuple[int, int]) -> np.ndarray:
    arr = _to_numpy(heatmap, "heatmap")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or 0 in arr.shape:
        raise InvalidInputError(f"heatmap must be (H, W), got shape {tuple(arr.shape)}")
    heat = _unit_range(
        arr, "heatmap", "normalise the map to [0, 1] first (explain methods do by default)"
    )
    if heat.shape != size:
        from skimage.transform import resize

        heat = resize(heat, size, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
        heat = np.clip(heat, 0.0, 1.0)
    return heat


def _box(box: Any, height: int, width: int) -> tuple[int, int, int, int]:
    arr = _to_numpy(box, "box").astype(np.float64).reshape(-1)
    if arr.size != 4 or not np.isfinite(arr).all():
        raise InvalidInputError(
            f"box must be 4 finite numbers (x1, y1, x2, y2), got {arr.tolist()}"
        )
    rounded = np.rint(arr)
    if np.abs(arr - rounded).max() > 1e-6:
        raise InvalidInputError(f"box coordinates must be whole pixels, got {arr.tolist()}")
    x1, y1, x2, y2 = (int(v) for v in rounded)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InvalidInputError(
            f"box (x1={x1}, y1={y1}, x2={x2}, y2={y2}) must satisfy 0 <= x1 < x2 <= {width} "
            f"and 0 <= y1 < y2 <= {height} (XYXY, x2/y2 exclusive, inside the "
            f"{width}x{height} image)"
        )
    return x1, y1, x2, y2


def _outline_width(height: int, width: int) -> int:
    return max(1, round(min(height, width) / 100))


def _draw_box(rgb: np.ndarray, box: tuple[int, int, int, int], color: Sequence[int]) -> None:
    x1, y1, x2, y2 = box
    t = _outline_width(*rgb.shape[:2])
    c = np.asarray(color, dtype=rgb.dtype)
    rgb[y1 : min(y1 + t, y2), x1:x2] = c
    rgb[max(y2 - t, y1) : y2, x1:x2] = c
    rgb[y1:y2, x1 : min(x1 + t, x2)] = c
    rgb[y1:y2, max(x2 - t, x1) : x2] = c


def _draw_mask(rgb: np.ndarray, mask: Any, color: Sequence[int]) -> None:
    arr = _to_numpy(mask, "mask")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != rgb.shape[:2]:
        raise InvalidInputError(
            f"mask must be (H, W) = {rgb.shape[:2]} like the image, got {tuple(arr.shape)}"
        )
    from skimage.segmentation import find_boundaries

    edge = find_boundaries(arr.astype(bool), mode="inner")
    rgb[edge] = np.asarray(color, dtype=rgb.dtype)


def overlay(
    image: Any,
    heatmap: Any,
    *,
    box: Any = None,
    mask: Any = None,
    alpha: float = 0.5,
    colormap: str = "inferno",
    region: str = "object",
    peak: bool = False,
) -> np.ndarray:
    """Blend a colour-mapped heat map over an image and outline the ground truth.

    Args:
        image: (C, H, W) or (H, W) tensor/array in [0, 1] (grey-scale is fine), or None
            to show the colour-mapped heat map alone.
        heatmap: (H, W) in [0, 1]; resized bilinearly when its size differs from the image.
        box: optional XYXY box ``(x1, y1, x2, y2)`` in whole pixels, x2/y2 exclusive.
        mask: optional (H, W) boolean mask; its inner boundary is drawn.
        alpha: weight of the heat map in the blend, in [0, 1].
        colormap: ``"inferno"`` (default) or ``"viridis"``.
        region: what ``box`` / ``mask`` outline: ``"object"`` (box and mask colours of
            :data:`OUTLINE_COLORS`) or ``"forbidden region"`` (its ``forbidden`` colour).
        peak: mark the map's hottest pixel (the first maximum in row-major order, the
            pointing game's point) with a plus (:data:`PEAK_COLORS`).

    Returns:
        uint8 array (H, W, 3): ``round(255 * ((1 - alpha) * image + alpha * cmap(heat)))``
        with the outlines (and the marker) painted on top.

    Raises:
        InvalidInputError: wrong shapes, NaN or out-of-range values, a box outside the
            image or inverted, an alpha outside [0, 1], an unknown colormap.

    Example:
        >>> import numpy as np
        >>> out = overlay(np.ones((1, 4, 4)), np.zeros((4, 4)), alpha=0.0, box=(0, 0, 2, 2))
        >>> out[3, 3].tolist(), out[0, 0].tolist()
        ([255, 255, 255], [0, 229, 255])
    """
    if not (isinstance(alpha, int | float) and 0.0 <= float(alpha) <= 1.0):
        raise InvalidInputError(f"alpha must be a number in [0, 1], got {alpha!r}")
    colormap_lut(colormap)  # validate the name before any work
    if image is None:
        heat_only = _to_numpy(heatmap, "heatmap")
        while heat_only.ndim > 2 and heat_only.shape[0] == 1:
            heat_only = heat_only[0]
        if heat_only.ndim != 2:
            raise InvalidInputError(f"heatmap must be (H, W), got shape {tuple(heat_only.shape)}")
        size = (int(heat_only.shape[0]), int(heat_only.shape[1]))
        base = np.zeros((*size, 3))
        weight = 1.0
    else:
        base = image_to_rgb(image)
        size = (int(base.shape[0]), int(base.shape[1]))
        weight = float(alpha)
    heat = _heatmap(heatmap, size)
    colours = colorize(heat, colormap).astype(np.float64) / 255.0
    blended = (1.0 - weight) * base + weight * colours
    out = np.rint(np.clip(blended, 0.0, 1.0) * 255.0).astype(np.uint8)
    palette = OUTLINE_COLORS[colormap]
    if region not in ("object", "forbidden region"):
        raise InvalidInputError(f"region must be 'object' or 'forbidden region', got {region!r}")
    forbidden = region == "forbidden region"
    if mask is not None:
        _draw_mask(out, mask, palette["forbidden" if forbidden else "mask"])
    if box is not None:
        _draw_box(out, _box(box, *size), palette["forbidden" if forbidden else "box"])
    if peak:
        _draw_peak(out, heat)
    return out


def _draw_peak(rgb: np.ndarray, heat: np.ndarray) -> None:
    """A plus at ``heat``'s first maximum: white arms, black rim, clipped at the edges.

    Example:
        >>> rgb = np.zeros((9, 9, 3), dtype=np.uint8)
        >>> heat = np.zeros((9, 9)); heat[4, 4] = 1.0
        >>> _draw_peak(rgb, heat)
        >>> rgb[4, 4].tolist(), rgb[4, 2].tolist(), rgb[3, 3].tolist()
        ([255, 255, 255], [255, 255, 255], [0, 0, 0])
    """
    h, w = heat.shape
    y, x = divmod(int(np.argmax(heat)), w)
    arm = max(2, round(min(h, w) / 24))
    inner, rim = (np.asarray(c, dtype=rgb.dtype) for c in PEAK_COLORS)
    ys, xs = slice(max(0, y - arm), y + arm + 1), slice(max(0, x - arm), x + arm + 1)
    rgb[max(0, y - 1) : y + 2, xs] = rim
    rgb[ys, max(0, x - 1) : x + 2] = rim
    rgb[y, xs] = inner
    rgb[ys, x] = inner


def _as_uint8_image(array: Any) -> np.ndarray:
    arr = _to_numpy(array, "image")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first tensor
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InvalidInputError(
            f"a PNG needs (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {tuple(arr.shape)}"
        )
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    unit = _unit_range(arr, "image", "pass uint8 pixels or floats in [0, 1]")
    return np.rint(unit * 255.0).astype(np.uint8)


def png_bytes(array: Any) -> bytes:
    """Encode an image as PNG bytes.

    Args:
        array: uint8 (H, W), (H, W, 3) or (H, W, 4), floats in [0, 1], or a (C, H, W)
            tensor.

    Example:
        >>> import numpy as np
        >>> png_bytes(np.zeros((2, 2, 3), dtype=np.uint8))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, _as_uint8_image(array), extension=".png")
    return buffer.getvalue()


def save_png(array: Any, path: str | os.PathLike[str]) -> Path:
    """Write an image to ``path`` as PNG, atomically (temporary file + rename).

    Parent directories are created. Accepts what :func:`png_bytes` accepts.

    Returns:
        The path written.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> out = save_png(np.zeros((4, 4, 3), dtype=np.uint8),
        ...                pathlib.Path(tempfile.mkdtemp()) / "a" / "o.png")
        >>> out.name, out.read_bytes()[1:4]
        ('o.png', b'PNG')
    """
    return atomic_write_bytes(path, png_bytes(array))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "check"


def _row(tensor: Any, index: int) -> Any:
    return None if tensor is None else tensor[index]


def write_overlays(
    record: AuditRecord,
    directory: str | os.PathLike[str],
    *,
    samples: Iterable[int] | None = None,
    alpha: float = 0.5,
    colormap: str = "inferno",
) -> list[str]:
    """Write one overlay PNG per sample of ``record`` into ``directory`` (for notebooks, CLIs).

    Which samples: the given ``samples`` indices; otherwise the record's failing samples,
    worst first; when no sample is marked failing (a passed check, or a failed aggregate
    such as a mean), every sample, so the directory always shows what the check looked at.
    Files are named ``<check>-<index>.png``; when a file of that name already exists (the
    same check ran twice into one directory) the stem becomes ``<check>_2``, ``<check>_3``...
    A record without ``samples.maps`` has nothing to draw: the result is ``[]``. (The pytest
    plugin's report writes the failing samples' overlays itself, from the pictures it drew.)

    Args:
        record: an audit record whose ``samples`` holds maps and optionally images, boxes
            and masks (first dimension N).
        directory: where to write (created if needed).
        samples: explicit sample indices to draw.
        alpha: heat-map weight of the blend.
        colormap: ``"inferno"`` or ``"viridis"``.

    Returns:
        The paths written, as strings, in drawing order.

    Example:
        >>> import tempfile, torch
        >>> from modelaudit.checks.record import AuditRecord, SampleViews
        >>> rec = AuditRecord("mass_in_box", "assert_mass_in_box", False, (0.9, 0.1),
        ...                   failing=(1,), direction="higher", samples=SampleViews(
        ...                       images=torch.rand(2, 3, 8, 8), maps=torch.rand(2, 8, 8),
        ...                       boxes=torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8]])))
        >>> [p.rsplit("/", 1)[1] for p in write_overlays(rec, tempfile.mkdtemp())]
        ['mass_in_box-1.png']
    """
    views = record.samples
    if views is None or views.maps is None:
        return []
    count = len(views.maps)
    bad = {int(i) for i in record.failing}
    if samples is not None:
        indices = [int(i) for i in samples]
    elif bad - set(range(count)):
        indices = sorted(bad)  # the range check below names the bad index
    else:
        indices = [i for i in sample_order(record, count) if i in bad or not bad]
    for i in indices:
        if not 0 <= i < count:
            raise InvalidInputError(f"sample index {i} is out of range for {count} samples")
    out_dir = Path(directory)
    base = _slug(record.check)
    stem, n = base, 1
    while any((out_dir / f"{stem}-{i}.png").exists() for i in indices):
        n += 1
        stem = f"{base}_{n}"
    paths = []
    for i in indices:
        picture = overlay(
            _row(views.images, i),
            views.maps[i],
            box=_row(views.boxes, i),
            mask=_row(views.masks, i),
            alpha=alpha,
            colormap=colormap,
        )
        paths.append(str(save_png(picture, out_dir / f"{stem}-{i}.png")))
    return paths


OVERVIEW_MIN_SIDE = 128
"""Each panel of :func:`overview_picture` is enlarged (nearest pixel) to at least this."""


def _peak_scaled(heat: Any) -> np.ndarray:
    arr = np.clip(_to_numpy(heat, "heatmap").astype(np.float64), 0.0, None)
    top = float(arr.max()) if arr.size else 0.0
    return arr / top if top > 0 else arr


def overview_picture(
    overview: Overview, *, alpha: float = 0.5, colormap: str = "inferno"
) -> np.ndarray:
    """Three panels side by side: where the maps look on average, and where that is.

    1. the mean heat map (scaled to its peak) over the mean image, or alone without
       images, with the outline of the pixels inside at least half the objects (mask
       colour);
    2. the mean object: the fraction of objects covering each pixel, black to white;
    3. the mean off-object mass (scaled to its peak) over the mean image, with the region
       the caption names outlined (box colour).

    Panels are enlarged to :data:`OVERVIEW_MIN_SIDE` pixels and parted by white gaps.

    Example:
        >>> import torch
        >>> from modelaudit.checks.record import Overview
        >>> ov = Overview(torch.rand(8, 8), torch.zeros(8, 8), torch.rand(8, 8))
        >>> overview_picture(ov).shape
        (128, 392, 3)
    """
    region = _to_numpy(overview.mean_region, "mean_region").astype(np.float64)
    outline = region >= 0.5
    image = overview.image
    palette = OUTLINE_COLORS[colormap]
    heat = overlay(
        image, _peak_scaled(overview.mean_map), mask=outline, alpha=alpha, colormap=colormap
    )
    truth = np.rint(np.repeat(np.clip(region, 0.0, 1.0)[..., None], 3, axis=-1) * 255).astype(
        np.uint8
    )
    _draw_mask(truth, outline, palette["mask"])
    off = overlay(image, _peak_scaled(overview.off_map), alpha=alpha, colormap=colormap)
    if overview.region_mask is not None:
        _draw_mask(off, overview.region_mask, palette["box"])
    k = max(1, -(-OVERVIEW_MIN_SIDE // max(1, min(heat.shape[:2]))))
    panels = [np.repeat(np.repeat(p, k, axis=0), k, axis=1) for p in (heat, truth, off)]
    gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
