"""Maps that remember how they were made: method, layer, targets, inputs and options.

Every built-in method returns an :class:`Explanation`: a ``torch.Tensor`` (use it as one)
with read-only attributes that say how it was made, so a check can report them (or explain
again the same way) without being told. Operations on it return plain tensors, as they do for
``nn.Parameter``, so there is no cost per operation and no provenance where it would be
wrong: ``maps[0]``, ``maps * 2``, ``maps.mean()``, ``maps.detach()``, ``maps.to(...)`` are
plain ``torch.Tensor``; a method that returns the tensor itself unchanged (``.cpu()`` on a
CPU map, ``.contiguous()`` on a contiguous one) returns the Explanation. ``copy.deepcopy``
and ``pickle`` keep the attributes.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers import gradcam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 5))
    >>> maps = gradcam(net, torch.rand(2, 3, 8, 8), target=[1, 4])
    >>> maps.method, maps.layer, maps.targets.tolist(), maps.inputs.shape
    ('gradcam', '1', [1, 4], torch.Size([2, 3, 8, 8]))
    >>> type(maps[0]).__name__, type(maps * 2).__name__
    ('Tensor', 'Tensor')
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

__all__ = ["Explanation", "explanation_of"]

Layer = str | tuple[str, ...] | None


class Explanation(torch.Tensor):
    """Heat maps (a tensor) with their provenance.

    Attributes:
        method: the registry name of the method (``"gradcam_pp"`` also when called as
            ``explain("Grad-CAM++", ...)``).
        layer: the qualified name of the explained layer, a tuple of names for several
            layers, or ``None`` for methods without a layer (input gradients).
        targets: the explained class indices, (N,) or (N, K) long on the CPU (the predicted
            classes for ``target=None``); ``None`` for a callable target.
        inputs: the images explained: the caller's tensor, detached (not a copy).
        grid: ``(h, w)`` of the explained layer's feature map before upsampling (the
            finest grid for several layers; the input size for methods without a layer):
            what an ideal map can resolve (:func:`modelaudit.localization_ceiling`).
        predicted: (N,) the model's top class on each image (from the explaining pass), on
            the CPU; None when the output is not (N, classes) or the method has no pass.
        confidence: (N,) the softmax probability of ``predicted``; None likewise.
        class_names: the model's class names (its ``class_names`` attribute, or a
            Hugging Face ``config.id2label``), indexed by class; None when it has none.
        options: the keyword options of the call, as given (defaults not filled in), e.g.
            ``{"reshape": vit_reshape, "pass_size": 2}``: ``explain(maps.method, model,
            x, maps.targets, maps.layer, **maps.options)`` explains again the same way.

    Example:
        >>> import torch
        >>> maps = Explanation(torch.zeros(1, 2, 2), method="mine", layer="conv",
        ...                    targets=torch.tensor([3]), inputs=torch.zeros(1, 3, 2, 2))
        >>> maps
        Explanation([[[0., 0.],
                      [0., 0.]]], method='mine', layer='conv')
        >>> maps.sum(), maps.targets
        (tensor(0.), tensor([3]))
    """

    # plain tensors out of every operation, at no cost per operation (as nn.Parameter)
    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    _method: str
    _layer: Layer
    _targets: torch.Tensor | None
    _inputs: torch.Tensor
    _options: dict[str, Any]
    _grid: tuple[int, int] | None
    _predicted: torch.Tensor | None
    _confidence: torch.Tensor | None
    _class_names: tuple[str, ...] | None

    def __new__(
        cls,
        maps: torch.Tensor,
        *,
        method: str,
        layer: Layer,
        targets: torch.Tensor | None,
        inputs: torch.Tensor,
        options: Mapping[str, Any] | None = None,
        grid: tuple[int, int] | None = None,
        predicted: torch.Tensor | None = None,
        confidence: torch.Tensor | None = None,
        class_names: tuple[str, ...] | None = None,
    ) -> Explanation:
        self = torch.Tensor._make_subclass(cls, maps.detach(), False)  # shares the storage
        self._method = method
        self._layer = layer
        self._targets = targets
        self._inputs = inputs.detach()
        self._options = dict(options or {})
        self._grid = None if grid is None else (int(grid[0]), int(grid[1]))
        self._predicted = predicted
        self._confidence = confidence
        self._class_names = None if class_names is None else tuple(class_names)
        return self

    @property
    def method(self) -> str:
        """The registry name of the method."""
        return self._method

    @property
    def layer(self) -> Layer:
        """The explained layer's name, names (tuple) or None."""
        return self._layer

    @property
    def targets(self) -> torch.Tensor | None:
        """The class indices explained, (N,) or (N, K), on the CPU; None for a callable."""
        return self._targets

    @property
    def inputs(self) -> torch.Tensor:
        """The images explained (detached, shared with the caller's tensor)."""
        return self._inputs

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(h, w)`` of the explained layer's map before upsampling (None if unknown)."""
        return self._grid

    @property
    def predicted(self) -> torch.Tensor | None:
        """(N,) the model's top class per image, on the CPU (None if unknown)."""
        return self._predicted

    @property
    def confidence(self) -> torch.Tensor | None:
        """(N,) the softmax probability of :attr:`predicted` (None if unknown)."""
        return self._confidence

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The model's class names, indexed by class (None if it has none)."""
        return self._class_names

    @property
    def options(self) -> Mapping[str, Any]:
        """The keyword options of the call, as given (read-only)."""
        return MappingProxyType(self._options)

    def __repr__(self) -> str:  # type: ignore[override]
        text = super().__repr__()
        return f"{text[:-1]}, method={self._method!r}, layer={self._layer!r})"

    def _provenance(self) -> dict[str, Any]:
        return {
            "method": self._method,
            "layer": self._layer,
            "targets": self._targets,
            "inputs": self._inputs,
            "options": self._options,
            "grid": self._grid,
            "predicted": self._predicted,
            "confidence": self._confidence,
            "class_names": self._class_names,
        }

    def __deepcopy__(self, memo: dict[int, Any]) -> Explanation:
        if id(self) in memo:
            return memo[id(self)]
        maps = self.detach().clone(memory_format=torch.preserve_format)
        result = Explanation(maps, **copy.deepcopy(self._provenance(), memo))
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto: Any) -> tuple[Any, ...]:
        state = self._provenance()
        try:  # options may hold what pickle cannot (a lambda as reshape=): drop them then
            pickle.dumps(self._options, protocol=proto)
        except Exception:
            state["options"] = {}
        return (_rebuild, (self.detach(), state))


def _rebuild(maps: torch.Tensor, provenance: dict[str, Any]) -> Explanation:
    return Explanation(maps, **provenance)


def explanation_of(maps: Any) -> Explanation | None:
    """``maps`` if it is an :class:`Explanation` (it carries its provenance), else None.

    Example:
        >>> import torch
        >>> explanation_of(torch.zeros(1, 2, 2)) is None
        True
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> maps = Explanation(x[:, 0], method="m", layer=None, targets=None, inputs=x)
        >>> explanation_of(maps).method
        'm'
    """
    return maps if isinstance(maps, Explanation) else None
