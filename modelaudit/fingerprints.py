"""What a baseline value was measured on: model weights, data, method, layer, versions.

:func:`fingerprint` condenses the things that make a metric value what it is into a small
``dict[str, str]`` that a baseline entry stores next to the value. A later run computes
its own and :func:`describe_difference` says in plain words what changed ("model weights
differ from the baseline's (state_dict 3f2a… → 9b1c…); method, layer and data match"), so
a release gate that compares a new model with its predecessor says so instead of silently
mixing up "the model got worse" with "the data changed".

Keys (each present only when its part was given, except the versions, always present):

- ``model``: sha256 (16 hex digits) of the model's ``state_dict``: every entry's name,
  dtype, shape and bytes, in name order, read on the CPU (the same weights on another
  device give the same digest);
- ``data``: sha256 (16 hex digits) of the data tensor(s): dtype, shape and bytes (CPU,
  contiguous), in the order given;
- ``method``, ``layer``: the strings themselves (several layers joined with ``,``);
- ``modelaudit``, ``torch``, ``torchvision``: installed versions (``"none"`` when absent).

A foundation module: it imports no layer (maps are read by their attributes), and torch
only when a model or data is fingerprinted.

Example:
    >>> import torch
    >>> from modelaudit.fingerprints import describe_difference, fingerprint
    >>> _ = torch.manual_seed(0)
    >>> net, x = torch.nn.Linear(4, 2), torch.ones(2, 4)
    >>> old = fingerprint(net, x, method="gradcam", layer="0")
    >>> sorted(old)
    ['data', 'layer', 'method', 'model', 'modelaudit', 'torch', 'torchvision']
    >>> len(old["model"]), old == fingerprint(net, x.clone(), method="gradcam", layer="0")
    (16, True)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1.0)
    >>> new = fingerprint(net, x, method="gradcam", layer="0")
    >>> describe_difference(old, new)[0]
    ('model',)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from modelaudit._version import __version__
from modelaudit.errors import InvalidInputError

__all__ = [
    "FINGERPRINT_PARTS",
    "describe_difference",
    "fingerprint",
    "fingerprint_of_maps",
    "validate_fingerprint",
]

FINGERPRINT_PARTS = ("model", "method", "layer", "data", "versions")
"""The parts :func:`describe_difference` reports, in the order it names them."""
_VERSION_KEYS = ("modelaudit", "torch", "torchvision")
_DIGITS = 16

# module -> (cheap key of its tensors, digest): a session-scoped model is hashed once, and
# again only when a tensor is replaced or modified in place (its ``_version`` changes).
_MODEL_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def fingerprint(
    model: Any = None,
    data: Any = None,
    *,
    method: str | None = None,
    layer: str | Sequence[str] | None = None,
) -> dict[str, str]:
    """A small, stable description of what a metric was measured on.

    Args:
        model: an ``nn.Module`` (or a ``state_dict``-like mapping of names to tensors).
        data: a tensor, a numpy array, or a sequence of them (e.g. images and boxes).
        method: the explanation method's name.
        layer: the explained layer's name (a sequence of names for several layers).

    Returns:
        ``{"model": ..., "data": ..., "method": ..., "layer": ..., "modelaudit": ...,
        "torch": ..., "torchvision": ...}`` with only the given parts (versions always).

    Raises:
        InvalidInputError: a model without ``state_dict``, data that is not tensors, a
            method or layer that is not a string.

    Example:
        >>> fp = fingerprint(method="gradcam", layer=("layer3", "layer4"))
        >>> fp["method"], fp["layer"], fp["modelaudit"] == __import__("modelaudit").__version__
        ('gradcam', 'layer3,layer4', True)
    """
    out: dict[str, str] = {}
    if model is not None:
        out["model"] = _model_digest(model)
    if data is not None:
        out["data"] = _data_digest(data)
    if method is not None:
        if not isinstance(method, str):
            raise InvalidInputError(f"method must be a string, got {type(method).__name__}")
        out["method"] = method
    if layer is not None:
        out["layer"] = _layer_text(layer)
    out.update(_versions())
    return out


def fingerprint_of_maps(maps: Any, model: Any = None) -> dict[str, str]:
    """:func:`fingerprint` of heat maps' provenance: their method, layer and inputs.

    Args:
        maps: an ``Explanation`` (anything with ``method``, ``layer`` and ``inputs``).
        model: the explained model, if known.

    Raises:
        InvalidInputError: ``maps`` does not carry its provenance (a plain tensor).

    Example:
        >>> import torch
        >>> from modelaudit.explainers.explanation import Explanation
        >>> maps = Explanation(torch.zeros(1, 2, 2), method="gradcam", layer="conv",
        ...                    targets=None, inputs=torch.zeros(1, 3, 2, 2))
        >>> fp = fingerprint_of_maps(maps)
        >>> fp["method"], fp["layer"], len(fp["data"])
        ('gradcam', 'conv', 16)
    """
    try:
        method, layer, inputs = maps.method, maps.layer, maps.inputs
    except AttributeError:
        raise InvalidInputError(
            "maps= must be heat maps that remember how they were made (an Explanation, as "
            f"every modelaudit method returns), got {type(maps).__name__}"
        ) from None
    return fingerprint(model, inputs, method=method, layer=layer)


def validate_fingerprint(value: object, *, name: str = "fingerprint") -> dict[str, str]:
    """Return ``value`` as a ``dict[str, str]``; raise naming ``name`` for anything else.

    Example:
        >>> validate_fingerprint({"model": "ab12"})
        {'model': 'ab12'}
        >>> validate_fingerprint({"model": 3})
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: fingerprint must map strings to strings (as modelaudit.fingerprint() returns); 'model' maps to int
    """
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{name} must be a dict of strings (as modelaudit.fingerprint() returns), "
            f"got {type(value).__name__}"
        )
    for key, item in value.items():
        if not isinstance(key, str):
            bad = f"key {key!r} is a {type(key).__name__}"
        elif not isinstance(item, str):
            bad = f"{key!r} maps to {type(item).__name__}"
        else:
            continue
        raise InvalidInputError(
            f"{name} must map strings to strings (as modelaudit.fingerprint() returns); {bad}"
        )
    return dict(value)


def describe_difference(
    stored: Mapping[str, str], current: Mapping[str, str]
) -> tuple[tuple[str, ...], str]:
    """What differs between two fingerprints: the parts, and a sentence naming them.

    Only keys present in both are compared (an old baseline without a fingerprint, or a
    run that did not say which model it used, compares nothing). The parts are those of
    :data:`FINGERPRINT_PARTS` (the three versions count as one part, ``"versions"``).

    Example:
        >>> old = {"model": "3f2a9c0d11112222", "method": "gradcam", "layer": "l4",
        ...        "data": "aa", "torch": "2.3.0"}
        >>> new = dict(old, model="9b1c55e0ffff0000")
        >>> describe_difference(old, new)
        (('model',), "model weights differ from the baseline's (state_dict 3f2a… → 9b1c…); method, layer and data match")
        >>> describe_difference(old, dict(old, torch="2.4.1", layer="l3"))[1]
        'layer differs (l4 → l3); versions differ (torch 2.3.0 → 2.4.1); model, method and data match'
        >>> describe_difference(old, old)
        ((), '')
    """
    common = [k for k in stored if k in current]
    changed = [k for k in common if stored[k] != current[k]]
    parts: list[str] = []
    texts: list[str] = []
    for part in FINGERPRINT_PARTS:
        keys = _VERSION_KEYS if part == "versions" else (part,)
        diff = [k for k in keys if k in changed]
        if diff:
            parts.append(part)
            texts.append(_difference_text(part, [(k, stored[k], current[k]) for k in diff]))
    if not parts:
        return (), ""
    same = [p for p in FINGERPRINT_PARTS[:4] if p in common and p not in parts]
    if same:
        listed = same[0] if len(same) == 1 else f"{', '.join(same[:-1])} and {same[-1]}"
        texts.append(f"{listed} match{'es' if len(same) == 1 else ''}")
    return tuple(parts), "; ".join(texts)


def _difference_text(part: str, diffs: list[tuple[str, str, str]]) -> str:
    if part == "model":
        old, new = diffs[0][1], diffs[0][2]
        return f"model weights differ from the baseline's (state_dict {old[:4]}… → {new[:4]}…)"
    if part == "data":
        return f"data differ from the baseline's (sha256 {diffs[0][1][:4]}… → {diffs[0][2][:4]}…)"
    if part == "versions":
        return "versions differ (" + ", ".join(f"{k} {a} → {b}" for k, a, b in diffs) + ")"
    return f"{part} differs ({diffs[0][1]} → {diffs[0][2]})"


def _versions() -> dict[str, str]:
    out = {"modelaudit": __version__}
    for package in ("torch", "torchvision"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "none"
    return out


def _layer_text(layer: object) -> str:
    if isinstance(layer, str):
        return layer
    if isinstance(layer, Sequence) and all(isinstance(x, str) for x in layer):
        return ",".join(layer)
    raise InvalidInputError(
        f"layer must be a string or a sequence of strings, got {type(layer).__name__}"
    )


def _update_with_tensor(digest: Any, tensor: Any) -> None:
    """Feed a tensor's dtype, shape and bytes (CPU, contiguous) to ``digest``."""
    import torch

    t = tensor.detach()
    if t.device.type == "meta":
        raise InvalidInputError("cannot fingerprint a tensor on the 'meta' device (no data)")
    t = t.cpu().contiguous()
    digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)


