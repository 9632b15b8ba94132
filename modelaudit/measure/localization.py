"""Localization metrics: does the heat map point at the ground-truth box or mask?

Every function takes ``maps`` of shape ``(N, H, W)`` and a region per sample (boxes or a bool
mask, see :mod:`modelaudit.measure._validate` for the conventions), works on the whole batch
at once and returns one value per sample, a float tensor of shape ``(N,)`` in ``[0, 1]``.

Edge cases are defined, never a silent pass:

- negative map values are clamped to 0 first; a map with no positive value (a *zero map*)
  scores 0.0 in every metric;
- an all-False mask scores 0.0 in every metric;
- every metric is invariant to scaling a map by ``c > 0``;
- :func:`chance_level` is what a uniform map scores: the fraction of the image inside the
  region (for the pointing game, inside the region grown by the tolerance).

Example:
    >>> import torch
    >>> from modelaudit.measure import mass_in_box, chance_level
    >>> maps = torch.zeros(1, 4, 4)
    >>> maps[0, 1:3, 1:3] = 1.0
    >>> mass_in_box(maps, torch.tensor([[1, 1, 3, 3]]))
    tensor([1.])
    >>> chance_level(torch.tensor([[1, 1, 3, 3]]), (4, 4))
    tensor([0.2500])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from modelaudit.errors import InvalidInputError
from modelaudit.measure._sorting import sorted_rows
from modelaudit.measure._validate import Region, RegionLike, as_region, check_maps

__all__ = [
    "chance_level",
    "iou",
    "mass_in_box",
    "mass_in_mask",
    "pointing_game",
    "rank_accuracy",
]


def _prepare(
    maps: torch.Tensor, region: RegionLike, kind: str | None = None
) -> tuple[torch.Tensor, Region]:
    """Validated non-negative flat maps (N, HW) and the region."""
    m = check_maps(maps)
    reg = as_region(region, (m.shape[1], m.shape[2]), m.shape[0])
    if kind == "box" and reg.kind != "box":
        raise InvalidInputError(
            "mass_in_box got a bool mask; use mass_in_mask(maps, masks) for masks"
        )
    if kind == "mask" and reg.kind != "mask":
        raise InvalidInputError(
            "mass_in_mask needs a bool (N, H, W) mask; use mass_in_box(maps, boxes) for boxes"
        )
    flat = m.flatten(1)
    if bool(flat.amin() < 0):  # most maps are already non-negative: skip the copy
        flat = flat.clamp(min=0)
    return flat, reg


def _count(mask: torch.Tensor) -> torch.Tensor:
    """Number of True per row of an (N, K) bool tensor, as float32 (a fast reduction)."""
    return mask.view(torch.uint8).sum(dim=1, dtype=torch.int32).float()


def _inside(reg: Region, like: torch.Tensor) -> torch.Tensor:
    """Region masks as (N, HW) bool on ``like``'s device."""
    return reg.masks.to(like.device).flatten(1)


def _in_box_sum(values: torch.Tensor, reg: Region) -> torch.Tensor:
    """Sum of (N, HW) ``values`` over each sample's region, (N,)."""
    if reg.rows is not None and reg.cols is not None:  # rows^T V cols: one pass, no mask
        rows = reg.rows.to(values.device, values.dtype)
        cols = reg.cols.to(values.device, values.dtype)
        grid = values.view(values.shape[0], *reg.size)
        return (torch.bmm(rows[:, None, :], grid)[:, 0] * cols).sum(dim=1)
    return torch.einsum("nk,nk->n", values, _inside(reg, values).to(values.dtype))


def _mass(flat: torch.Tensor, reg: Region) -> torch.Tensor:
    total = flat.sum(dim=1)
    mass = _in_box_sum(flat, reg)
    return torch.where(total > 0, mass / total.clamp(min=torch.finfo(flat.dtype).tiny), 0.0)


