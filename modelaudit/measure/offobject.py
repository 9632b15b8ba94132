"""Where the maps' mass goes when it is not on the object: a named part of the image.

A failed localization check says *that* the model looks elsewhere; this module says
*where*, without being told where any shortcut cue is. Each map's mass outside its object
(``map * (1 - mask)``, as a fraction of the map's total mass) is averaged over the batch
into an ``(H, W)`` picture of off-object mass, and the image is cut into a 4x4 grid whose
cells make up named regions:

- the four corners (one corner cell each), e.g. ``"the top-left corner"``;
- the four edges between the corners (the two non-corner border cells of a side), e.g.
  ``"the top edge"``;
- the four strips (a whole side of the grid, corners included: a quarter of the image),
  e.g. ``"the top strip"``;
- ``"the corners"`` (the four corner cells together), ``"the border"`` (the 12 border
  cells) and ``"the centre"`` (the 4 inner cells);
- ``"the area around the object"``: per sample, the pixels within :func:`around_margin`
  (an eighth of the shorter side) of the object, off it. Mass there is a coarse or blurred
  map spilling over the object's outline (the zoo's clean model), not a shortcut cue.

A pixel belongs to the cell its centre falls in. For each region the *share* of the
off-object mass in it is compared with the share a uniform map over each sample's
background would put there (its *expected* share; each sample weighted by its off-object
fraction, like the shares). The region named is the one that best separates the mass from
such a uniform spread: the largest Bernoulli KL divergence
``s log(s/e) + (1-s) log((1-s)/(1-e))`` between share ``s`` and expected share ``e``,
among regions that hold more than expected. Thresholds (chosen on hand-built maps and the
zoo's shortcut model): a region is named only when its divergence is at least
:data:`MIN_DIVERGENCE` (0.1 nats) and its share at least :data:`MIN_LIFT` (1.2) times the
expected one; ties (within 1e-6) go to the smaller region. Otherwise the mass is
``"the whole background"``; with no off-object mass at all, ``"none"``.

Why not "share / area" with a fixed bar: the border covers 75% of the image, so its
share / area is at most 1.33 and a bar such as 1.5 could never name it, while any bar
low enough for the border names a sliver of a single corner too; a uniform background next
to an off-centre object would also look "concentrated" away from the object. The
divergence weighs how much mass a region holds against how surprising that is, and the
expected share makes a uniform background score exactly zero.

Example:
    >>> import torch
    >>> maps = torch.zeros(2, 16, 16)
    >>> maps[:, 0:4, 0:4] = 1.0                      # all the mass in the top-left cell
    >>> boxes = torch.tensor([[6, 6, 10, 10]] * 2)
    >>> found = off_object_mass(maps, boxes)
    >>> found.region, round(found.off_object, 2), found.share
    ('the top-left corner', 1.0, 1.0)
    >>> found.describe()
    "100% of the maps' mass lies off the object; most of it in the top-left corner (100% of the off-object mass in 6% of the image)"
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from modelaudit.measure._validate import RegionLike, as_region, check_maps

__all__ = [
    "AROUND",
    "GRID",
    "MIN_DIVERGENCE",
    "MIN_LIFT",
    "NAMED_REGIONS",
    "OffObject",
    "around_margin",
    "mean_heat_map",
    "mean_region",
    "off_object_mass",
    "region_masks",
]

GRID = 4
"""The image is cut into ``GRID x GRID`` cells; regions are unions of cells."""
MIN_DIVERGENCE = 0.1
"""Least KL divergence (nats) between a region's share and its expected share to name it."""
MIN_LIFT = 1.2
"""Least ratio share / expected share for a region to be named."""
AROUND = "the area around the object"
"""The band within :func:`around_margin` pixels of each sample's object (off it): mass
there is a blurred or coarse map spilling over the object's outline, not a shortcut."""
_TIE = 1e-6

_LAST = GRID - 1
_SIDES = {
    "top": [(0, c) for c in range(GRID)],
    "bottom": [(_LAST, c) for c in range(GRID)],
    "left": [(r, 0) for r in range(GRID)],
    "right": [(r, _LAST) for r in range(GRID)],
}
_CORNERS = {
    "top-left": (0, 0),
    "top-right": (0, _LAST),
    "bottom-right": (_LAST, _LAST),
    "bottom-left": (_LAST, 0),
}
NAMED_REGIONS: dict[str, tuple[tuple[int, int], ...]] = {
    **{f"the {k} corner": (cell,) for k, cell in _CORNERS.items()},
    **{
        f"the {k} edge": tuple(c for c in cells if c not in _CORNERS.values())
        for k, cells in _SIDES.items()
    },
    **{f"the {k} strip": tuple(cells) for k, cells in _SIDES.items()},
    "the corners": tuple(_CORNERS.values()),
    "the border": tuple(
        (r, c) for r in range(GRID) for c in range(GRID) if r in (0, _LAST) or c in (0, _LAST)
    ),
    "the centre": tuple((r, c) for r in range(1, _LAST) for c in range(1, _LAST)),
}
"""Each named region's grid cells ``(row, col)`` (row 0 at the top)."""


