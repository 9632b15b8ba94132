"""What to explain: turn a ``target=`` argument into one score per sample (or K per sample).

A target is one of:

- ``None``: the predicted class (argmax of the output) of each sample;
- an ``int``: that class for every sample;
- a sequence or 1-D tensor of N ints: one class per sample (its length must be N);
- a 2-D (N, K) sequence or tensor of ints: K classes per sample;
- a callable ``output -> scores`` returning (N,) or (N, K) scores, for outputs that are not
  (N, classes) logits (segmentation: mean logit over a mask; detection: a box's score).

Everything in the package that scores targets (the explainers, the faithfulness metrics,
the hook checks) goes through :func:`score_targets`.

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
from typing import Any, TypeAlias

import torch

from modelaudit.errors import InvalidInputError

__all__ = [
    "Target",
    "TargetScorer",
    "reject_bool_targets",
    "resolve_class_targets",
    "score_targets",
    "target_scores",
]

Target: TypeAlias = (
    int
    | Sequence[int]
    | Sequence[Sequence[int]]
    | torch.Tensor
    | Callable[[torch.Tensor], torch.Tensor]
    | None
)


def _holds_bool(target: Any) -> bool:
    if isinstance(target, bool) or type(target).__name__ == "bool_":  # numpy.bool_ too
        return True
    if isinstance(target, torch.Tensor):
        return target.dtype == torch.bool
    if isinstance(target, list | tuple):
        return any(_holds_bool(t) for t in target)
    return False


def reject_bool_targets(target: Any) -> None:
    """Raise if ``target`` is or holds a bool: ``True`` would silently mean class 1.

    Raises:
        InvalidInputError: a bool (or bool tensor) as the target or inside a target list.

    Example:
        >>> reject_bool_targets([False, 0])
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: target [False, 0] holds a bool; ...
    """
    if _holds_bool(target):
        raise InvalidInputError(
            f"target {target!r} holds a bool; class targets are ints (True/False would "
            "silently mean class 1/0). Pass class indices, e.g. [0, 1], or int(flag)."
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
    reject_bool_targets(target)
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


class TargetScorer:
    """The explained targets, fixed on a first output, and their scores on later outputs.

    Made by :func:`score_targets`. Class targets are resolved once: ``target=None`` means
    the class predicted on the *first* output, also when later outputs are those of masked,
    noisy or perturbed inputs. A callable target is called on outputs of exactly N rows,
    ordered like the batch.

    Attributes:
        n: the batch size.
        single: one target per sample (scores (N,)) rather than K (scores (N, K)).
        k: targets per sample.
        indices: (N, K) class indices on the first output's device; None for a callable.
        softmax: class targets are scored by their softmax probability, not the raw output.
    """

    def __init__(
        self,
        n: int,
        *,
        single: bool,
        indices: torch.Tensor | None = None,
        fn: Callable[[Any], torch.Tensor] | None = None,
        k: int = 1,
        softmax: bool = False,
    ) -> None:
        self.n, self.single, self.indices, self.softmax = n, single, indices, softmax
        self._fn = fn
        self.k = indices.shape[1] if indices is not None else k

    @property
    def is_callable(self) -> bool:
        """Whether the target is a callable on the model output."""
        return self._fn is not None

    def fixed_target(self) -> Target:
        """The target as resolved: passing it on explains the same classes again."""
        if self._fn is not None:
            return self._fn
        assert self.indices is not None
        return self.indices[:, 0] if self.single else self.indices

    def class_indices(self, method: str) -> torch.Tensor:
        """(N, K) class indices; a callable target is an error for ``method``."""
        if self.indices is None:
            raise InvalidInputError(
                f"{method} needs class indices as target; a callable target is not supported."
            )
        return self.indices

    def classes(self) -> torch.Tensor | None:
        """The class indices as given back to users: (N,) or (N, K) long on the CPU."""
        if self.indices is None:
            return None
        return (self.indices[:, 0] if self.single else self.indices).cpu()

    def probabilities(self) -> TargetScorer:
        """The same class targets, scored by their softmax probability."""
        self.class_indices("scoring by probability")
        return TargetScorer(self.n, single=self.single, indices=self.indices, softmax=True)

    def rows(self, output: Any, samples: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K) scores of ``output``, whose row ``i`` is a variant of sample ``samples[i]``.

        ``samples=None`` means the rows are the batch itself. For a callable target the rows
        must be whole groups ``0..N-1`` in order (one call per group).
        """
        if self._fn is None:
            assert self.indices is not None
            idx = self.indices.to(output.device)
            if samples is not None:
                idx = idx[samples.to(output.device)]
            return (output.softmax(dim=1) if self.softmax else output).gather(1, idx)
        groups = 1 if samples is None else samples.numel() // self.n
        if samples is not None and (
            samples.numel() % self.n
            or not torch.equal(samples.cpu(), torch.arange(self.n).repeat(groups))
        ):
            raise AssertionError("callable targets need whole groups of N rows")  # internal
        parts = []
        for g in range(groups):
            s = _called(self._fn, output[g * self.n : (g + 1) * self.n], self.n)
            parts.append(s[:, None] if s.dim() == 1 else s)
        return parts[0] if groups == 1 else torch.cat(parts)


