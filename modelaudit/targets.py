"""What to explain: turn a ``target=`` argument into one score per sample (or K per sample).

A target is one of:

- ``None``: the predicted class (argmax of the output) of each sample;
- an ``int``: that class for every sample;
- a sequence or 1-D tensor of N ints: one class per sample (its length must be N);
- a 2-D (N, K) sequence or tensor of ints: K classes per sample;
- a callable ``output -> scores`` returning (N,) or (N, K) scores, for outputs that are not
  (N, classes) logits (segmentation: mean logit over a mask; detection: a box's score).

Example:
    >>> import torch
    >>> from modelaudit.targets import target_scores
    >>> logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    >>> target_scores(logits, None)
    tensor([2., 3.])
    >>> target_scores(logits, [2, 2])
    tensor([1., 1.])
    >>> target_scores(logits, [[0, 1], [1, 2]])
    tensor([[0., 2.],
            [0., 1.]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import torch

from modelaudit.errors import InvalidInputError

__all__ = ["Target", "resolve_class_targets", "target_scores"]

Target: TypeAlias = (
    int
    | Sequence[int]
    | Sequence[Sequence[int]]
    | torch.Tensor
    | Callable[[torch.Tensor], torch.Tensor]
    | None
)


def resolve_class_targets(
    output: torch.Tensor, target: Target, *, first_sample: int = 0
) -> torch.Tensor:
    """Return class indices as a long tensor of shape (N,) or (N, K) on ``output``'s device.

    ``first_sample`` is the batch position of ``output``'s first row (for messages only,
    when a batch is processed in parts).

    Raises:
        InvalidInputError: the output is not (N, classes), the target has the wrong length
            or shape, or a class index is out of range (the message names the sample).
    """
    if callable(target):
        raise TypeError("a callable target gives scores, not class indices; use target_scores")
    if output.dim() != 2:
        raise InvalidInputError(
            f"class targets need a model output of shape (N, classes); got {tuple(output.shape)}. "
            "Pass target=callable(output) -> (N,) scores for other outputs."
        )
    n, classes = output.shape
    if target is None:
        return output.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise InvalidInputError(f"target must be a class index, not {target!r}")
    if isinstance(target, int):
        idx = torch.full((n,), target, dtype=torch.long, device=output.device)
    else:
        try:
            idx = torch.as_tensor(target, device=output.device)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"target must be an int, N ints or (N, K) ints; got {target!r}"
            ) from exc
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise InvalidInputError(
                f"target must hold integer class indices; got dtype {idx.dtype}"
            )
        idx = idx.long()
        if idx.dim() == 0:
            idx = idx.expand(n).clone()
        if idx.dim() not in (1, 2) or idx.shape[0] != n:
            raise InvalidInputError(
                f"target has shape {tuple(idx.shape)} but the batch has {n} samples; "
                f"give one class per sample ({n},) or K per sample ({n}, K)."
            )
    bad = (idx < 0) | (idx >= classes)
    if bad.any():
        where = bad.nonzero()[0].tolist()
        raise InvalidInputError(
            f"target class {idx[tuple(where)].item()} for sample {where[0] + first_sample} is "
            f"out of range: the model has {classes} classes (valid: 0..{classes - 1})."
        )
    return idx


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score(s) to explain: (N,) for one target per sample, (N, K) for K targets.

    Gradients flow from the result to ``output``.
    """
    n = output.shape[0]
    if callable(target):
        scores = target(output)
        if (
            not isinstance(scores, torch.Tensor)
            or scores.dim() not in (1, 2)
            or scores.shape[0] != n
        ):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise InvalidInputError(
                f"a callable target must return (N,) or (N, K) scores with N={n}; got {got}"
            )
        return scores
    idx = resolve_class_targets(output, target)
    if idx.dim() == 1:
        return output.gather(1, idx[:, None])[:, 0]
    return output.gather(1, idx)
