"""The graph probe of ``pass_size="auto"``, paid once per model, layers and sample shape.

Under ``pass_size="auto"`` the first pass of a call measures the bytes its autograd graph
saves (:class:`~modelaudit.explainers.engine.GraphBytes`) to size the passes after it. What
a sample costs depends on the model above the layer, the layer(s), the shape of one sample,
its dtype and device, and autocast — not on the values. This cache keeps the measured bytes
per sample under that key, so the next call of a stream of same-shaped batches starts with
passes of the right size and measures nothing.

- Entries hang off the model through a weak reference: a deleted model frees its entries.
- At most :data:`MAX_ENTRIES` keys per model (the least recently used one is dropped).
- Each entry remembers the identity and shape of the model's parameters; a model whose
  modules were replaced or whose parameters changed shape is probed again.

A stale entry could only size passes wrongly (memory or speed), never change a map: the
maps do not depend on the pass size.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers import _probe_cache as pc
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
    >>> key = pc.probe_key(torch.zeros(4, 1, 8, 8), {"1": net[1]})
    >>> pc.put(net, key, 512)
    >>> pc.get(net, key), pc.get(net, pc.probe_key(torch.zeros(4, 1, 9, 9), {"1": net[1]}))
    (512, None)
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Mapping

import torch
from torch import nn

__all__ = ["MAX_ENTRIES", "clear", "entries", "get", "probe_key", "put"]

#: Keys remembered per model (layers x sample shapes x dtypes x devices).
MAX_ENTRIES = 16

_Entries = OrderedDict[Hashable, tuple[int, int]]  # key -> (parameter signature, bytes)

_CACHE: weakref.WeakKeyDictionary[nn.Module, _Entries] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def probe_key(inputs: torch.Tensor, layers: Mapping[str, nn.Module]) -> Hashable:
    """What the graph of a sample depends on, besides the model: layers, shape, dtype, device.

    Example:
        >>> import torch, torch.nn as nn
        >>> relu = nn.ReLU()
        >>> probe_key(torch.zeros(4, 3, 8, 8), {"r": relu}) == probe_key(
        ...     torch.zeros(9, 3, 8, 8), {"r": relu})  # the batch size does not matter
        True
    """
    device = inputs.device
    return (
        tuple((name, id(m)) for name, m in layers.items()),
        tuple(inputs.shape[1:]),
        inputs.dtype,
        device,
        torch.is_autocast_enabled(device.type),
    )


def _signature(model: nn.Module) -> int:
    """Identity and shape of every parameter: changes when modules are replaced."""
    return hash(tuple((id(p), tuple(p.shape)) for p in model.parameters()))


def get(model: nn.Module, key: Hashable) -> int | None:
    """The graph bytes per sample measured for ``model`` under ``key``, or None.

    Example:
        >>> import torch.nn as nn
        >>> get(nn.Linear(2, 2), ("never", "measured")) is None
        True
    """
    with _LOCK:
        entries = _CACHE.get(model)
        found = entries.get(key) if entries is not None else None
        if found is None or entries is None:
            return None
        if found[0] != _signature(model):  # modules replaced since: measure again
            del entries[key]
            return None
        entries.move_to_end(key)
        return found[1]


def put(model: nn.Module, key: Hashable, per_sample: int) -> None:
    """Remember ``per_sample`` graph bytes for ``model`` under ``key``.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Linear(2, 2)
        >>> put(net, "k", 64); get(net, "k")
        64
    """
    with _LOCK:
        entries = _CACHE.get(model)
        if entries is None:
            entries = _CACHE[model] = OrderedDict()
        entries[key] = (_signature(model), int(per_sample))
        entries.move_to_end(key)
        while len(entries) > MAX_ENTRIES:
            entries.popitem(last=False)


def entries() -> int:
    """How many (model, key) entries the cache holds (models still alive only).

    Example:
        >>> clear(); entries()
        0
    """
    with _LOCK:
        return sum(len(e) for e in _CACHE.values())


def clear() -> None:
    """Forget every measurement: the next ``pass_size="auto"`` call of each model probes.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Linear(2, 2)
        >>> put(net, "k", 64); clear(); get(net, "k") is None
        True
    """
    with _LOCK:
        _CACHE.clear()
