"""Feature-map shapes of a model's layers, and an assertion on them with a diff-style failure.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.hooks.shapes import feature_map_shapes
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten())
    >>> feature_map_shapes(net, (1, 3, 9, 9))
    {'0': torch.Size([1, 8, 4, 4]), '1': torch.Size([1, 8, 4, 4]), '2': torch.Size([1, 128])}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.hooks.layers import LayerSpec, closest_layer_names, leaf_layers, resolve_layers
from modelaudit.hooks.recording import capture
from modelaudit.hooks.state import preserved_state
from modelaudit.records import AuditRecord, emit

__all__ = ["assert_feature_map_shapes", "feature_map_shapes"]

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


def _fmt(shape: Any) -> str:
    if isinstance(shape, torch.Size | tuple | list) and all(isinstance(s, int) for s in shape):
        return "(" + ", ".join(str(s) for s in shape) + ")"
    return repr(shape)


def _matches(obtained: Any, expected: Any) -> bool:
    """Equal shapes; an expected shape may leave out the batch dimension."""
    if not isinstance(obtained, torch.Size):
        return bool(obtained == expected)
    exp = tuple(expected)
    got = tuple(obtained)
    return got == exp or (len(exp) == len(got) - 1 and got[1:] == exp)


def assert_feature_map_shapes(
    model: nn.Module,
    example: Example,
    expected: Mapping[str, Sequence[int] | torch.Size],
    *,
    layers: LayerSpec | None = None,
) -> AuditRecord:
    """Check layer output shapes against ``expected``; fail with a diff of the differences.

    Args:
        model: the model.
        example: an input tensor or input shape (see :func:`feature_map_shapes`).
        expected: ``{layer: shape}``. A shape may include the batch dimension or leave it
            out (``(64, 55, 55)`` matches an output of ``(1, 64, 55, 55)``).
        layers: the layers whose shapes are compared. Default: every leaf module plus every
            module named in ``expected``, so ``expected`` reads as a full snapshot and
            leaves it does not list are reported as unexpected; pass e.g. ``nn.Conv2d`` to
            compare only those.

    Returns:
        The passing :class:`~modelaudit.records.AuditRecord`.

    Raises:
        AuditFailure: listing mismatched layers (both shapes), missing layers (expected but
            absent or never run) and unexpected layers (produced but not expected).

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
        >>> _ = assert_feature_map_shapes(net, (1, 3, 8, 8), {"0": (4, 6, 6), "1": (4, 4, 4)})
        >>> assert_feature_map_shapes(net, (1, 3, 8, 8), {"0": (4, 6, 6), "1": (4, 5, 5)})
        Traceback (most recent call last):
        ...
        modelaudit.errors.AuditFailure: feature-map shapes differ from expected for input (1, 3, 8, 8): 1 mismatched
          mismatched:
            '1': obtained (1, 4, 4, 4), expected (4, 5, 5)
    """
    x = _example_tensor(model, example)
    modules = dict(model.named_modules())
    if layers is None:
        chosen = list(leaf_layers(model).values())
    else:
        chosen = list(resolve_layers(model, layers).values())
    chosen += [modules[n] for n in expected if n in modules and n != ""]
    obtained = _shapes(model, x, chosen, strict=False)
    mismatched = [n for n in expected if n in obtained and not _matches(obtained[n], expected[n])]
    missing = [n for n in expected if n not in obtained]
    unexpected = [n for n in obtained if n not in expected]
    passed = not (mismatched or missing or unexpected)
    lines: list[str] = []
    if mismatched:
        lines.append("  mismatched:")
        lines += [
            f"    {n!r}: obtained {_fmt(obtained[n])}, expected {_fmt(expected[n])}"
            for n in mismatched
        ]
    if missing:
        lines.append("  missing (expected, but the model produced no such output):")
        for n in missing:
            why = "layer did not run" if n in modules else "no such layer"
            if n not in modules:
                close = closest_layer_names(model, n, n=3)
                why += "; closest names: " + ", ".join(map(repr, close))
            lines.append(f"    {n!r}: obtained none ({why}), expected {_fmt(expected[n])}")
    if unexpected:
        lines.append(
            "  unexpected (produced, but not in expected; pass layers= to compare a subset):"
        )
        lines += [f"    {n!r}: obtained {_fmt(obtained[n])}, expected none" for n in unexpected]
    counts = ", ".join(
        f"{len(v)} {k}"
        for k, v in (("mismatched", mismatched), ("missing", missing), ("unexpected", unexpected))
        if v
    )
    summary = f"feature-map shapes differ from expected for input {_fmt(tuple(x.shape))}: {counts}"
    message = "\n".join([summary, *lines]) if not passed else "feature-map shapes match"
    bad = len(mismatched) + len(missing) + len(unexpected)
    record = AuditRecord(
        check="feature_map_shapes",
        passed=passed,
        values=[float(bad)],
        bound=0.0,
        direction="at_most",
        obtained=float(bad),
        message=message,
        details={
            "mismatched": {n: [_fmt(obtained[n]), _fmt(expected[n])] for n in mismatched},
            "missing": missing,
            "unexpected": unexpected,
        },
    )
    emit(record)
    if not passed:
        raise AuditFailure(message, record)
    return record
