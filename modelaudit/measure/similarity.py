"""Similarity of two batches of heat maps, one value per sample pair.

Used by the sanity checks (how much does the map change when weights are randomised?) and
the stability checks (how much does it change under noise or a flip?).

Example:
    >>> import torch
    >>> from modelaudit.measure import spearman
    >>> a = torch.arange(4.0).reshape(1, 2, 2)
    >>> spearman(a, a ** 2), spearman(a, -a)
    (tensor([1.]), tensor([-1.]))
"""

from __future__ import annotations

from typing import Literal

import torch

from modelaudit.errors import InvalidInputError
from modelaudit.measure._sorting import average_ranks
from modelaudit.measure._validate import check_maps

__all__ = ["Similarity", "map_similarity", "spearman", "ssim"]

Similarity = Literal["spearman", "ssim"]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = check_maps(a, name="maps_a")
    b = check_maps(b, name="maps_b")
    if a.shape != b.shape:
        raise InvalidInputError(
            f"maps to compare must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return a, b.to(a.device)


def spearman(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps, over pixels, in ``[-1, 1]``.

    Tied values get the average of their ranks (as ``scipy.stats.spearmanr``). A constant
    map has no ranking: its correlation is defined as 1.0 with another constant map and 0.0
    with any other map (scipy returns NaN there).

    Args:
        maps_a: ``(N, H, W)`` maps.
        maps_b: ``(N, H, W)`` maps.

    Returns:
        ``(N,)`` float tensor.

    Example:
        >>> import torch
        >>> spearman(torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[[1.0, 3.0, 2.0]]]))
        tensor([0.5000])
    """
    a, b = _pair(maps_a, maps_b)
    ra = average_ranks(a.flatten(1))
    rb = average_ranks(b.flatten(1))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    va, vb = (ra * ra).sum(dim=1), (rb * rb).sum(dim=1)
    rho = (ra * rb).sum(dim=1) / (va * vb).clamp(min=1e-300).sqrt()
    both_flat = (va == 0) & (vb == 0)
    one_flat = (va == 0) ^ (vb == 0)
    rho = torch.where(both_flat, 1.0, torch.where(one_flat, 0.0, rho.clamp(-1, 1)))
    return rho.to(a.dtype)


def _unit(flat: torch.Tensor) -> torch.Tensor:
    lo = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - lo
    return torch.where(span > 0, (flat - lo) / span.clamp(min=1e-300), 0.0)


def ssim(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Structural similarity of each pair of maps (``skimage.metrics.structural_similarity``).

    Each map is first min-max normalised to ``[0, 1]`` (a constant map becomes all zeros),
    then compared with ``data_range=1`` and a uniform 7x7 window (smaller, odd, for
    maps under 7 pixels on a side). Two identical maps score 1.0.

    Example:
        >>> import torch
        >>> a = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> ssim(a, 3 * a)
        tensor([1., 1.])
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(maps_a, maps_b)
    n, h, w = a.shape
    side = min(7, h, w)
    win = side if side % 2 == 1 else side - 1
    if win < 3:
        raise InvalidInputError(
            f"ssim needs maps of at least 3x3 pixels; got {h}x{w}. Use similarity='spearman'."
        )
    ua = _unit(a.flatten(1).double()).reshape(n, h, w).cpu().numpy()
    ub = _unit(b.flatten(1).double()).reshape(n, h, w).cpu().numpy()
    vals = [
        float(structural_similarity(x, y, data_range=1.0, win_size=win))
        for x, y in zip(ua, ub, strict=True)
    ]
    return torch.tensor(vals, dtype=a.dtype, device=a.device)


def map_similarity(maps_a: torch.Tensor, maps_b: torch.Tensor, kind: Similarity) -> torch.Tensor:
    """Dispatch to :func:`spearman` or :func:`ssim` by name.

    Example:
        >>> import torch
        >>> map_similarity(torch.ones(1, 3, 3), torch.ones(1, 3, 3), "spearman")
        tensor([1.])
    """
    if kind == "spearman":
        return spearman(maps_a, maps_b)
    if kind == "ssim":
        return ssim(maps_a, maps_b)
    raise InvalidInputError(f"similarity must be 'spearman' or 'ssim'; got {kind!r}")
