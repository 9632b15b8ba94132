"""Map a function over the tensors inside nested tuples, lists and dicts (private helper)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["keeper", "map_tensors"]


def map_tensors(fn: Callable[[torch.Tensor], Any], value: Any) -> Any:
    """Apply ``fn`` to every tensor in ``value``; other leaves are returned unchanged.

    Tuples (named tuples too), lists and dicts are rebuilt with the same type.
    """
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(map_tensors(fn, v) for v in value))
    if isinstance(value, tuple | list):
        return type(value)(map_tensors(fn, v) for v in value)
    if isinstance(value, dict):
        out = {k: map_tensors(fn, v) for k, v in value.items()}
        try:
            return type(value)(out)
        except TypeError:  # a dict subclass with a different constructor
            return out
    return value


def keeper(
    reduce: Callable[[torch.Tensor], Any] | None, to_cpu: bool
) -> Callable[[torch.Tensor], Any]:
    """Return ``tensor -> what to record``: a detached copy (or ``reduce`` of it), maybe on CPU.

    The copy is always a new tensor, so later in-place operations on the original (an
    in-place ReLU after the layer) cannot change what was recorded.
    """

    def own(t: torch.Tensor) -> torch.Tensor:
        if to_cpu and t.device.type != "cpu":
            return t.detach().to("cpu")
        return t.detach().clone()

    def keep(t: torch.Tensor) -> Any:
        t = t.detach()
        if reduce is None:
            return own(t)
        kept = reduce(t)
        return map_tensors(own, kept)

    return keep