def mass_in_box(maps: torch.Tensor, boxes: RegionLike) -> torch.Tensor:
    """Relevance mass accuracy: the share of the map's mass that lies inside the box.

    ``sum(relu(map) * inside) / sum(relu(map))`` per sample (Arras et al.; the "energy
    pointing game"). A zero map scores 0.0; a uniform map scores the box's area fraction.

    Args:
        maps: ``(N, H, W)`` heat maps; negative values are clamped to 0.
        boxes: ``(N, 4)`` XYXY boxes with exclusive ``x2, y2`` (``map[y1:y2, x1:x2]``), or
            per-sample lists of boxes (their union).

    Returns:
        ``(N,)`` float tensor in ``[0, 1]``.

    Example:
        >>> import torch
        >>> mass_in_box(torch.ones(2, 4, 4), torch.tensor([[0, 0, 2, 2], [0, 0, 4, 4]]))
        tensor([0.2500, 1.0000])
    """
    flat, reg = _prepare(maps, boxes, "box")
    return _mass(flat, reg)


def mass_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Relevance mass accuracy against a bool ``(N, H, W)`` mask (see :func:`mass_in_box`).

    An all-False mask scores 0.0.

    Example:
        >>> import torch
        >>> masks = torch.zeros(1, 2, 2, dtype=torch.bool)
        >>> masks[0, 0, 0] = True
        >>> mass_in_mask(torch.tensor([[[3.0, 1.0], [0.0, -5.0]]]), masks)
        tensor([0.7500])
    """
    flat, reg = _prepare(maps, masks, "mask")
    return _mass(flat, reg)


def _dilate(reg: Region, tolerance: float) -> torch.Tensor:
    """Region masks grown to every pixel within ``tolerance`` px (Euclidean, centre to centre)."""
    if tolerance == 0:
        return reg.masks
    h, w = reg.size
    t2 = tolerance * tolerance
    if reg.rows is not None and reg.cols is not None:  # one box: distance to a rectangle
        rows, cols = reg.rows, reg.cols
        c1 = cols.int().argmax(dim=1)
        c2 = w - 1 - cols.flip(1).int().argmax(dim=1)
        r1 = rows.int().argmax(dim=1)
        r2 = h - 1 - rows.flip(1).int().argmax(dim=1)
        j = torch.arange(w, device=cols.device)
        i = torch.arange(h, device=rows.device)
        dx = torch.clamp(torch.maximum(c1[:, None] - j, j - c2[:, None]), min=0)
        dy = torch.clamp(torch.maximum(r1[:, None] - i, i - r2[:, None]), min=0)
        dx2 = (dx * dx).float()
        dy2 = (dy * dy).float()
        return (dy2[:, :, None] + dx2[:, None, :]) <= t2
    masks = reg.masks
    # any mask: union over row offsets of a horizontal max-pool with the disk's half-width
    src = masks.float()[:, None]
    out = torch.zeros_like(masks)
    reach = min(math.floor(tolerance), h - 1)
    for di in range(-reach, reach + 1):
        half = min(math.floor(math.sqrt(t2 - di * di)), w - 1)
        grown = F.max_pool2d(src, (1, 2 * half + 1), stride=1, padding=(0, half))[:, 0] > 0
        # pixel row r is reached from region row r + di
        if di >= 0:
            out[:, : h - di] |= grown[:, di:]
        else:
            out[:, -di:] |= grown[:, : h + di]
    return out


def _check_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInputError(
            f"tolerance must be a finite number of pixels >= 0; got {tolerance!r}"
        )
    return float(tolerance)


def pointing_game(maps: torch.Tensor, region: RegionLike, *, tolerance: float = 0) -> torch.Tensor:
    """Pointing game (Zhang et al.): is the map's maximum inside the region?

    A hit (1.0) when the maximal pixel lies inside the box or mask, or within ``tolerance``
    pixels of it (Euclidean distance between pixel centres; the reference benchmark uses
    15 px). Ties: when several pixels share the maximum, the score is the fraction of them
    that hit (the expected hit rate of a random tie-break), so a uniform map scores the
    chance level instead of passing. A zero map and an all-False mask are a miss (0.0),
    unlike Quantus 0.6, which counts an empty mask as a hit.

    Args:
        maps: ``(N, H, W)`` heat maps (negative values clamped to 0).
        region: boxes or a bool mask.
        tolerance: pixels of slack around the region.

    Returns:
        ``(N,)`` float tensor: 1.0 hit, 0.0 miss, in between only for tied maxima.

    Example:
        >>> import torch
        >>> maps = torch.zeros(2, 5, 5)
        >>> maps[:, 0, 0] = 1.0
        >>> boxes = torch.tensor([[0, 0, 1, 1], [2, 2, 5, 5]])
        >>> pointing_game(maps, boxes)
        tensor([1., 0.])
        >>> pointing_game(maps, boxes, tolerance=3)
        tensor([1., 1.])
    """
    tol = _check_tolerance(tolerance)
    flat, reg = _prepare(maps, region)
    top = flat.amax(dim=1, keepdim=True)
    is_max = flat == top
    counts = _count(is_max)
    hits = torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    single = counts == 1
    if bool(single.any()):  # the usual case: one maximum, look up its pixel
        idx = is_max.view(torch.uint8).argmax(dim=1)[single]  # first maximal pixel
        hits[single] = _hit_at(reg, tol, single, idx).to(flat.dtype)
    tied = ~single
    if bool(tied.any()):  # several maxima: the fraction of them in the zone
        zone = _dilate(reg, tol).to(flat.device).flatten(1)[tied]
        hits[tied] = _count(is_max[tied] & zone) / counts[tied]
    return torch.where(top[:, 0] > 0, hits, 0.0)


def _hit_at(reg: Region, tol: float, which: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Whether flat pixel ``idx`` of each selected sample lies in its (grown) region."""
    h, w = reg.size
    which = which.cpu()
    idx = idx.cpu()
    r, c = idx // w, idx % w
    if reg.rows is not None and reg.cols is not None:
        rows, cols = reg.rows[which], reg.cols[which]
        if tol == 0:
            return rows.gather(1, r[:, None])[:, 0] & cols.gather(1, c[:, None])[:, 0]
        r1, r2 = rows.int().argmax(1), h - 1 - rows.flip(1).int().argmax(1)
        c1, c2 = cols.int().argmax(1), w - 1 - cols.flip(1).int().argmax(1)
        dy = torch.clamp(torch.maximum(r1 - r, r - r2), min=0).double()
        dx = torch.clamp(torch.maximum(c1 - c, c - c2), min=0).double()
        return dy * dy + dx * dx <= tol * tol
    zone = _dilate(reg, tol).cpu().flatten(1)[which]
    return zone.gather(1, idx[:, None])[:, 0]