def _called(fn: Callable[[Any], torch.Tensor], output: Any, n: int | None) -> torch.Tensor:
    """``fn(output)``, checked to be (N,) or (N, K) scores."""
    scores = fn(output)
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (1, 2):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
        raise InvalidInputError(f"a callable target must return (N,) or (N, K) scores; got {got}")
    if n is not None and scores.shape[0] != n:
        raise InvalidInputError(
            f"a callable target returned {scores.shape[0]} scores for a batch of {n}"
        )
    return scores


def score_targets(
    output: Any,
    target: Target,
    n: int | None = None,
    *,
    first_sample: int = 0,
    softmax: bool = False,
) -> tuple[TargetScorer, torch.Tensor]:
    """Fix ``target`` on a first ``output`` and score it: the scorer and (N, K) scores.

    The one way the package scores targets: explainers, faithfulness metrics and
    :func:`target_scores` all go through it. Scores stay differentiable with respect to
    ``output``; the scorer scores later outputs (:meth:`TargetScorer.rows`) for the same
    classes.

    Args:
        output: the model output for the batch: (N, classes) for class targets, anything
            the callable accepts otherwise.
        target: see the module docstring.
        n: the batch size (default: ``output``'s first dimension).
        first_sample: batch position of ``output``'s first row (for messages only).
        softmax: score class targets by their softmax probability (callables: as they are).

    Raises:
        InvalidInputError: as :func:`resolve_class_targets`; a callable returning anything
            but (N,) or (N, K) scores; class targets for an output that is not a tensor.

    Example:
        >>> import torch
        >>> scorer, scores = score_targets(torch.tensor([[0.0, 3.0], [5.0, 1.0]]), None)
        >>> scores.T, scorer.classes()
        (tensor([[3., 5.]]), tensor([1, 0]))
        >>> later = torch.tensor([[9.0, 0.0], [0.0, 9.0]])  # the same classes are scored
        >>> scorer.rows(later).T
        tensor([[0., 0.]])
    """
    if callable(target):
        if n is None and isinstance(output, torch.Tensor):
            n = output.shape[0]
        scores = _called(target, output, n)
        single = scores.dim() == 1
        k = 1 if single else scores.shape[1]
        scorer = TargetScorer(scores.shape[0], single=single, fn=target, k=k, softmax=softmax)
        return scorer, scores[:, None] if single else scores
    if not isinstance(output, torch.Tensor):
        raise InvalidInputError(
            f"the model returned a {type(output).__name__}; class targets need (N, classes) "
            "logits. Pass target=callable(output) -> (N,) scores."
        )
    idx = resolve_class_targets(output.detach(), target, first_sample=first_sample)
    single = idx.dim() == 1
    indices = idx[:, None] if single else idx
    scorer = TargetScorer(output.shape[0], single=single, indices=indices, softmax=softmax)
    return scorer, scorer.rows(output)


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score(s) to explain: (N,) for one target per sample, (N, K) for K targets.

    Gradients flow from the result to ``output`` (:func:`score_targets`, flattened).

    Example:
        >>> import torch
        >>> target_scores(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), lambda out: out.sum(1))
        tensor([2., 4.])
    """
    scorer, scores = score_targets(output, target)
    return scores[:, 0] if scorer.single else scores
