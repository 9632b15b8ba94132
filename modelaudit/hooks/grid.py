"""Feature-map grids: every channel of a layer's output as one tile, written to PNG.

Each tile is min-max scaled on its own, as ``torchvision.utils.make_grid(normalize=True,
scale_each=True)`` does: ``(x - min) / (max - min)``; a constant (dead) channel becomes an
all-black tile, never NaN (make_grid would divide by 1e-5 instead). Tiles are laid out row by row, ``nrow`` per row, separated by
``padding`` pixels of ``pad_value``.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.hooks.grid import feature_map_grid
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3))
    >>> grids = feature_map_grid(net, torch.rand(3, 10, 10))
    >>> grids["0"].shape, grids["0"].dtype   # 2x2 tiles of 8x8 with 1 px padding
    ((19, 19), dtype('uint8'))
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.hooks.layers import LayerSpec
from modelaudit.hooks.recording import capture
from modelaudit.hooks.state import preserved_state

__all__ = ["feature_map_grid", "grid_layout", "scale_each"]


def grid_layout(
    channels: int, height: int, width: int, *, nrow: int | None = None, padding: int = 1
) -> tuple[int, int]:
    """The ``(height, width)`` in pixels of a grid of ``channels`` tiles of ``height x width``.

    ``nrow`` tiles per row (default ``ceil(sqrt(channels))``), ``padding`` pixels around
    and between tiles.

    Example:
        >>> grid_layout(64, 55, 55)   # AlexNet's first conv: 8 x 8 tiles
        (449, 449)
    """
    per_row = nrow or math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / per_row)
    cols = min(per_row, channels)
    return rows * (height + padding) + padding, cols * (width + padding) + padding


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"


def scale_each(fmap: torch.Tensor) -> torch.Tensor:
    """Min-max scale each channel of a (K, h, w) map to [0, 1] on its own.

    A constant channel becomes all zeros (never NaN).

    Example:
        >>> scale_each(torch.tensor([[[1.0, 3.0]], [[5.0, 5.0]]])).tolist()
        [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    flat = fmap.detach().float().flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1.0), 0.0)
    return scaled.view_as(fmap)


def _tile(fmap: torch.Tensor, *, nrow: int | None, padding: int, pad_value: float) -> np.ndarray:
    channels, h, w = fmap.shape
    per_row = nrow or math.ceil(math.sqrt(channels))
    grid = torch.full(grid_layout(channels, h, w, nrow=per_row, padding=padding), float(pad_value))
    tiles = scale_each(fmap.cpu())
    for k in range(channels):
        top = padding + (k // per_row) * (h + padding)
        left = padding + (k % per_row) * (w + padding)
        grid[top : top + h, left : left + w] = tiles[k]
    return grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).numpy()


def feature_map_grid(
    model: nn.Module,
    image: torch.Tensor,
    layers: LayerSpec = nn.Conv2d,
    path: str | Path | None = None,
    *,
    nrow: int | None = None,
    padding: int = 1,
    pad_value: float = 1.0,
) -> dict[str, np.ndarray] | dict[str, Path]:
    """Draw every channel of each chosen layer's output as a grid of grey tiles.

    The model runs once, under ``torch.no_grad()`` in eval mode, state restored.

    Args:
        model: the model.
        image: one image, (C, H, W) or (1, C, H, W).
        layers: which layers (default every ``nn.Conv2d``); each must output (1, K, h, w).
        path: a directory to write ``<layer>.png`` files into (created if needed); None to
            only return the arrays.
        nrow: tiles per row (default ``ceil(sqrt(K))``, a square-ish grid).
        padding: pixels between and around tiles.
        pad_value: grey level of the padding, in [0, 1].

    Returns:
        ``{layer: (H, W) uint8 array}``, or ``{layer: written PNG path}`` when ``path`` is
        given. See :func:`grid_layout` for the size.

    Raises:
        InvalidInputError: a batch of several images, or a layer output that is not a
            (1, K, h, w) feature map.

    Example:
        >>> import tempfile, torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     files = feature_map_grid(net, torch.rand(1, 1, 9, 9), path=d)
        ...     sorted(p.name for p in files.values())
        ['0.png', '2.png']
    """
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InvalidInputError(
            f"feature_map_grid takes one image, (C, H, W) or (1, C, H, W); got {got}."
        )
    if image.dim() == 4 and image.shape[0] != 1:
        raise InvalidInputError(
            f"feature_map_grid draws one image at a time; got a batch of {image.shape[0]} "
            "(pass images[i:i + 1])."
        )
    x = image if image.dim() == 4 else image.unsqueeze(0)
    with preserved_state(model, eval_mode=True), torch.no_grad(), capture(model, layers) as cap:
        model(x)
    grids: dict[str, np.ndarray] = {}
    for name in cap.layers:
        out = cap.outputs[name]
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(
                f"layer {name!r} does not output a (1, K, h, w) feature map (got {what}); "
                "choose convolutional layers, e.g. layers=nn.Conv2d."
            )
        grids[name] = _tile(out[0], nrow=nrow, padding=padding, pad_value=pad_value)
    if path is None:
        return grids
    from skimage import io

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, grid in grids.items():
        target = folder / f"{_safe_filename(name)}.png"
        io.imsave(target, grid, check_contrast=False)
        written[name] = target
    return written