def rank_accuracy(maps: torch.Tensor, region: RegionLike) -> torch.Tensor:
    """Fraction of the map's top-K pixels that lie inside the region, K = region area in px.

    Only positive pixels can rank (a zero map scores 0.0); pixels tied at the K-th value share
    the remaining places in proportion (a uniform map scores the area fraction). An all-False
    mask scores 0.0.

    Example:
        >>> import torch
        >>> maps = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])
        >>> rank_accuracy(maps, torch.tensor([[0, 0, 1, 2]]))  # left column: values 4 and 2
        tensor([0.5000])
    """
    flat, reg = _prepare(maps, region)
    inside = _inside(reg, flat)
    k = inside.sum(dim=1)
    ascending = sorted_rows(flat)  # the K-th largest is at HW - K
    kth = ascending.gather(1, (flat.shape[1] - k.clamp(min=1))[:, None])
    top = flat >= kth  # the top K, plus any pixels tied with the K-th value
    hits = _count(top & inside).to(flat.dtype)
    # rows where ties straddle the K-th place, or zeros would rank: share the tied places
    odd = ((_count(top) > k) | (kth[:, 0] <= 0)).nonzero()[:, 0]
    if odd.numel():
        f, at, kk, ins = flat[odd], kth[odd], k[odd], inside[odd]
        above = f > at
        tied = (f == at) & (at > 0)
        places = (kk - above.sum(dim=1)).to(flat.dtype)
        share = places * (tied & ins).sum(dim=1) / tied.sum(dim=1).clamp(min=1)
        hits[odd] = (above & ins).sum(dim=1).to(flat.dtype) + share.to(flat.dtype)
    return torch.where(k > 0, hits / k.clamp(min=1).to(flat.dtype), 0.0)


