"""Where off-object mass lies, summed batch by batch: :func:`off_object_mass` for a stream.

Every quantity :func:`~modelaudit.measure.offobject.off_object_mass` decides on is a sum
over samples (the off-object mass per pixel, the uniform background's, their shares in
the band around each object, the band's pixels), so a stream of batches can add them up
in ``(H, W)`` arrays and name the region at the end: the result equals
``off_object_mass`` on all the maps at once (to float rounding). Sums of disjoint parts of
the data (shards scanned by different processes) add up: :meth:`OffObjectSums.merged`.

Example:
    >>> import torch
    >>> from modelaudit.measure.offobject import off_object_mass
    >>> maps = torch.zeros(4, 16, 16)
    >>> maps[:, 0:4, 0:4] = 1.0
    >>> masks = torch.zeros(4, 16, 16, dtype=torch.bool)
    >>> masks[:, 6:10, 6:10] = True
    >>> sums = OffObjectSums((16, 16))
    >>> sums.add(maps[:3], masks[:3]); sums.add(maps[3:], masks[3:])
    >>> sums.result().describe() == off_object_mass(maps, masks).describe()
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from modelaudit.errors import InvalidInputError
from modelaudit.measure.offobject import (
    AROUND,
    OffObject,
    _best_region,
    _unit_mass,
    around_margin,
    region_masks,
)

__all__ = ["OffObjectSums"]

_ARRAYS = ("unit", "off", "uniform", "regions", "ring")
"""The ``(H, W)`` float64 sums."""


class OffObjectSums:
    """Running sums behind :class:`~modelaudit.measure.offobject.OffObject` for ``(H, W)``
    maps: :meth:`add` each batch, :meth:`result` at the end."""

    def __init__(self, size: tuple[int, int]) -> None:
        h, w = int(size[0]), int(size[1])
        zeros = torch.zeros(h, w, dtype=torch.float64)
        self.size = (h, w)
        self.unit, self.off, self.uniform = zeros.clone(), zeros.clone(), zeros.clone()
        self.regions, self.ring = zeros.clone(), zeros.clone()
        self.off_ring = self.uniform_ring = self.off_fraction = 0.0
        self.count = self.samples = 0

    def add(self, maps: torch.Tensor, masks: torch.Tensor) -> None:
        """Add ``(N, H, W)`` maps and their objects' bool ``(N, H, W)`` masks."""
        unit, used = _unit_mass(maps.detach().cpu())
        masks = masks.cpu()
        background = (~masks).double() * used[:, None, None]
        off = unit * background
        frac = off.sum(dim=(1, 2))
        free = background.sum(dim=(1, 2))
        uniform = background * (frac / free.clamp(min=1))[:, None, None]
        ring = _ring(masks).double()
        self.unit += unit.sum(dim=0)
        self.off += off.sum(dim=0)
        self.uniform += uniform.sum(dim=0)
        self.regions += masks.double().sum(dim=0)
        self.ring += ring.sum(dim=0)
        self.off_ring += float((off * ring).sum())
        self.uniform_ring += float((uniform * ring).sum())
        self.off_fraction += float(frac.sum())
        self.count += int(used.sum())
        self.samples += int(masks.shape[0])

    @classmethod
    def merged(cls, parts: Sequence[OffObjectSums]) -> OffObjectSums:
        """The sums of every part's samples, as if one :class:`OffObjectSums` had added them
        all (the parts must hold disjoint samples; each is left unchanged).

        Raises:
            InvalidInputError: no parts, or parts of different map sizes.

        Example:
            >>> import torch
            >>> maps, masks = torch.rand(4, 8, 8), torch.zeros(4, 8, 8, dtype=torch.bool)
            >>> masks[:, 2:5, 2:5] = True
            >>> a, b, whole = OffObjectSums((8, 8)), OffObjectSums((8, 8)), OffObjectSums((8, 8))
            >>> a.add(maps[:1], masks[:1]); b.add(maps[1:], masks[1:]); whole.add(maps, masks)
            >>> merged = OffObjectSums.merged([a, b]).result()
            >>> merged.describe() == whole.result().describe(), merged.count
            (True, 4)
        """
        if not parts:
            raise InvalidInputError("OffObjectSums.merged needs at least one part; got none")
        sizes = sorted({p.size for p in parts})
        if len(sizes) > 1:
            raise InvalidInputError(
                f"OffObjectSums.merged: the parts' maps have sizes {sizes}; every part must "
                "sum maps of one size"
            )
        total = cls(parts[0].size)
        for part in parts:
            for name in _ARRAYS:
                getattr(total, name).add_(getattr(part, name))
            total.off_ring += part.off_ring
            total.uniform_ring += part.uniform_ring
            total.off_fraction += part.off_fraction
            total.count += part.count
            total.samples += part.samples
        return total

    def result(self) -> OffObject:
        """The :class:`~modelaudit.measure.offobject.OffObject` of every batch added."""
        names, cells = region_masks(self.size)
        cells = cells.double()
        used, n = max(self.count, 1), max(self.samples, 1)
        share = torch.cat(
            [
                torch.einsum("hw,rhw->r", self.off, cells),
                torch.tensor([self.off_ring], dtype=torch.float64),
            ]
        )
        expected = torch.cat(
            [
                torch.einsum("hw,rhw->r", self.uniform, cells),
                torch.tensor([self.uniform_ring], dtype=torch.float64),
            ]
        )
        off_total, uni_total = float(self.off.sum()), float(self.uniform.sum())
        share, expected = share / max(off_total, 1e-300), expected / max(uni_total, 1e-300)
        area = torch.cat(
            [cells.mean(dim=(1, 2)), (self.ring.sum() / (n * cells[0].numel())).view(1)]
        )
        common: dict[str, Any] = {
            "off_object": self.off_fraction / used,
            "count": self.count,
            "mean_map": (self.unit / used).float(),
            "mean_region": (self.regions / n).float(),
            "off_map": (self.off / used).float(),
        }
        if off_total <= 0 or uni_total <= 0:
            return OffObject("none", 0.0, 0.0, 0.0, **common)
        best = _best_region(share, expected, area)
        if best is None:
            return OffObject("the whole background", 1.0, 1.0, 1.0, **common)
        names.append(AROUND)
        around = best == len(cells)
        return OffObject(
            names[best],
            float(share[best]),
            float(area[best]),
            float(expected[best]),
            **common,
            region_mask=self.ring / n >= 0.5 if around else cells[best] > 0,
        )


def _ring(masks: torch.Tensor) -> torch.Tensor:
    """The band within :func:`~modelaudit.measure.offobject.around_margin` of each object,
    off it: the same pixels as ``offobject._ring`` (a square max-pool), found as a window
    count over cumulative sums along the rows, then along the columns (O(1) per pixel)."""
    r = around_margin((int(masks.shape[-2]), int(masks.shape[-1])))
    grown = _any_within(_any_within(masks, r, dim=-2), r, dim=-1)
    return grown & ~masks


def _any_within(masks: torch.Tensor, r: int, *, dim: int) -> torch.Tensor:
    """Whether any True lies within ``r`` places along ``dim`` (a 1-D max-pool of 2r+1)."""
    n = masks.shape[dim]
    sums = F.pad(masks.to(torch.int32).cumsum(dim=dim).movedim(dim, -1), (1, 0)).movedim(-1, dim)
    at = torch.arange(n, device=masks.device)
    hi, lo = (at + r + 1).clamp(max=n), (at - r).clamp(min=0)
    return (sums.index_select(dim, hi) - sums.index_select(dim, lo)) > 0
