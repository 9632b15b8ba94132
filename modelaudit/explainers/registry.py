"""Pick an explanation method by name, and add your own.

Every method is a function ``(model, inputs, target=None, layer=None, *, reshape=None,
relu=True, normalize=True, upsample=True, **options) -> Tensor``. Names are matched
ignoring case, ``-``, ``_`` and spaces, and ``++`` reads as ``pp``: ``"Grad-CAM++"``,
``"gradcam++"`` and ``"gradcam_pp"`` are the same method.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.registry import (
    ...     available_methods, explain, register_method, unregister_method)
    >>> "gradcam" in available_methods()
    True
    >>> @register_method("my_ones")
    ... def my_ones(model, inputs, target=None, layer=None, **kw):
    ...     return torch.ones(inputs.shape[0], *inputs.shape[-2:])
    >>> explain("My-Ones", nn.Identity(), torch.zeros(2, 3, 4, 4)).shape
    torch.Size([2, 4, 4])
    >>> unregister_method("my_ones")
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from modelaudit.errors import InvalidInputError

__all__ = ["available_methods", "explain", "get_method", "register_method", "unregister_method"]

F = TypeVar("F", bound=Callable[..., torch.Tensor])

_METHODS: dict[str, tuple[str, Callable[..., torch.Tensor]]] = {}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("++", "pp"))


def register_method(name: str, *, replace: bool = False) -> Callable[[F], F]:
    """Decorator: make a method available to :func:`explain` under ``name``.

    Raises:
        InvalidInputError: the name is empty or taken (pass ``replace=True`` to override).

    Example:
        >>> import torch
        >>> @register_method("zeros")
        ... def zeros(model, inputs, target=None, layer=None, **kw):
        ...     return torch.zeros(inputs.shape[0], *inputs.shape[-2:])
        >>> get_method("Zeros") is zeros
        True
        >>> unregister_method("zeros")
    """
    key = _key(name) if isinstance(name, str) else ""
    if not key:
        raise InvalidInputError(f"a method name needs letters or digits; got {name!r}")

    def decorate(fn: F) -> F:
        if key in _METHODS and not replace:
            raise InvalidInputError(
                f"an explanation method named {_METHODS[key][0]!r} is already registered; "
                "pass replace=True to override it."
            )
        _METHODS[key] = (name, fn)
        return fn

    return decorate


def unregister_method(name: str) -> None:
    """Remove a method added with :func:`register_method` (unknown names are ignored).

    Example:
        >>> register_method("tmp")(lambda *a, **k: None) is not None
        True
        >>> unregister_method("tmp"); "tmp" in available_methods()
        False
    """
    _METHODS.pop(_key(name), None)


def available_methods() -> list[str]:
    """Names of the registered methods, sorted.

    Example:
        >>> available_methods()[:3]
        ['ablationcam', 'cam', 'eigencam']
    """
    return sorted(name for name, _ in _METHODS.values())


def get_method(name: str) -> Callable[..., torch.Tensor]:
    """The method registered under ``name``.

    Raises:
        InvalidInputError: unknown name (the message lists the closest ones).

    Example:
        >>> get_method("Grad-CAM++").__name__
        'gradcam_pp'
    """
    hit = _METHODS.get(_key(name)) if isinstance(name, str) else None
    if hit is None:
        names = available_methods()
        close = difflib.get_close_matches(str(name).lower(), names, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InvalidInputError(
            f"unknown explanation method {name!r}.{hint} Available: {', '.join(names)}."
        )
    return hit[1]


def explain(
    method: str,
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    layer: Any = None,
    **options: Any,
) -> torch.Tensor:
    """Run the method named ``method``: ``explain("gradcam", model, x, 3, "layer4")``.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> explain("Grad-CAM", net, x, 3, "1").shape
        torch.Size([2, 16, 16])
    """
    return get_method(method)(model, inputs, target, layer, **options)