def mean_heat_map(maps: torch.Tensor) -> torch.Tensor:
    """The batch's average map: each map clamped at 0 and scaled to sum 1 (zero maps
    skipped), then averaged. All-zero batches give an all-zero ``(H, W)`` map.

    Example:
        >>> m = torch.zeros(3, 1, 2)
        >>> m[0, 0, 0], m[1, 0, 1] = 2.0, 5.0          # the third map is zero: skipped
        >>> mean_heat_map(m)
        tensor([[0.5000, 0.5000]])
    """
    m = check_maps(maps)
    unit, used = _unit_mass(m)
    return (unit.sum(dim=0) / max(int(used.sum()), 1)).to(m.dtype)


def mean_region(region: RegionLike, size: tuple[int, int]) -> torch.Tensor:
    """The fraction of samples whose object covers each pixel, ``(H, W)`` float.

    ``region``: ``(N, 4)`` XYXY boxes (exclusive ``x2``, ``y2``), per-sample box lists, or a
    bool ``(N, H, W)`` mask, as everywhere in :mod:`modelaudit.measure`.

    Example:
        >>> mean_region(torch.tensor([[0, 0, 1, 1], [0, 0, 2, 1]]), (1, 2))
        tensor([[1.0000, 0.5000]])
    """
    return as_region(region, size).masks.float().mean(dim=0)


@dataclasses.dataclass(frozen=True)
class OffObject:
    """Where the maps' off-object mass lies (see the module text for the rule).

    Attributes:
        region: the named region, ``"the whole background"`` when none stands out, or
            ``"none"`` when no mass lies off the object.
        share: the fraction of the off-object mass in ``region`` (1.0 for the whole
            background, 0.0 for none).
        area: ``region``'s fraction of the image.
        expected: the share a uniform map over each sample's background would put there.
        off_object: the mean over (non-zero) maps of the fraction of a map's mass outside
            its object.
        count: the maps with any mass (the others are skipped).
        mean_map: ``(H, W)`` the mean of the maps scaled to sum 1 (:func:`mean_heat_map`).
        mean_region: ``(H, W)`` the fraction of objects covering each pixel.
        off_map: ``(H, W)`` the mean off-object mass per pixel (it sums to ``off_object``).
        region_mask: ``(H, W)`` bool, the named region's pixels (None if no region; for
            the area around the object, the pixels in it for at least half the samples).
    """

    region: str
    share: float
    area: float
    expected: float
    off_object: float
    count: int
    mean_map: torch.Tensor = dataclasses.field(repr=False)
    mean_region: torch.Tensor = dataclasses.field(repr=False)
    off_map: torch.Tensor = dataclasses.field(repr=False)
    region_mask: torch.Tensor | None = dataclasses.field(default=None, repr=False)

    def describe(self) -> str:
        """One line: how much mass lies off the object, and where most of it goes.

        Example:
            >>> import torch
            >>> inside = off_object_mass(torch.ones(1, 4, 4), torch.tensor([[0, 0, 4, 4]]))
            >>> inside.describe()
            "none of the maps' mass lies off the object"
        """
        if self.count == 0:
            return "every map is zero: the maps point nowhere"
        if self.region == "none":
            return "none of the maps' mass lies off the object"
        head = f"{self.off_object:.0%} of the maps' mass lies off the object"
        if self.region == "the whole background":
            return (
                f"{head}; it is spread over the whole background (no part of the image stands out)"
            )
        return (
            f"{head}; most of it in {self.region} ({self.share:.0%} of the off-object mass "
            f"in {self.area:.0%} of the image)"
        )


def region_masks(size: tuple[int, int]) -> tuple[list[str], torch.Tensor]:
    """The names of :data:`NAMED_REGIONS` and their ``(R, H, W)`` bool pixel masks.

    Example:
        >>> names, masks = region_masks((4, 4))
        >>> names[0], masks[0].int().tolist()[0]
        ('the top-left corner', [1, 0, 0, 0])
    """
    h, w = size
    row = ((torch.arange(h) + 0.5) * GRID / h).long().clamp(max=_LAST)
    col = ((torch.arange(w) + 0.5) * GRID / w).long().clamp(max=_LAST)
    cell = row[:, None] * GRID + col[None, :]  # (H, W) cell index
    names = list(NAMED_REGIONS)
    chosen = torch.zeros(len(names), GRID * GRID, dtype=torch.bool)
    for k, name in enumerate(names):
        chosen[k, [r * GRID + c for r, c in NAMED_REGIONS[name]]] = True
    return names, chosen[:, cell]


