"""Bring transformer activations to the (N, C, h, w) layout CAM methods need.

Pass one of these (or your own ``tensor -> (N, C, h, w)`` function) as ``reshape=``. The
same function is applied to the activations and to their gradients, so it must work on any
batch size and only move or drop elements (slicing, ``view``, ``permute``).

Which layer: in a torchvision ``VisionTransformer`` only the class token reaches the head,
and after the last encoder block the patch tokens no longer influence it, so gradients
there are zero. Explain the input of the last block's attention instead, i.e.
``layer="encoder.layers.encoder_layer_<L-1>.ln_1"``. For torchvision Swin, use the last
stage, e.g. ``layer="features.7"`` (or its last block), with ``reshape=swin_reshape``.

Example:
    >>> import torch
    >>> from modelaudit.explainers.reshape import swin_reshape, vit_reshape
    >>> vit_reshape(torch.zeros(2, 1 + 4 * 4, 32)).shape  # class token + 16 patch tokens
    torch.Size([2, 32, 4, 4])
    >>> swin_reshape(torch.zeros(2, 7, 7, 96)).shape
    torch.Size([2, 96, 7, 7])
"""

from __future__ import annotations

import math

import torch

from modelaudit.errors import InvalidInputError

__all__ = ["swin_reshape", "vit_reshape"]


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
