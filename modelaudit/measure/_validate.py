"""Input checks shared by every metric: heat maps, images, boxes and masks.

Conventions (the same in every metric, assertion and strategy of modelaudit):

- **maps**: ``(N, H, W)`` floating tensors, finite. Mass-based metrics clamp negative values
  to 0 (pass maps after the explainer's ReLU; a map with no positive value is a *zero map*).
- **boxes**: XYXY pixel coordinates ``(x1, y1, x2, y2)`` as in torchvision, with ``x2`` and
  ``y2`` *exclusive*: an integer box covers exactly ``map[y1:y2, x1:x2]``. In general pixel
  ``(row i, col j)`` is inside when its centre lies in the half-open box,
  ``x1 <= j + 0.5 < x2`` and ``y1 <= i + 0.5 < y2`` (identical for integer boxes, and
  well defined for fractional ones). Give an ``(N, 4)`` tensor, an ``(N, K, 4)`` tensor, or a
  sequence of N items, each one box ``(4,)`` or several boxes ``(K, 4)`` whose union is the
  region of that sample.
- **masks**: boolean ``(N, H, W)`` tensors. An all-False mask is allowed and scores as a
  miss (0.0) in every metric.

Bad input raises :class:`~modelaudit.errors.InvalidInputError` naming the sample, the value
and the fix.

Example:
    >>> import torch
    >>> from modelaudit.measure._validate import as_region
    >>> region = as_region(torch.tensor([[1, 0, 3, 2]]), (3, 4))
    >>> region.masks[0].int()
    tensor([[0, 1, 1, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0]], dtype=torch.int32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import torch

from modelaudit._format import format_number
from modelaudit.errors import InvalidInputError

__all__ = [
    "Region",
    "RegionLike",
    "as_region",
    "check_images",
    "check_maps",
    "check_same_size",
]

RegionLike: TypeAlias = torch.Tensor | Sequence[Any]


class Region:
    """A validated ground-truth region per sample.

    Attributes:
        kind: ``"box"`` or ``"mask"``.
        size: ``(H, W)``.
        boxes: ``(N, 4)`` float XYXY when every sample has exactly one box, else None.
        rows: ``(N, H)`` bool rows covered by the single box of each sample (else None).
        cols: ``(N, W)`` bool columns covered by it (else None).
        masks: ``(N, H, W)`` bool, the pixels inside the region (built on first use for
            single boxes, which metrics can often use through ``rows`` and ``cols``).
    """

    def __init__(
        self,
        *,
        kind: str,
        size: tuple[int, int],
        masks: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        cols: torch.Tensor | None = None,
    ) -> None:
        self.kind = kind
        self.size = size
        self.boxes = boxes
        self.rows = rows
        self.cols = cols
        self._masks = masks

    @property
    def masks(self) -> torch.Tensor:
        if self._masks is None:
            assert self.rows is not None and self.cols is not None
            self._masks = self.rows[:, :, None] & self.cols[:, None, :]
        return self._masks


def _first_bad(t: torch.Tensor) -> tuple[int, tuple[int, ...], float]:
    """Sample index, position inside the sample and value of the first non-finite entry."""
    where = (~torch.isfinite(t)).nonzero()[0].tolist()
    return where[0], tuple(where[1:]), float(t[tuple(where)].item())


def check_maps(maps: Any, *, name: str = "maps", when: str = "") -> torch.Tensor:
    """Return ``maps`` as a floating ``(N, H, W)`` tensor, or raise a specific error.

    ``name`` and ``when`` ("after randomising 'fc'") describe the maps in messages.

    Example:
        >>> check_maps(torch.ones(2, 3, 3)).shape
        torch.Size([2, 3, 3])
        >>> check_maps(torch.tensor([[[0.0, float("nan")]]]))
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: maps[0] has nan at (row 0, col 1): ...
    """
    label = f"{name} {when}" if when else name
    if not isinstance(maps, torch.Tensor):
        raise InvalidInputError(
            f"{label} must be a torch.Tensor of shape (N, H, W); got {type(maps).__name__}"
        )
    if maps.dim() != 3:
        hint = ""
        if maps.dim() == 2:
            hint = " For a single map use maps[None]."
        elif maps.dim() == 4 and maps.shape[1] == 1:
            hint = " Drop the channel dimension with maps.squeeze(1)."
        raise InvalidInputError(
            f"{label} must have shape (N, H, W); got {tuple(maps.shape)}.{hint}"
        )
    if min(maps.shape) == 0:
        raise InvalidInputError(f"{label} is empty: shape {tuple(maps.shape)}")
    if not maps.is_floating_point():
        if maps.dtype == torch.bool or maps.is_complex():
            raise InvalidInputError(f"{label} must hold real numbers; got dtype {maps.dtype}")
        maps = maps.float()
    maps = maps.detach()
    # a finite sum proves every value finite (NaN and inf propagate); only then skip the scan
    if not bool(torch.isfinite(maps.sum())) and not bool(torch.isfinite(maps).all()):
        n, (i, j), value = _first_bad(maps)
        raise InvalidInputError(
            f"{name}[{n}]{' ' + when if when else ''} has {format_number(value)} at (row {i}, col {j}): "
            "heat maps must be finite. "
            "A NaN usually comes from normalising an all-zero map (0/0); fix the explainer or "
            "replace it with torch.nan_to_num(maps, nan=0.0)."
        )
    return maps


def check_images(images: Any, *, name: str = "images", n: int | None = None) -> torch.Tensor:
    """Return ``images`` as a finite floating ``(N, C, H, W)`` tensor, or raise.

    Example:
        >>> check_images(torch.zeros(2, 3, 4, 4), n=2).shape
        torch.Size([2, 3, 4, 4])
    """
    if not isinstance(images, torch.Tensor):
        raise InvalidInputError(
            f"{name} must be a torch.Tensor of shape (N, C, H, W); got {type(images).__name__}"
        )
    if images.dim() != 4:
        hint = " For a single image use images[None]." if images.dim() == 3 else ""
        raise InvalidInputError(
            f"{name} must have shape (N, C, H, W); got {tuple(images.shape)}.{hint}"
        )
    if min(images.shape) == 0:
        raise InvalidInputError(f"{name} is empty: shape {tuple(images.shape)}")
    if n is not None and images.shape[0] != n:
        raise InvalidInputError(
            f"{name} has {images.shape[0]} samples but the maps have {n}; pass one map per image."
        )
    if not images.is_floating_point():
        images = images.float()
    if not torch.isfinite(images).all():
        s, pos, value = _first_bad(images)
        raise InvalidInputError(
            f"{name}[{s}] has {format_number(value)} at (channel {pos[0]}, row {pos[1]}, col {pos[2]}): "
            "images must be finite."
        )
    return images


def check_same_size(maps: torch.Tensor, images: torch.Tensor) -> None:
    """Raise unless ``maps`` (N, H, W) match ``images`` (N, C, H, W) in N, H and W."""
    if maps.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"maps has {maps.shape[0]} samples but images has {images.shape[0]}; "
            "pass one map per image."
        )
    if maps.shape[-2:] != images.shape[-2:]:
        h, w = images.shape[-2:]
        raise InvalidInputError(
            f"maps are {tuple(maps.shape[-2:])} but images are {(h, w)}; upsample the maps "
            f"first, e.g. torch.nn.functional.interpolate(maps[:, None], size=({h}, {w}), "
            "mode='bilinear', align_corners=False)[:, 0]."
        )


def _box_rows(boxes: Any, n: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K, 4)`` float64 boxes (padding rows are -1) and the count of boxes per sample."""
    if isinstance(boxes, torch.Tensor):
        t = boxes.detach().to("cpu", torch.float64)
        if t.dim() == 3 and tuple(t.shape[1:]) == size and bool(((t == 0) | (t == 1)).all()):
            raise InvalidInputError(
                f"boxes have shape {tuple(t.shape)}, which looks like a {boxes.dtype} mask; masks "
                "must be bool: pass masks.bool() (or masks > 0.5)."
            )
        if t.dim() == 2 and t.shape[-1] == 4:
            padded = t[:, None]
        elif t.dim() == 3 and t.shape[-1] == 4 and t.shape[1] > 0:
            padded = t
        elif t.dim() == 1 and t.shape[0] == 4 and n == 1:
            padded = t[None, None]
        elif t.dim() == 3:
            raise InvalidInputError(
                f"boxes have shape {tuple(t.shape)}, which looks like a mask of the wrong dtype; "
                "masks must be bool: pass masks.bool() (or masks > 0.5)."
            )
        else:
            raise InvalidInputError(
                f"boxes must have shape (N, 4) or (N, K, 4) in XYXY order; got {tuple(t.shape)}"
            )
        counts = torch.full((padded.shape[0],), padded.shape[1])
    elif isinstance(boxes, Sequence) and not isinstance(boxes, str):
        per = []
        for i, item in enumerate(boxes):
            try:
                b = torch.as_tensor(item, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise InvalidInputError(
                    f"boxes[{i}] = {item!r} is not a box (x1, y1, x2, y2) or a list of boxes"
                ) from exc
            if b.dim() == 1 and b.shape[0] == 4:
                b = b[None]
            if b.dim() != 2 or b.shape[-1] != 4 or b.shape[0] == 0:
                raise InvalidInputError(
                    f"boxes[{i}] has shape {tuple(b.shape)}; give one box (x1, y1, x2, y2) or "
                    "a non-empty list of boxes for each sample."
                )
            per.append(b)
        k = max((b.shape[0] for b in per), default=1)
        padded = torch.full((len(per), k, 4), -1.0, dtype=torch.float64)
        for i, b in enumerate(per):
            padded[i, : b.shape[0]] = b
        counts = torch.tensor([b.shape[0] for b in per], dtype=torch.long)
    else:
        raise InvalidInputError(
            f"boxes must be an (N, 4) tensor or a sequence of per-sample boxes; got "
            f"{type(boxes).__name__}"
        )
    if padded.shape[0] != n:
        raise InvalidInputError(f"got boxes for {padded.shape[0]} samples but the maps have {n}")
    return padded, counts


def _check_box(i: int, b: torch.Tensor, h: int, w: int) -> None:
    x1, y1, x2, y2 = (float(v) for v in b.tolist())
    shown = "(" + ", ".join(format_number(v) for v in (x1, y1, x2, y2)) + ")"
    where = f"boxes[{i}] = {shown}"
    if not bool(torch.isfinite(b).all()):
        raise InvalidInputError(f"{where} is not finite")
    for lo, hi, a, c in ((x1, x2, "x1", "x2"), (y1, y2, "y1", "y2")):
        if hi < lo:
            raise InvalidInputError(
                f"{where} is inverted: {c}={format_number(hi)} < {a}={format_number(lo)}. Boxes are XYXY "
                "(x1, y1, x2, y2) with x2 > x1 and y2 > y1; convert XYWH or CXCYWH boxes "
                "with torchvision.ops.box_convert(boxes, 'xywh', 'xyxy')."
            )
        if hi == lo:
            raise InvalidInputError(
                f"{where} is empty: {c} == {a} = {format_number(lo)} (x2 and y2 are exclusive, so a "
                "box covers map[y1:y2, x1:x2]). Drop the sample or give a box of at least "
                "one pixel."
            )
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        bad = next(
            txt
            for cond, txt in (
                (x1 < 0, f"x1={format_number(x1)} < 0"),
                (y1 < 0, f"y1={format_number(y1)} < 0"),
                (x2 > w, f"x2={format_number(x2)} > width {w}"),
                (y2 > h, f"y2={format_number(y2)} > height {h}"),
            )
            if cond
        )
        raise InvalidInputError(
            f"{where} lies outside the {h}x{w} (HxW) image: {bad}. Boxes are in pixels of the "
            f"map; clip them with torchvision.ops.clip_boxes_to_image(boxes, ({h}, {w})) or "
            "rescale them if they refer to a larger image."
        )


def _boxes_to_masks(padded: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Union of each sample's boxes ``(N, K, 4)`` as an (N, H, W) bool mask (pixel centres)."""
    cx = torch.arange(w, dtype=torch.float64) + 0.5
    cy = torch.arange(h, dtype=torch.float64) + 0.5
    inx = (padded[..., 0, None] <= cx) & (cx < padded[..., 2, None])  # (N, K, W)
    iny = (padded[..., 1, None] <= cy) & (cy < padded[..., 3, None])  # (N, K, H)
    return (iny[..., :, None] & inx[..., None, :]).any(dim=1)


def as_region(region: RegionLike, size: tuple[int, int], n: int | None = None) -> Region:
    """Validate boxes or a bool mask against an ``(H, W)`` image of ``n`` samples.

    A bool tensor is a mask; anything else is boxes.

    Raises:
        InvalidInputError: an inverted, empty, non-finite or out-of-image box, a mask of the
            wrong shape, or a sample count that does not match.

    Example:
        >>> as_region(torch.tensor([[0, 0, 5, 2]]), (4, 4))
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: boxes[0] = (0, 0, 5, 2) lies outside the 4x4 (HxW) image: x2=5 > width 4. ...
    """
    h, w = int(size[0]), int(size[1])
    if isinstance(region, torch.Tensor) and region.dtype == torch.bool:
        masks = region.detach()
        if masks.dim() == 2 and n in (None, 1):
            masks = masks[None]
        if masks.dim() != 3 or tuple(masks.shape[-2:]) != (h, w):
            raise InvalidInputError(
                f"masks must be bool (N, H, W) matching the maps' size {(h, w)}; got shape "
                f"{tuple(region.shape)}"
            )
        if n is not None and masks.shape[0] != n:
            raise InvalidInputError(f"got masks for {masks.shape[0]} samples but the maps have {n}")
        return Region(kind="mask", size=(h, w), masks=masks)
    if n is None:
        if isinstance(region, torch.Tensor) and region.dim() >= 2:
            n = region.shape[0]
        elif isinstance(region, torch.Tensor):
            n = 1
        else:
            n = len(region)
    padded, counts = _box_rows(region, n, (h, w))
    real = torch.arange(padded.shape[1]) < counts[:, None]  # (N, K): not padding
    x1, y1, x2, y2 = padded.unbind(-1)
    bad = ~torch.isfinite(padded).all(dim=-1) | (x2 <= x1) | (y2 <= y1)
    bad |= (x1 < 0) | (y1 < 0) | (x2 > w) | (y2 > h)
    bad &= real
    if bad.any():  # say exactly what is wrong with the first bad box
        i, k = (int(v) for v in bad.nonzero()[0])
        _check_box(i, padded[i, k], h, w)
    if padded.shape[1] == 1:  # one box per sample: rows and columns describe it
        cx = torch.arange(w, dtype=torch.float64) + 0.5
        cy = torch.arange(h, dtype=torch.float64) + 0.5
        rows = (padded[:, 0, 1, None] <= cy) & (cy < padded[:, 0, 3, None])
        cols = (padded[:, 0, 0, None] <= cx) & (cx < padded[:, 0, 2, None])
        out = Region(kind="box", size=(h, w), boxes=padded[:, 0].float(), rows=rows, cols=cols)
        empty = ~rows.any(dim=1) | ~cols.any(dim=1)
    else:
        masks = _boxes_to_masks(padded, h, w)
        out = Region(kind="box", size=(h, w), masks=masks)
        empty = ~masks.flatten(1).any(dim=1)
    if empty.any():
        i = int(empty.nonzero()[0, 0])
        shown = ", ".join(
            "(" + ", ".join(format_number(v) for v in b.tolist()) + ")"
            for b in padded[i, : counts[i]]
        )
        raise InvalidInputError(
            f"boxes[{i}] = {shown} contains no pixel centre (pixel (i, j) is inside when "
            "x1 <= j + 0.5 < x2 and y1 <= i + 0.5 < y2); give a box of at least one pixel."
        )
    return out
