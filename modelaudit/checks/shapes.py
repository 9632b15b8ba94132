"""Shape check: every feature map has the shape the next stage expects.

Example:
    >>> import torch.nn as nn
    >>> from modelaudit.checks.shapes import assert_feature_map_shapes
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    >>> _ = assert_feature_map_shapes(net, (1, 3, 8, 8), {"0": (4, 6, 6), "1": (4, 4, 4)})
    >>> assert_feature_map_shapes(net, (1, 3, 8, 8), {"0": (4, 6, 6), "1": (4, 5, 5)})
    Traceback (most recent call last):
    ...
    modelaudit.errors.AuditFailure: assert_feature_map_shapes: every layer's output shape must match expected for input (1, 3, 8, 8); 1 of 2 layers fail.
      failing layers:
        '1': mismatched: obtained (1, 4, 4, 4), expected (4, 5, 5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from modelaudit._format import format_shape
from modelaudit.checks.record import AuditRecord, conclude
from modelaudit.hooks.layers import LayerSpec
from modelaudit.hooks.shapes import Example, shape_diff

__all__ = ["assert_feature_map_shapes"]


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
        example: an input tensor or input shape (see :func:`modelaudit.feature_map_shapes`).
        expected: ``{layer: shape}``. A shape may include the batch dimension or leave it
            out (``(64, 55, 55)`` matches an output of ``(1, 64, 55, 55)``).
        layers: the layers whose shapes are compared. Default: every leaf module plus every
            module named in ``expected``, so ``expected`` reads as a full snapshot and
            leaves it does not list are reported as unexpected; pass e.g. ``nn.Conv2d`` to
            compare only those.

    Returns:
        The passing record (one item per layer; value 1.0 where the layer differs).

    Raises:
        AuditFailure: listing mismatched layers (both shapes), missing layers (expected but
            absent or never run) and unexpected layers (produced but not expected).
    """
    __tracebackhide__ = True
    diff = shape_diff(model, example, expected, layers=layers)
    names = diff.layers
    shape = format_shape(diff.input_shape)
    return conclude(
        AuditRecord(
            check="feature_map_shapes",
            assertion="assert_feature_map_shapes",
            passed=not diff.problems,
            values=tuple(float(n in diff.problems) for n in names),
            items=tuple(repr(n) for n in names),
            unit="layer",
            direction="lower",
            obtained=float(len(diff.problems)),
            failing=tuple(i for i, n in enumerate(names) if n in diff.problems),
            rule=f"every layer's output shape must match expected for input {shape}",
            reasons=tuple(
                f"{diff.kinds[n]}: {diff.problems[n]}" if n in diff.problems else "" for n in names
            ),
            details={
                kind: [n for n in names if diff.kinds.get(n) == kind]
                for kind in ("mismatched", "missing", "unexpected")
            },
        )
    )
