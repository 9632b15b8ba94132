"""Which part of a model's output is scored: logits out of dicts, dataclasses and tuples.

Many models return more than a tensor: Hugging Face models a ``ModelOutput`` with
``.logits``, torchvision segmentation models ``{"out": ..., "aux": ...}``, others a tuple.
Class targets are scored on one (N, classes) tensor, chosen by :func:`select_output`:

- automatically (``select=None``): a tensor as it is; the ``"logits"`` (else ``"out"``) entry
  of a mapping (``ModelOutput`` is one); the ``.logits`` attribute of an object (a
  dataclass); the only tensor of a tuple, list or mapping;
- explicitly: a key or attribute name (``"pooled_logits"``) or a tuple index (``0``), given
  with the target as ``target=from_output("pooled_logits", labels)``, which every function
  taking a ``target=`` accepts (explainers, faithfulness metrics, hook checks).

A tensor is never selected from: selecting is idempotent, so an output already selected
goes through again unchanged. Anything else (detections, several heads at once) is scored by
a callable target, which receives the output as the model returned it.

Example:
    >>> import torch
    >>> from modelaudit.outputs import select_output
    >>> logits = torch.tensor([[1.0, 2.0]])
    >>> select_output({"logits": logits, "hidden": torch.zeros(1, 4)}) is logits
    True
    >>> select_output((logits,)) is logits
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import torch

from modelaudit.errors import InvalidInputError

__all__ = ["AUTO_KEYS", "FromOutput", "OutputSelector", "from_output", "select_output"]

#: What an explicit selector may be: a key or attribute name, or a tuple index.
OutputSelector: TypeAlias = str | int

#: Entries a mapping's logits are found under without a selector, in order.
AUTO_KEYS = ("logits", "out")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    return type(value).__name__


def _fields(output: Any) -> dict[str, Any]:
    """The named parts of ``output``: a mapping's items, a dataclass's or object's fields."""
    if isinstance(output, Mapping):
        return {str(k): v for k, v in output.items()}
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    return {k: v for k, v in getattr(output, "__dict__", {}).items() if not k.startswith("_")}


def _is_detections(output: Any) -> bool:
    return (
        isinstance(output, list | tuple)
        and len(output) > 0
        and all(isinstance(o, Mapping) and "boxes" in o for o in output)
    )


def _available(output: Any) -> str:
    if isinstance(output, list | tuple):
        return f"a {type(output).__name__} of [{', '.join(_describe(v) for v in output)}]"
    parts = _fields(output)
    if not parts:
        return f"a {type(output).__name__} with no fields"
    shown = ", ".join(f"{k!r}: {_describe(v)}" for k, v in parts.items())
    return f"a {type(output).__name__} with {{{shown}}}"


def _missing(output: Any, select: OutputSelector | None) -> InvalidInputError:
    if _is_detections(output):
        return InvalidInputError(
            f"the model returned detections (a list of {len(output)} per-image dicts with "
            "'boxes', 'labels', 'scores'): class targets cannot score them. Explain one "
            "detection per image with target=modelaudit.detection_target(boxes, labels)."
        )
    what = "no logits found" if select is None else f"no part {select!r} found"
    return InvalidInputError(
        f"{what} in the model output, {_available(output)}. Choose the scored tensor with "
        "target=modelaudit.from_output(<key, attribute or index>, target), or pass a "
        "callable target output -> (N,) scores."
    )


def select_output(output: Any, select: OutputSelector | None = None) -> Any:
    """The tensor of ``output`` that class targets score (see the module docstring).

    Args:
        output: what the model returned.
        select: ``None`` (automatic), a key or attribute name, or a tuple/list index.

    Raises:
        InvalidInputError: nothing matches; the message lists the output's keys, attributes
            or elements (and, for detections, says which target to use).

    Example:
        >>> import dataclasses, torch
        >>> @dataclasses.dataclass
        ... class Out:
        ...     logits: torch.Tensor
        ...     hidden: torch.Tensor
        >>> select_output(Out(torch.ones(1, 2), torch.zeros(1, 3))).shape
        torch.Size([1, 2])
        >>> select_output(Out(torch.ones(1, 2), torch.zeros(1, 3)), "hidden").shape
        torch.Size([1, 3])
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(select, int) and not isinstance(select, bool):
        indexable = isinstance(output, Sequence) and not isinstance(output, str | Mapping)
        if indexable and -len(output) <= select < len(output):
            return output[select]
        raise _missing(output, select)
    if isinstance(select, str):
        parts = _fields(output)
        if select in parts:
            return parts[select]
        if hasattr(output, select) and not select.startswith("_"):
            return getattr(output, select)
        raise _missing(output, select)
    if select is not None:
        raise InvalidInputError(
            f"an output selector is a key or attribute name (str) or an index (int); got {select!r}"
        )
    return _automatic(output)


def _automatic(output: Any) -> torch.Tensor:
    """The logits of ``output`` by the automatic rule."""
    if isinstance(output, list | tuple):
        tensors = [v for v in output if isinstance(v, torch.Tensor)]
        if len(tensors) == 1 and len(output) == 1:
            return tensors[0]
        raise _missing(output, None)
    parts = _fields(output)
    for key in AUTO_KEYS:
        if isinstance(parts.get(key), torch.Tensor):
            return parts[key]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    tensors = [v for v in parts.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1:
        return tensors[0]
    raise _missing(output, None)


@dataclasses.dataclass(frozen=True)
class FromOutput:
    """A target scored on a chosen part of the model output (made by :func:`from_output`).

    Attributes:
        select: the key, attribute name or index of the scored part.
        target: the target proper (class indices, ``None``, or a callable on that part).
    """

    select: OutputSelector
    target: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.select, bool) or not isinstance(self.select, str | int):
            raise InvalidInputError(
                "from_output(select, target): select is a key or attribute name (str) or "
                f"an index (int); got {self.select!r}"
            )
        if isinstance(self.target, FromOutput):
            raise InvalidInputError("from_output(...) cannot wrap another from_output(...)")


def from_output(select: OutputSelector, target: Any = None) -> FromOutput:
    """Score ``target`` on the part ``select`` of the model output.

    Pass the result as ``target=`` anywhere a target is accepted. ``target`` is what it
    would be for a model returning that part alone: ``None`` (the predicted class), class
    indices, or a callable receiving the selected part.

    Example:
        >>> import torch
        >>> from modelaudit.targets import target_scores
        >>> out = {"logits": torch.tensor([[0.0, 5.0]]), "aux": torch.tensor([[7.0, 1.0]])}
        >>> target_scores(out, from_output("aux", 0))
        tensor([7.])
    """
    return FromOutput(select, target)