def _otsu(flat: torch.Tensor) -> torch.Tensor:
    from skimage.filters import threshold_otsu

    values = flat.detach().cpu().double().numpy()
    thr = [
        float(threshold_otsu(row)) if row.max() > row.min() else float(row.max()) for row in values
    ]
    return torch.tensor(thr, dtype=flat.dtype, device=flat.device)[:, None]


def iou(
    maps: torch.Tensor,
    region: RegionLike,
    *,
    threshold: float | Literal["otsu"] | None = None,
    top_k: float | None = None,
) -> torch.Tensor:
    """Intersection over union of the thresholded map with the region.

    The map is binarised in one of three ways (zero pixels are never "on"):

    - ``threshold=t`` (default 0.5), ``0 <= t <= 1``: pixels ``>= t * max(map)``, so the
      threshold is relative to each map's maximum and scaling the map changes nothing;
    - ``threshold="otsu"``: pixels ``>`` Otsu's threshold
      (``skimage.filters.threshold_otsu``, per map; a constant map has no pixel on);
    - ``top_k=f``, ``0 < f <= 1``: the ``ceil(f * H * W)`` largest pixels (pixels tied
      with the last one are all included).

    A zero map, or an empty prediction and an all-False mask, scores 0.0. A uniform map scores
    the area fraction with a numeric threshold or ``top_k``.

    Example:
        >>> import torch
        >>> maps = torch.tensor([[[1.0, 0.9], [0.2, 0.0]]])
        >>> iou(maps, torch.tensor([[0, 0, 1, 2]]))  # on: top row; box: left column
        tensor([0.3333])
        >>> iou(maps, torch.tensor([[0, 0, 1, 2]]), top_k=0.25)
        tensor([0.5000])
    """
    if threshold is not None and top_k is not None:
        raise InvalidInputError("give threshold= or top_k=, not both")
    flat, reg = _prepare(maps, region)
    inside = _inside(reg, flat)
    positive = flat > 0
    if top_k is not None:
        if not (isinstance(top_k, int | float) and 0 < top_k <= 1):
            raise InvalidInputError(f"top_k must be a fraction of pixels in (0, 1]; got {top_k!r}")
        k = max(1, math.ceil(top_k * flat.shape[1]))
        kth = sorted_rows(flat, descending=True)[:, k - 1 : k]
        on = (flat >= kth) & positive
    elif threshold == "otsu":
        on = (flat > _otsu(flat)) & positive
    else:
        t = 0.5 if threshold is None else threshold
        if isinstance(t, str) or not (isinstance(t, int | float) and 0 <= t <= 1):
            raise InvalidInputError(
                f"threshold must be a fraction of the map's maximum in [0, 1] or 'otsu'; got {t!r}"
            )
        top = flat.amax(dim=1, keepdim=True)
        on = (flat >= t * top) & positive
    inter = _count(on & inside)
    union = _count(on) + _count(inside) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), 0.0)


def chance_level(
    region: RegionLike, size: tuple[int, int] | None = None, *, tolerance: float = 0
) -> torch.Tensor:
    """What an uninformative (uniform) map scores: the fraction of the image in the region.

    This is the uniform map's value of :func:`mass_in_box`, :func:`mass_in_mask`,
    :func:`rank_accuracy`, :func:`iou` (numeric threshold or ``top_k``) and, with the same
    ``tolerance``, :func:`pointing_game`; a gate should sit well above it.

    Args:
        region: boxes or a bool ``(N, H, W)`` mask.
        size: ``(H, W)`` of the maps; required for boxes, taken from the mask otherwise.
        tolerance: grow the region by this many pixels first (pointing game).

    Example:
        >>> import torch
        >>> chance_level(torch.tensor([[0, 0, 2, 4]]), (4, 4))
        tensor([0.5000])
    """
    tol = _check_tolerance(tolerance)
    if size is None:
        if isinstance(region, torch.Tensor) and region.dtype == torch.bool and region.dim() == 3:
            size = (region.shape[1], region.shape[2])
        else:
            raise InvalidInputError("chance_level needs size=(H, W) for boxes")
    reg = as_region(region, size)
    return _dilate(reg, tol).flatten(1).float().mean(dim=1)
