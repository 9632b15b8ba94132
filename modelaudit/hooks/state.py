"""Save and restore everything an audit may touch on a model.

:func:`preserved_state` snapshots the train/eval flag of every submodule, the
``requires_grad`` flag and ``.grad`` of every parameter (and, on request, parameter and
buffer values) and puts them back in a ``finally``, so the model comes back exactly as it
was even when the audited code raises.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.hooks.state import preserved_state
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with preserved_state(net, eval_mode=True):
    ...     net.training
    False
    >>> net.training, net[1].training
    (True, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from torch import nn

from modelaudit.hooks.layers import check_module

__all__ = ["ModelState", "preserved_state"]


@dataclasses.dataclass
class ModelState:
    """A snapshot of a model's mutable state; :meth:`restore` puts it back."""

    training: dict[str, bool]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]
    values: dict[str, torch.Tensor] | None
    # the ``.grad`` tensor objects themselves, so restore() gives back the same objects
    # (with their saved values) rather than copies: code holding a reference keeps working
    grad_tensors: dict[str, torch.Tensor | None] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def _grad_for(self, name: str) -> torch.Tensor | None:
        """The saved gradient: the original tensor with its saved values, or a copy."""
        saved = self.grads[name]
        if saved is None:
            return None
        original = self.grad_tensors.get(name)
        if original is not None and original.shape == saved.shape and original.dtype == saved.dtype:
            original.detach().copy_(saved)  # undo in-place changes (e.g. accumulation)
            return original
        return saved.clone()

    @classmethod
    def of(cls, model: nn.Module, *, values: bool = False) -> ModelState:
        """Snapshot ``model``; with ``values=True`` also copy parameters and buffers."""
        params = dict(model.named_parameters(remove_duplicate=False))
        return cls(
            training={n: m.training for n, m in model.named_modules(remove_duplicate=False)},
            requires_grad={n: p.requires_grad for n, p in params.items()},
            grads={
                n: None if p.grad is None else p.grad.detach().clone() for n, p in params.items()
            },
            values={n: t.detach().clone() for n, t in model.state_dict(keep_vars=True).items()}
            if values
            else None,
            grad_tensors={n: p.grad for n, p in params.items()},
        )

    def restore(self, model: nn.Module) -> None:
        """Put the snapshot back onto ``model`` (the same model it was taken from)."""
        modules = dict(model.named_modules(remove_duplicate=False))
        for name, flag in self.training.items():
            if name in modules:
                modules[name].training = flag
        with torch.no_grad():
            for name, p in model.named_parameters(remove_duplicate=False):
                if name in self.requires_grad:
                    p.requires_grad_(self.requires_grad[name])
                    p.grad = self._grad_for(name)
            if self.values is not None:
                current = model.state_dict(keep_vars=True)
                for name, saved in self.values.items():
                    if name in current:
                        current[name].data.copy_(saved)


@contextlib.contextmanager
def preserved_state(
    model: nn.Module, *, eval_mode: bool = False, values: bool = False
) -> Iterator[ModelState]:
    """Run a block with ``model``'s state saved and restored afterwards, always.

    Args:
        model: the model to protect.
        eval_mode: put the whole model in eval mode for the block (BatchNorm in train mode
            mixes samples of a batch; Dropout makes maps random).
        values: also restore parameter and buffer values (costs a copy of the weights).
    """
    state = ModelState.of(check_module(model, "preserved_state"), values=values)
    try:
        if eval_mode:
            model.eval()
        yield state
    finally:
        state.restore(model)
