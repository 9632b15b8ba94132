"""Record the gradients of named intermediate tensors with ``Tensor.register_hook``.

Module hooks see layers; sometimes the quantity of interest is a tensor inside a
computation. :func:`tensor_grads` gives a block in which ``tg.watch(name, tensor)`` marks a
tensor; after a backward pass inside the block, ``tg[name]`` is d(differentiated value) /
d(tensor). Hooks are removed when the block ends.

Example (the seed walk-through: ``a = w + x; b = w + 1; y = a * b`` at w=1, x=2):
    >>> import torch
    >>> from modelaudit.hooks.tensors import tensor_grads
    >>> w = torch.tensor(1.0, requires_grad=True)
    >>> x = torch.tensor(2.0)
    >>> with tensor_grads() as tg:
    ...     a = tg.watch("a", w + x)
    ...     b = tg.watch("b", w + 1)
    ...     y = a * b
    ...     y.backward()
    >>> float(tg["a"]), float(tg["b"]), float(w.grad)   # dy/da = b, dy/db = a, dy/dw = a + b
    (2.0, 3.0, 5.0)

Next to a hook of your own that rewrites the gradient, *order matters*: the hooks of a tensor
run in the order they were registered, each receiving what the previous one returned. With
the tutorial's ``grad *= 2; return grad * 3`` on ``a``, a tensor watched *before* that hook
records the true dy/da = 2; watched *after* it, the rewritten 6 * 2 = 12. ``w.grad`` is 15
(= 12 + a) either way, not 5. The recorded value is a copy, so the rewrite's in-place
``grad *= 2`` cannot reach it:
    >>> def rewrite(grad):
    ...     grad *= 2
    ...     return grad * 3
    >>> def run(watch_first):
    ...     w = torch.tensor(1.0, requires_grad=True)
    ...     with tensor_grads() as tg:
    ...         a = w + x
    ...         if watch_first:
    ...             tg.watch("a", a)
    ...         a.register_hook(rewrite)
    ...         if not watch_first:
    ...             tg.watch("a", a)
    ...         (a * (w + 1)).backward()
    ...     return float(tg["a"]), float(w.grad)
    >>> run(watch_first=True), run(watch_first=False)
    ((2.0, 15.0), (12.0, 15.0))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from modelaudit.errors import HookError, InvalidInputError
from modelaudit.hooks._tree import keeper
from modelaudit.hooks.recording import LayerRecords

__all__ = ["TensorGrads", "tensor_grads"]


class TensorGrads:
    """The value of a :func:`tensor_grads` block: watch tensors, then read their gradients.

    Attributes:
        grads: ``{name: gradient}``, filled by backward passes inside the block (the latest
            backward pass wins when there are several).
    """

    def __init__(self, keep: Callable[[torch.Tensor], Any]) -> None:
        self.grads = LayerRecords(self._explain)
        self._keep = keep
        self._watched: dict[str, tuple[int, ...]] = {}
        self._handles: list[RemovableHandle] = []
        self._active = True

    def watch(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Record the gradient that reaches ``tensor`` under ``name``; return ``tensor``.

        Raises:
            InvalidInputError: not a tensor, no grad required, or the name is taken.
            HookError: the block has already ended.
        """
        if not self._active:
            raise HookError(f"cannot watch {name!r}: the tensor_grads block has ended.")
        if not isinstance(tensor, torch.Tensor):
            raise InvalidInputError(
                f"cannot watch {name!r}: expected a tensor, got {type(tensor).__name__}."
            )
        if not tensor.requires_grad:
            raise InvalidInputError(
                f"cannot watch {name!r}: the tensor does not require grad. Compute it from a "
                "tensor with requires_grad=True, outside torch.no_grad()."
            )
        if name in self._watched:
            raise InvalidInputError(
                f"a tensor named {name!r} is already watched; pick another name."
            )

        def hook(grad: torch.Tensor) -> None:
            if self._active:
                self.grads[name] = self._keep(grad)

        self._handles.append(tensor.register_hook(hook))
        self._watched[name] = tuple(tensor.shape)
        return tensor

    @property
    def names(self) -> list[str]:
        """Watched names, in the order they were watched."""
        return list(self._watched)

    def __getitem__(self, name: str) -> Any:
        return self.grads[name]

    def __contains__(self, name: object) -> bool:
        return name in self.grads

    def _explain(self, name: str) -> str:
        if name not in self._watched:
            watched = ", ".join(map(repr, self._watched)) or "none"
            return f"no tensor named {name!r} was watched (watched: {watched})."
        return (
            f"no gradient reached {name!r}: run the backward pass inside the block, and make "
            "sure the differentiated value depends on that tensor."
        )

    def _close(self) -> None:
        self._active = False
        for handle in reversed(self._handles):
            handle.remove()
        self._handles.clear()


@contextlib.contextmanager
def tensor_grads(
    *, reduce: Callable[[torch.Tensor], Any] | None = None, to_cpu: bool = False
) -> Iterator[TensorGrads]:
    """A block in which ``watch``-ed tensors record their gradients; hooks removed at the end.

    Args:
        reduce: applied to each gradient before it is kept (e.g. ``lambda g: g.norm()``).
        to_cpu: move recorded gradients to the CPU.

    Example:
        >>> import torch
        >>> x = torch.ones(3, requires_grad=True)
        >>> with tensor_grads(reduce=lambda g: g.sum()) as tg:
        ...     h = tg.watch("h", x * 2)
        ...     torch.autograd.grad((h ** 2).sum(), x)[0].tolist()
        [8.0, 8.0, 8.0]
        >>> float(tg["h"])   # d/dh sum(h^2) = 2h = 4 per element
        12.0
    """
    tg = TensorGrads(keeper(reduce, to_cpu))
    try:
        yield tg
    finally:
        tg._close()
