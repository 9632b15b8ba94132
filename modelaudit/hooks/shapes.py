"""Feature-map shapes of a model's layers, and how they differ from expected ones.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.hooks.shapes import feature_map_shapes
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten())
    >>> feature_map_shapes(net, (1, 3, 9, 9))
    {'0': torch.Size([1, 8, 4, 4]), '1': torch.Size([1, 8, 4, 4]), '2': torch.Size([1, 128])}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from modelaudit._format import format_shape
from modelaudit.errors import InvalidInputError
from modelaudit.hooks.layers import LayerSpec, closest_layer_names, leaf_layers, resolve_layers
from modelaudit.hooks.recording import capture
from modelaudit.hooks.state import preserved_state

__all__ = ["ShapeDiff", "feature_map_shapes", "shape_diff"]

Example = torch.Tensor | Sequence[int] | torch.Size


def _example_tensor(model: nn.Module, example: Example) -> torch.Tensor:
    if isinstance(example, torch.Tensor):
        return example
    try:
        shape = tuple(int(s) for s in example)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"expected an example tensor or an input shape such as (1, 3, 224, 224); got {example!r}"
        ) from exc
    if not shape or any(s < 1 for s in shape):
        raise InvalidInputError(f"input shape {shape} must be non-empty with positive sizes.")
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    device = ref.device if ref is not None else torch.device("cpu")
    return torch.zeros(shape, dtype=dtype, device=device)


def _shape(t: torch.Tensor) -> torch.Size:
    return t.shape


def feature_map_shapes(
    model: nn.Module, example_or_input_shape: Example, layers: LayerSpec | None = None
) -> dict[str, torch.Size]:
    """Run one forward pass and return the output shape of each layer.

    The pass runs under ``torch.no_grad()`` with the model in eval mode; its mode (and
    everything else :func:`~modelaudit.hooks.state.preserved_state` tracks) is restored.

    Args:
        model: the model.
        example_or_input_shape: an input tensor, or a full input shape *including the batch
            dimension* (e.g. ``(1, 3, 224, 224)``) for which zeros of the model's dtype and
            device are used.
        layers: which layers (anything ``resolve_layers`` accepts); default every leaf
            module, skipping leaves that did not run.

    Returns:
        ``{layer: output shape}`` in model order. A layer that returns several tensors maps
        to the same structure of shapes (e.g. a tuple of sizes); a layer called several
        times reports its last call.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.MaxPool2d(2))
        >>> feature_map_shapes(net, (2, 3, 32, 48), layers=nn.MaxPool2d)
        {'1': torch.Size([2, 4, 16, 24])}
    """
    x = _example_tensor(model, example_or_input_shape)
    if layers is None:
        return _shapes(model, x, list(leaf_layers(model).values()), strict=False)
    return _shapes(model, x, layers, strict=True)


def _shapes(
    model: nn.Module, x: torch.Tensor, spec: LayerSpec, *, strict: bool
) -> dict[str, torch.Size]:
    with (
        preserved_state(model, eval_mode=True),
        torch.no_grad(),
        capture(model, spec, reduce=_shape, strict=strict) as cap,
    ):
        model(x)
    return {name: cast(torch.Size, cap.outputs[name]) for name in cap.layers if name in cap.outputs}


def _matches(obtained: Any, expected: Any) -> bool:
    """Equal shapes; an expected shape may leave out the batch dimension."""
    if not isinstance(obtained, torch.Size):
        return bool(obtained == expected)
    exp = tuple(expected)
    got = tuple(obtained)
    return got == exp or (len(exp) == len(got) - 1 and got[1:] == exp)


@dataclasses.dataclass(frozen=True)
class ShapeDiff:
    """Layer output shapes against expected ones, layer by layer.

    Attributes:
        input_shape: the shape of the example input.
        layers: every layer compared, in model order, then expected-only names.
        problems: ``{layer: "obtained (...), expected (...)"}`` for each layer that is
            mismatched, missing (expected, not produced) or unexpected (produced only).
        kinds: ``{layer: "mismatched" | "missing" | "unexpected"}`` for the same layers.
    """

    input_shape: tuple[int, ...]
    layers: list[str]
    problems: dict[str, str]
    kinds: dict[str, str]


def shape_diff(
    model: nn.Module,
    example: Example,
    expected: Mapping[str, Sequence[int] | torch.Size],
    *,
    layers: LayerSpec | None = None,
) -> ShapeDiff:
    """Run one forward pass and compare layer output shapes with ``expected``.

    ``layers`` as in :func:`modelaudit.assert_feature_map_shapes` (default: every leaf
    module plus every module named in ``expected``). A shape may include the batch dimension
    or leave it out.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
        >>> shape_diff(net, (1, 3, 8, 8), {"0": (4, 6, 6), "1": (4, 5, 5)}).problems
        {'1': 'obtained (1, 4, 4, 4), expected (4, 5, 5)'}
    """
    x = _example_tensor(model, example)
    modules = dict(model.named_modules())
    chosen = list(
        (leaf_layers(model) if layers is None else resolve_layers(model, layers)).values()
    )
    chosen += [modules[n] for n in expected if n in modules and n != ""]
    obtained = _shapes(model, x, chosen, strict=False)
    problems: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for n in [*obtained, *(n for n in expected if n not in obtained)]:
        if n not in expected:
            kinds[n] = "unexpected"
            problems[n] = (
                f"obtained {format_shape(obtained[n])}, expected none (pass layers= to compare a subset)"
            )
        elif n not in obtained:
            kinds[n] = "missing"
            problems[n] = (
                f"obtained none ({_why_missing(model, modules, n)}), expected {format_shape(expected[n])}"
            )
        elif not _matches(obtained[n], expected[n]):
            kinds[n] = "mismatched"
            problems[n] = (
                f"obtained {format_shape(obtained[n])}, expected {format_shape(expected[n])}"
            )
    names = [*obtained, *(n for n in expected if n not in obtained)]
    return ShapeDiff(tuple(x.shape), names, problems, kinds)


def _why_missing(model: nn.Module, modules: Mapping[str, nn.Module], name: str) -> str:
    if name in modules:
        return "layer did not run"
    close = closest_layer_names(model, name, n=3)
    return "no such layer; closest names: " + ", ".join(map(repr, close))
