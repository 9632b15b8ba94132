"""Find layers of a model by name, glob pattern, module class, instance or predicate.

Every function that takes ``layer=`` / ``layers=`` in modelaudit resolves it here, so the
rules and the error messages are the same everywhere:

- ``"features.8"``: an exact qualified name, as in ``model.named_modules()``;
- ``"layer4.*"``: a glob (``fnmatch``) over qualified names; ``*`` also crosses dots;
- ``nn.Conv2d``: every module of that class;
- a module instance that belongs to the model;
- a predicate ``(name, module) -> bool``;
- a list or tuple of any of these (the union, in model order).

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.hooks.layers import resolve_layers
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    >>> list(resolve_layers(net, nn.Conv2d))
    ['0', '2']
    >>> resolve_layers(net, "3")
    Traceback (most recent call last):
    ...
    modelaudit.errors.LayerNotFoundError: model has no layer named '3'; closest names: '0', '1', '2'. ...
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from typing import TypeAlias, cast

from torch import nn

from modelaudit.errors import InvalidInputError, LayerNotFoundError

__all__ = [
    "LayerSpec",
    "closest_layer_names",
    "layer_names",
    "leaf_layers",
    "resolve_layer",
    "resolve_layers",
]

LayerPredicate: TypeAlias = Callable[[str, nn.Module], bool]
SingleLayerSpec: TypeAlias = str | type[nn.Module] | nn.Module | LayerPredicate
LayerSpec: TypeAlias = SingleLayerSpec | Iterable[SingleLayerSpec]

_GLOB_CHARS = frozenset("*?[")

_ACCEPTED = (
    "a layer is a qualified name ('layer4.1'), a glob pattern ('layer4.*'), an nn.Module "
    "class (nn.Conv2d), a submodule of the model, a predicate (name, module) -> bool, or a "
    "list (or other iterable) of these"
)


def check_module(model: object, what: str) -> nn.Module:
    """``model`` if it is an ``nn.Module``, else a clear error naming the call.

    Example:
        >>> check_module(3, "layer_names")
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: layer_names needs a torch.nn.Module; got int
    """
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"{what} needs a torch.nn.Module; got {type(model).__name__}")
    return model


def layer_names(model: nn.Module) -> list[str]:
    """Qualified names of all submodules (the root, named ``""``, excluded), in model order."""
    return [name for name, _ in check_module(model, "layer_names").named_modules() if name]


def leaf_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Submodules without children, by qualified name, in model order.

    A model that is itself a leaf is returned under the name ``""``.
    """
    leaves = {name: m for name, m in model.named_modules() if not any(True for _ in m.children())}
    return leaves


def closest_layer_names(model: nn.Module, name: str, n: int = 5) -> list[str]:
    """The ``n`` qualified layer names most similar to ``name`` (for error messages)."""
    names = layer_names(model)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    if len(close) < n:  # also offer names sharing the final component or a prefix
        tail = name.rsplit(".", 1)[-1]
        extra = [c for c in names if c.endswith("." + tail) or c.startswith(name)]
        close += [c for c in extra if c not in close][: n - len(close)]
    return close or names[:n]


def _not_found(model: nn.Module, message: str, name: str | None) -> LayerNotFoundError:
    if name is not None:
        close = closest_layer_names(model, name)
        message += "; closest names: " + ", ".join(repr(c) for c in close)
    message += ". List them all with modelaudit.layer_names(model) or `modelaudit layers`."
    return LayerNotFoundError(message)


def _resolve_one(model: nn.Module, spec: SingleLayerSpec) -> list[str]:
    named = dict(model.named_modules())
    if isinstance(spec, str):
        if spec in named and spec != "":
            return [spec]
        if _GLOB_CHARS & set(spec):
            hits = [n for n in named if n and fnmatch.fnmatchcase(n, spec)]
            if not hits:
                raise _not_found(
                    model,
                    f"layer pattern {spec!r} matched no layer of the model",
                    spec.rstrip("*?.[]"),
                )
            return hits
        raise _not_found(model, f"model has no layer named {spec!r}", spec)
    if isinstance(spec, type) and not issubclass(spec, nn.Module):
        raise InvalidInputError(
            f"a layer class must be a subclass of nn.Module; got {spec.__name__} ({_ACCEPTED})."
        )
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        hits = [n for n, m in named.items() if isinstance(m, spec)]
        if not hits:
            kinds = sorted({type(m).__name__ for m in named.values()})
            raise LayerNotFoundError(
                f"model has no layer of type {spec.__name__}; it has: {', '.join(kinds)}."
            )
        return hits
    if isinstance(spec, nn.Module):
        for n, m in named.items():
            if m is spec:
                return [n]
        raise LayerNotFoundError(
            f"the module {type(spec).__name__} passed as a layer is not part of the model "
            "(pass a submodule of the model you audit, or its qualified name)."
        )
    if callable(spec):
        predicate = cast(LayerPredicate, spec)
        hits = [n for n, m in named.items() if n and predicate(n, m)]
        if not hits:
            raise LayerNotFoundError(f"the layer predicate {spec!r} matched no layer of the model.")
        return hits
    raise InvalidInputError(f"{_ACCEPTED}; got {spec!r} of type {type(spec).__name__}.")


def resolve_layers(model: nn.Module, spec: LayerSpec) -> dict[str, nn.Module]:
    """Resolve ``spec`` to ``{qualified name: module}`` in model order.

    Raises:
        LayerNotFoundError: a name is unknown (the message lists the closest names), or a
            pattern, class or predicate matched nothing.
        InvalidInputError: ``spec`` (or an item of a list) is none of the accepted kinds
            (e.g. ``layer=3``); the message lists them.
    """
    specs: list[SingleLayerSpec]
    if isinstance(spec, str | nn.Module | type) or (
        callable(spec) and not isinstance(spec, Iterable)
    ):
        specs = [spec]
    elif isinstance(spec, Iterable):
        specs = list(spec)
    else:
        raise InvalidInputError(f"{_ACCEPTED}; got {spec!r} of type {type(spec).__name__}.")
    if not specs:
        raise LayerNotFoundError("an empty list of layers was given; name at least one layer.")
    wanted: set[str] = set()
    for one in specs:
        wanted.update(_resolve_one(model, one))
    return {n: m for n, m in model.named_modules() if n in wanted}


def resolve_layer(model: nn.Module, spec: SingleLayerSpec) -> tuple[str, nn.Module]:
    """Resolve ``spec`` to exactly one ``(name, module)``.

    Raises:
        LayerNotFoundError: nothing matched, or several layers matched (the message lists
            them).
    """
    hits = resolve_layers(model, spec)
    if len(hits) != 1:
        names = ", ".join(repr(n) for n in hits)
        raise LayerNotFoundError(
            f"{spec!r} matches {len(hits)} layers ({names}); name exactly one layer here."
        )
    return next(iter(hits.items()))
