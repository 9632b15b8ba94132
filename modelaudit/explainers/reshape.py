"""Bring transformer activations to the (N, C, h, w) layout CAM methods need.

Pass one of these (or your own ``tensor -> (N, C, h, w)`` function) as ``reshape=``. The
same function is applied to the activations and to their gradients, so it must work on any
batch size and only move or drop elements (slicing, ``view``, ``permute``).

Which layer: in a torchvision ``VisionTransformer`` only the class token reaches the head,
and after the last encoder block the patch tokens no longer influence it, so gradients
there are zero. Explain the input of the last block's attention instead, i.e.
``layer="encoder.layers.encoder_layer_<L-1>.ln_1"``. For torchvision Swin, use the last
stage, e.g. ``layer="features.7"`` (or its last block), with ``reshape=swin_reshape``.

Without ``reshape=``, the engine and the layer choice read a layer's layout from its shape
(:func:`infer_layout`): a 4-D map is (N, C, h, w) unless only (N, h, w, C) fits the input's
aspect (timm's Swin stages and ConvNeXt blocks are channels-last); a 3-D output (N, T, D)
is tokens when, after the model's ``num_prefix_tokens`` (timm) or else the fewest leading
tokens (class, distillation, register tokens), the rest form a grid of the input's aspect.
So timm ViT/DeiT and Swin layers need no ``reshape=``. Ambiguous shapes (a channels-last
map with as many channels as columns) are read as (N, C, h, w) unless the module is an
``nn.Linear`` or ``nn.LayerNorm`` (which act on the last dimension); pass ``reshape=`` there.

Example:
    >>> import torch
    >>> from modelaudit.explainers.reshape import swin_reshape, vit_reshape
    >>> vit_reshape(torch.zeros(2, 1 + 4 * 4, 32)).shape  # class token + 16 patch tokens
    torch.Size([2, 32, 4, 4])
    >>> swin_reshape(torch.zeros(2, 7, 7, 96)).shape
    torch.Size([2, 96, 7, 7])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from modelaudit.errors import InvalidInputError

__all__ = ["Layout", "infer_layout", "model_prefix_tokens", "swin_reshape", "vit_reshape"]

#: The most leading (class, distillation, register) tokens searched for without the model's
#: ``num_prefix_tokens``.
MAX_PREFIX_TOKENS = 16

#: A grid fits the input when its cells' height and width differ by at most this factor.
_ASPECT = 1.5


def vit_reshape(
    tokens: torch.Tensor,
    height: int | None = None,
    width: int | None = None,
    prefix_tokens: int = 1,
) -> torch.Tensor:
    """ViT tokens (N, prefix + h * w, D) -> (N, D, h, w), dropping the class token(s).

    Args:
        tokens: the layer output, batch first (torchvision's ``VisionTransformer`` layout).
        height: grid rows; by default the grid is square. Give it for non-square inputs
            (e.g. ``functools.partial(vit_reshape, height=14, width=20)``).
        width: grid columns (default: tokens / height).
        prefix_tokens: tokens before the patches (1 class token; 2 for DeiT's distillation).

    Raises:
        InvalidInputError: the tokens do not form the grid.

    Example:
        >>> import torch
        >>> vit_reshape(torch.zeros(1, 1 + 2 * 3, 8), height=2, width=3).shape
        torch.Size([1, 8, 2, 3])
    """
    if tokens.dim() != 3:
        raise InvalidInputError(
            f"vit_reshape expects tokens (N, tokens, dim); got {tuple(tokens.shape)}"
        )
    patches = tokens[:, prefix_tokens:, :]
    count = patches.shape[1]
    if height is None and width is None:
        side = math.isqrt(count)
        height = width = side
    elif height is None:
        assert width is not None
        height = count // width
    elif width is None:
        width = count // height
    if height * width != count:
        raise InvalidInputError(
            f"{count} patch tokens (after dropping {prefix_tokens} prefix token(s)) do not form "
            f"a {height}x{width} grid; pass height= and width= (functools.partial)."
        )
    return patches.reshape(tokens.shape[0], height, width, tokens.shape[2]).permute(0, 3, 1, 2)


def swin_reshape(features: torch.Tensor) -> torch.Tensor:
    """Channels-last Swin features (N, H, W, C) -> (N, C, H, W).

    Raises:
        InvalidInputError: the tensor is not 4-D.

    Example:
        >>> import torch
        >>> swin_reshape(torch.zeros(1, 7, 7, 96)).shape
        torch.Size([1, 96, 7, 7])
    """
    if features.dim() != 4:
        raise InvalidInputError(
            f"swin_reshape expects (N, H, W, C) features; got {tuple(features.shape)}"
        )
    return features.permute(0, 3, 1, 2)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a layer's output holds its feature map (see :func:`infer_layout`).

    Attributes:
        kind: ``"nchw"``, ``"nhwc"`` (channels last) or ``"tokens"`` (N, prefix + h * w, D).
        grid: ``(h, w)``.
        prefix: leading tokens dropped (tokens only).
    """

    kind: Literal["nchw", "nhwc", "tokens"]
    grid: tuple[int, int]
    prefix: int = 0

    def reshape(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The ``tensor -> (N, C, h, w)`` function for this layout (None for NCHW).

        Example:
            >>> import torch
            >>> Layout("tokens", (2, 2), prefix=1).reshape()(torch.zeros(3, 5, 8)).shape
            torch.Size([3, 8, 2, 2])
        """
        if self.kind == "nhwc":
            return swin_reshape
        if self.kind == "tokens":
            h, w, p = self.grid[0], self.grid[1], self.prefix
            return lambda t: vit_reshape(t, h, w, prefix_tokens=p)
        return None


def _fits(grid: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether ``grid`` is a downsampling of an image of ``size`` (cells about square)."""
    (h, w), (height, width) = grid, size
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    sh, sw = height / h, width / w
    return max(sh, sw) / min(sh, sw) <= _ASPECT


def _one_stride(grid: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether one patch size ``s`` gives ``grid``: ``floor`` or ``ceil`` of ``size / s``."""
    (h, w), (height, width) = grid, size
    low = max(height / (h + 1), width / (w + 1))  # floor(size / s) == grid for s in (low, high]
    if low < min(height / h, width / w):
        return True
    inf = float("inf")
    top = min(height / (h - 1) if h > 1 else inf, width / (w - 1) if w > 1 else inf)
    return max(height / h, width / w) < top  # ceil(size / s) == grid for s in [.., top)


def _token_grid(count: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """The grid ``count`` tokens form on an image of ``size`` (at least 2 tokens): one patch
    size in both directions (64 x 64 px make 4 x 4 patches, never 4 x 5)."""
    if count < 2:
        return None
    guess = max(1, round(math.sqrt(count * size[0] / size[1])))
    for h in (guess, guess - 1, guess + 1):
        grid = (h, count // h) if h >= 1 and count % h == 0 else None
        if grid is not None and _fits(grid, size) and _one_stride(grid, size):
            return grid
    return None


def model_prefix_tokens(model: nn.Module) -> int | None:
    """The model's ``num_prefix_tokens`` (timm ViTs), if it declares one.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Identity(); net.num_prefix_tokens = 5
        >>> model_prefix_tokens(net), model_prefix_tokens(nn.Identity())
        (5, None)
    """
    p = getattr(model, "num_prefix_tokens", None)
    return p if isinstance(p, int) and not isinstance(p, bool) and p >= 0 else None


def infer_layout(
    shape: Sequence[int],
    size: tuple[int, int],
    *,
    prefix_tokens: int | None = None,
    module: nn.Module | None = None,
) -> Layout | None:
    """The layout of a layer output of ``shape`` for inputs of ``size`` (see module doc).

    Args:
        shape: the output's shape, batch first.
        size: the input images' ``(H, W)``.
        prefix_tokens: the model's leading tokens, if known (:func:`model_prefix_tokens`).
        module: the layer, for ambiguous 4-D shapes (``nn.Linear`` / ``nn.LayerNorm``
            outputs are channels-last).

    Returns:
        The layout, or None when the output is no feature map of the input (not 3-D or 4-D,
        a 4-D shape whose grid fits the input neither way, or tokens that form no grid).

    Example:
        >>> infer_layout((2, 4, 4, 768), (128, 128))  # channels last
        Layout(kind='nhwc', grid=(4, 4), prefix=0)
        >>> infer_layout((2, 1 + 4 + 8 * 8, 192), (128, 128))  # class + 4 register tokens
        Layout(kind='tokens', grid=(8, 8), prefix=5)
    """
    if len(shape) == 4:
        a, b, c = int(shape[1]), int(shape[2]), int(shape[3])
        nchw, nhwc = _fits((b, c), size), _fits((a, b), size)
        last = type(module) in (nn.Linear, nn.LayerNorm)
        if nhwc and (not nchw or last):
            return Layout("nhwc", (a, b))
        return Layout("nchw", (b, c)) if nchw else None
    if len(shape) != 3:
        return None
    tokens = int(shape[1])
    if prefix_tokens is not None:
        choices: Sequence[int] = [prefix_tokens] if prefix_tokens < tokens else []
    else:
        choices = range(min(tokens, MAX_PREFIX_TOKENS + 1))
    for p in choices:
        grid = _token_grid(tokens - p, size)
        if grid is not None:
            return Layout("tokens", grid, p)
    return None