def _model_digest(model: Any) -> str:
    import torch

    state = model.state_dict() if hasattr(model, "state_dict") else model
    if not isinstance(state, Mapping):
        raise InvalidInputError(
            f"model must be an nn.Module or a state_dict, got {type(model).__name__}"
        )
    cacheable = isinstance(model, torch.nn.Module)
    try:
        key = tuple(
            (name, t._version, t.data_ptr(), t.dtype, tuple(t.shape), str(t.device))
            if isinstance(t, torch.Tensor)
            else (name, repr(t))
            for name, t in sorted(state.items())
        )
    except RuntimeError:  # inference tensors have no version counter: never cached
        key, cacheable = (), False
    if cacheable and (hit := _MODEL_CACHE.get(model)) is not None and hit[0] == key:
        return hit[1]
    digest = hashlib.sha256()
    for name, value in sorted(state.items()):
        digest.update(f"{name}|".encode())
        if isinstance(value, torch.Tensor):
            _update_with_tensor(digest, value)
        else:
            digest.update(repr(value).encode())
    result = digest.hexdigest()[:_DIGITS]
    if cacheable:
        _MODEL_CACHE[model] = (key, result)
    return result


def _data_digest(data: Any) -> str:
    import numpy as np
    import torch

    items = list(data) if isinstance(data, list | tuple) else [data]
    digest = hashlib.sha256()
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(np.ascontiguousarray(item))
        if not isinstance(item, torch.Tensor):
            raise InvalidInputError(
                "data must be a tensor, a numpy array or a sequence of them, got "
                f"{type(item).__name__}" + (f" at position {i}" if len(items) > 1 else "")
            )
        _update_with_tensor(digest, item)
    return digest.hexdigest()[:_DIGITS]