def _unit_mass(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps clamped at 0 and scaled to sum 1 (float64), and which maps have any mass."""
    m = maps.detach().double().clamp(min=0)
    total = m.sum(dim=(1, 2), keepdim=True)
    used = total.view(-1) > 0
    return torch.where(total > 0, m / total.clamp(min=1e-300), 0.0), used


def off_object_mass(maps: torch.Tensor, region: RegionLike) -> OffObject:
    """Where the maps' mass outside the object lies, as a named part of the image.

    Args:
        maps: ``(N, H, W)`` heat maps (negative values count as 0).
        region: the object per sample: ``(N, 4)`` XYXY boxes (exclusive ``x2``, ``y2``),
            per-sample box lists, or a bool ``(N, H, W)`` mask.

    Returns:
        an :class:`OffObject`; ``describe()`` gives the one-line summary.

    Raises:
        InvalidInputError: bad maps or region (see :mod:`modelaudit.measure._validate`).

    Example:
        >>> import torch
        >>> maps = torch.ones(1, 8, 8)                       # uniform: nothing stands out
        >>> off_object_mass(maps, torch.tensor([[2, 2, 5, 5]])).region
        'the whole background'
    """
    m = check_maps(maps)
    size = (int(m.shape[1]), int(m.shape[2]))
    masks = as_region(region, size, m.shape[0]).masks.to(m.device)
    unit, used = _unit_mass(m)
    background = (~masks).double() * used[:, None, None]  # zero maps weigh nothing
    off = unit * background  # (N, H, W): each map's mass off its object
    frac = off.sum(dim=(1, 2))  # (N,) off-object fraction per map
    count = int(used.sum())
    off_map = off.sum(dim=0) / max(count, 1)
    off_object = float(frac.sum()) / max(count, 1)
    # a uniform map over each background, weighted like the real off-object mass
    free = background.sum(dim=(1, 2))
    uniform = background * (frac / free.clamp(min=1))[:, None, None]
    names, cells = region_masks(size)
    cells = cells.to(m.device).double()
    ring = _ring(masks).double()  # (N, H, W): the band around each object
    off_total, uni_total = float(off.sum()), float(uniform.sum())
    share = _shares(off, cells, ring) / max(off_total, 1e-300)
    expected = _shares(uniform, cells, ring) / max(uni_total, 1e-300)
    area = torch.cat([cells.mean(dim=(1, 2)), ring.mean().view(1)])
    names.append(AROUND)
    common: dict[str, Any] = {
        "off_object": off_object,
        "count": count,
        "mean_map": mean_heat_map(m).float().cpu(),
        "mean_region": masks.float().mean(dim=0).cpu(),
        "off_map": off_map.float().cpu(),
    }
    if off_total <= 0 or uni_total <= 0:
        return OffObject("none", 0.0, 0.0, 0.0, **common)
    best = _best_region(share, expected, area)
    if best is None:
        return OffObject("the whole background", 1.0, 1.0, 1.0, **common)
    return OffObject(
        names[best],
        float(share[best]),
        float(area[best]),
        float(expected[best]),
        **common,
        region_mask=(ring.mean(dim=0) >= 0.5 if best == len(cells) else cells[best] > 0).cpu(),
    )


def _ring(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` bool: the pixels within :func:`around_margin` of each object, off it."""
    r = around_margin(tuple(masks.shape[-2:]))  # type: ignore[arg-type]
    grown = torch.nn.functional.max_pool2d(
        masks[:, None].float(), kernel_size=2 * r + 1, stride=1, padding=r
    )[:, 0]
    return (grown > 0) & ~masks


def _shares(mass: torch.Tensor, cells: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """``(R + 1,)`` mass in each fixed region, then in each sample's ring (not normalised)."""
    fixed = torch.einsum("hw,rhw->r", mass.sum(dim=0), cells)
    return torch.cat([fixed, (mass * ring).sum().view(1)])


def around_margin(size: tuple[int, int]) -> int:
    """How far ``"around the object"`` reaches: an eighth of the image's shorter side, at
    least one pixel (about one cell of a CAM taken at stride 8).

    Example:
        >>> around_margin((64, 64)), around_margin((224, 160)), around_margin((4, 4))
        (8, 20, 1)
    """
    return max(1, round(min(size) / 8))


def _best_region(share: torch.Tensor, expected: torch.Tensor, area: torch.Tensor) -> int | None:
    """The index of the region with the largest divergence that passes both bars, or None."""
    s, e = share.clamp(0, 1), expected.clamp(0, 1)
    kl = torch.xlogy(s, s / e.clamp(min=1e-300)) + torch.xlogy(
        1 - s, (1 - s) / (1 - e).clamp(min=1e-300)
    )
    ok = (e > 0) & (e < 1) & (s >= MIN_LIFT * e) & (kl >= MIN_DIVERGENCE)
    if not bool(ok.any()):
        return None
    score = torch.where(ok, kl, -math.inf)
    top = float(score.max())
    tied = ok & (score >= top - _TIE)
    # among ties the smaller region; the first listed when areas are equal too
    candidates = tied.nonzero().view(-1).tolist()
    return min(candidates, key=lambda k: (float(area[k]), k))
