"""Turn raw per-layer maps into the maps every method returns.

Order, per layer: ReLU (``relu=True``) -> bilinear upsampling with
``align_corners=False`` to the input size (``upsample=True``) -> per-map scaling to
[0, 1] as ``(x - min) / (max - min + eps)`` (``normalize=True``).
Normalising after upsampling makes every returned map span exactly [0, 1] at the
resolution you get (pytorch-grad-cam normalises before resizing). An all-zero (or constant)
map becomes all zeros, never NaN.

``eps`` is relative: ``1e-8 * max|x|`` plus the dtype's smallest normal number. Peers use
an absolute 1e-7 / 1e-8, which silently flattens maps whose values are small (a randomly
initialised model easily has gradients of 1e-6 at the last layer, so its maps would come
out near zero instead of spanning [0, 1]); a relative ``eps`` makes the result independent
of the map's scale: ``normalize_maps(c * m) == normalize_maps(m)`` for any ``c > 0``.

Several layers are fused by the **mean of the per-layer maps**, each brought to the output
size first (the input size, or with ``upsample=False`` the largest layer resolution), then
the mean is normalised again. With ``normalize=False`` the raw maps are averaged, so layers
with larger values weigh more.

Example:
    >>> import torch
    >>> from modelaudit.explainers.postprocess import normalize_maps
    >>> normalize_maps(torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]]))
    tensor([[[0.0000, 0.5000],
             [0.2500, 1.0000]],
    <BLANKLINE>
            [[0.0000, 0.0000],
             [0.0000, 0.0000]]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["EPS", "finish_maps", "normalize_maps", "upsample_maps"]

EPS = 1e-8


def normalize_maps(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale each map (the last two dims) to [0, 1]: ``(x - min) / (max - min + eps')``.

    ``eps' = eps * max|x| + tiny`` (module docstring): scale-free, and 0 for a zero map.

    Example:
        >>> import torch
        >>> normalize_maps(torch.tensor([[[2.0, 4.0], [6.0, 10.0]]]))
        tensor([[[0.0000, 0.2500],
                 [0.5000, 1.0000]]])
    """
    flat = maps.flatten(-2)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    size = torch.maximum(hi.abs(), lo.abs())
    tiny = torch.finfo(flat.dtype).tiny
    return ((flat - lo) / (hi - lo + eps * size + tiny)).view_as(maps)


def upsample_maps(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize (..., h, w) maps to ``size`` bilinearly, ``align_corners=False``.

    Example:
        >>> import torch
        >>> upsample_maps(torch.tensor([[[0.0, 1.0]]]), (1, 4))
        tensor([[[0.0000, 0.2500, 0.7500, 1.0000]]])
    """
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.view(*lead, *size)


def finish_maps(
    maps: Sequence[torch.Tensor],
    input_size: Sequence[int],
    *,
    relu: bool = True,
    normalize: bool = True,
    upsample: bool = True,
) -> torch.Tensor:
    """ReLU, resize, normalise and fuse raw (N, K, h, w) maps, one per layer (see above).

    Example:
        >>> import torch
        >>> finish_maps([torch.tensor([[[[-1.0, 1.0], [2.0, 3.0]]]])], (2, 2))
        tensor([[[[0.0000, 0.3333],
                  [0.6667, 1.0000]]]])
    """
    if upsample:
        size = tuple(input_size)
    else:
        size = max((tuple(m.shape[-2:]) for m in maps), key=lambda s: s[0] * s[1])
    done = []
    for m in maps:
        m = m.float() if m.dtype in (torch.float16, torch.bfloat16) else m
        if relu:
            m = m.clamp(min=0)
        if upsample or len(maps) > 1:
            m = upsample_maps(m, size)
        if normalize:
            m = normalize_maps(m)
        done.append(m)
    fused = done[0] if len(done) == 1 else torch.stack(done).mean(dim=0)
    if normalize and len(done) > 1:
        fused = normalize_maps(fused)
    return fused.detach().contiguous()
