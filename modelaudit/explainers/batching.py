"""The one batching loop: work over a range in parts, results stitched at their rows.

Gradient passes (:func:`~modelaudit.explainers.engine.run_in_passes`), the masked inputs
of the Score-CAM family and the ablated copies of Ablation-CAM all go through
:class:`Batches`: iterate it for the parts, :meth:`Batches.put` each part's results.

Example:
    >>> import torch
    >>> from modelaudit.explainers.batching import Batches
    >>> batches = Batches(5, 2)
    >>> for part in batches:
    ...     batches.put(part, [torch.arange(part.start, part.stop) * 10])
    >>> batches.results()
    [tensor([ 0, 10, 20, 30, 40])]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

__all__ = ["Batches"]


class Batches:
    """``range(total)`` in consecutive parts of ``size`` items, and the results of the parts.

    ``size`` may be changed while iterating (the next parts take the new size), so a first
    part can measure what the others may take. :meth:`put` writes a part's tensors at
    their rows of full-size results: those given as ``into`` (written in place), or else
    allocated on the first ``put`` as ``(total, ...)``, except that the results of a single
    part covering everything are kept as they are (no copy).

    Example:
        >>> import torch
        >>> [part for part in Batches(5, 2)]
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
        >>> out = torch.zeros(2, 3)
        >>> batches = Batches(3, 2, into=[out])
        >>> for part in batches:  # any index works, here columns of row 1
        ...     batches.put((1, part), [torch.ones(part.stop - part.start)])
        >>> out
        tensor([[0., 0., 0.],
                [1., 1., 1.]])
    """

    def __init__(
        self, total: int, size: int, *, into: Sequence[torch.Tensor] | None = None
    ) -> None:
        self.total, self.size = total, size
        self._out: list[torch.Tensor] = list(into) if into is not None else []

    @property
    def whole(self) -> bool:
        """Whether everything goes in one part (at the current size)."""
        return self.size >= self.total

    def __iter__(self) -> Iterator[slice]:
        start = 0
        while start < self.total:
            stop = min(self.total, start + max(1, self.size))
            yield slice(start, stop)
            start = stop

    def put(self, rows: Any, got: Sequence[torch.Tensor]) -> None:
        """Write ``got[i]`` at ``results()[i][rows]`` (``rows``: a part or any index)."""
        if not self._out:
            if isinstance(rows, slice) and rows == slice(0, self.total):  # one part: as is
                self._out = list(got)
                return
            self._out = [g.new_empty((self.total, *g.shape[1:])) for g in got]
        for full, part in zip(self._out, got):
            full[rows] = part

    def results(self) -> list[torch.Tensor]:
        """The full-size results (empty if nothing was put)."""
        return self._out
