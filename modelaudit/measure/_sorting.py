"""Row-wise sorting and ranking for batched metrics.

On CPU the sort itself goes through numpy (whose SIMD sort is many times faster than
``torch.sort`` for rows of thousands of pixels); everything else stays in torch, and other
devices use ``torch.sort``. Either way it is one call for the whole batch.

Example:
    >>> import torch
    >>> from modelaudit.measure._sorting import average_ranks, sorted_rows
    >>> sorted_rows(torch.tensor([[3.0, 1.0, 2.0]]), descending=True)
    tensor([[3., 2., 1.]])
    >>> average_ranks(torch.tensor([[10.0, 20.0, 10.0, 5.0]]))
    tensor([[2.5000, 4.0000, 2.5000, 1.0000]], dtype=torch.float64)
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["average_ranks", "sorted_rows"]

_NUMPY_DTYPES = (torch.float32, torch.float64)


def _numpy_ok(flat: torch.Tensor) -> bool:
    return flat.device.type == "cpu" and flat.dtype in _NUMPY_DTYPES and not flat.requires_grad


def sorted_rows(flat: torch.Tensor, *, descending: bool = False) -> torch.Tensor:
    """Each row of a 2-D tensor sorted (values only)."""
    if _numpy_ok(flat):
        out = torch.from_numpy(np.sort(flat.numpy(), axis=1))
        return out.flip(1) if descending else out
    return flat.sort(dim=1, descending=descending).values


def average_ranks(flat: torch.Tensor) -> torch.Tensor:
    """1-based ranks along each row, tied values sharing the mean of their ranks (float64).

    The same ranks as ``scipy.stats.rankdata(..., method="average", axis=1)``.
    """
    if _numpy_ok(flat):
        return torch.from_numpy(_ranks_numpy(flat.numpy()))
    return _ranks_torch(flat)


def _ranks_numpy(a: np.ndarray) -> np.ndarray:
    n, m = a.shape
    order = np.argsort(a, axis=1)
    values = np.take_along_axis(a, order, axis=1)
    starts = np.ones(values.shape, dtype=bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = np.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    pos = np.arange(m)
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, m)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((n, m), dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def _ranks_torch(flat: torch.Tensor) -> torch.Tensor:
    order = flat.argsort(dim=1)
    values = flat.gather(1, order)
    n, m = flat.shape
    pos = torch.arange(m, device=flat.device).expand(n, m)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(dim=1).values
    last = torch.where(ends, pos, m).flip(1).cummin(dim=1).values.flip(1)
    mean_rank = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)
