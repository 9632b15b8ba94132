"""Calibrated localization: scores that mean the same on any object size, map grid and data.

A raw score such as the mass in the box depends on things other than the model: the box's
share of the image (a uniform map scores it: the *chance level*), and the explained layer's
grid (on a 4x4 grid a perfect Grad-CAM still spills far out of a small box). Three tools put
the raw score in units that carry over:

- :func:`localization_ceiling`: what an *ideal* map scores - the box or mask itself, pooled
  to the explained layer's grid and upsampled the way the explainers upsample (bilinear,
  ``align_corners=False``, then min-max normalised);
- :func:`calibrated_score`: ``(score - chance) / (ceiling - chance)``: 0 is a uniform map,
  1 the ideal map at that resolution, below 0 a map that avoids the object;
- :func:`shuffled_null`: the same maps scored against the *other* images' boxes (what this
  model's maps score on objects they are not about, e.g. from a centre bias), and
  :func:`paired_lift`: a paired one-sided test that the own boxes score higher.

Example:
    >>> import torch
    >>> boxes = torch.tensor([[0, 0, 4, 4]])
    >>> localization_ceiling(boxes, (8, 8), grid=(8, 8))  # full resolution: the box itself
    tensor([1.])
    >>> float(localization_ceiling(boxes, (8, 8), grid=(2, 2))[0]) < 1  # coarse: spills out
    True
    >>> calibrated_score(torch.tensor([0.625]), torch.tensor([0.25]), torch.tensor([1.0]))
    tensor([0.5000])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.postprocess import normalize_maps, upsample_maps
from modelaudit.measure._validate import RegionLike, as_region, check_maps
from modelaudit.measure.localization import chance_level, mass_in_box, mass_in_mask, pointing_game

__all__ = [
    "PairedLift",
    "calibrated_score",
    "ideal_maps",
    "localization_ceiling",
    "paired_lift",
    "shuffled_null",
]

Metric = Literal["mass", "pointing"]
_METRICS = ("mass", "pointing")


def _check_grid(grid: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    try:
        gh, gw = (int(grid[0]), int(grid[1]))
    except (TypeError, ValueError, IndexError):
        raise InvalidInputError(
            f"grid must be (h, w) of the explained layer; got {grid!r}"
        ) from None
    if not (1 <= gh <= size[0] and 1 <= gw <= size[1]):
        raise InvalidInputError(
            f"grid {(gh, gw)} must lie between (1, 1) and the map size {tuple(size)}"
        )
    return gh, gw


def _check_metric(metric: str) -> None:
    if metric not in _METRICS:
        raise InvalidInputError(f"metric must be 'mass' or 'pointing'; got {metric!r}")


def ideal_maps(region: RegionLike, size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """The best maps a layer with ``grid`` cells can give: the region, pooled and upsampled.

    Each cell takes the fraction of it the region covers (area pooling); the cells are
    upsampled bilinearly to ``size`` and min-max normalised, as the CAM methods do.

    Example:
        >>> import torch
        >>> ideal_maps(torch.tensor([[0, 0, 2, 2]]), (4, 4), (2, 2))[0]
        tensor([[1.0000, 0.7500, 0.2500, 0.0000],
                [0.7500, 0.5625, 0.1875, 0.0000],
                [0.2500, 0.1875, 0.0625, 0.0000],
                [0.0000, 0.0000, 0.0000, 0.0000]])
    """
    h, w = int(size[0]), int(size[1])
    gh, gw = _check_grid(grid, (h, w))
    masks = as_region(region, (h, w)).masks.float()
    cells = F.adaptive_avg_pool2d(masks[:, None], (gh, gw))[:, 0]
    return normalize_maps(upsample_maps(cells, (h, w)).clamp(min=0))


def _score(maps: torch.Tensor, region: RegionLike, metric: Metric) -> torch.Tensor:
    if metric == "pointing":
        return pointing_game(maps, region)
    reg = as_region(region, (maps.shape[1], maps.shape[2]), maps.shape[0])
    return mass_in_mask(maps, reg.masks) if reg.kind == "mask" else mass_in_box(maps, region)


def localization_ceiling(
    region: RegionLike,
    size: tuple[int, int],
    *,
    grid: tuple[int, int],
    metric: Metric = "mass",
) -> torch.Tensor:
    """What :func:`ideal_maps` score: the best mass in box (or pointing game) at ``grid``.

    Example:
        >>> import torch
        >>> localization_ceiling(torch.tensor([[0, 0, 2, 2]]), (4, 4), grid=(2, 2))  # 3.0625 / 4
        tensor([0.7656])
    """
    _check_metric(metric)
    return _score(ideal_maps(region, size, grid), region, metric)


def calibrated_score(
    values: torch.Tensor, chance: torch.Tensor, ceiling: torch.Tensor
) -> torch.Tensor:
    """``(values - chance) / (ceiling - chance)`` per sample: 0 uniform, 1 ideal, < 0 avoids.

    Raises:
        InvalidInputError: a ceiling not above chance (the object fills the image, or the
            grid is too coarse to tell the object from the rest: nothing to calibrate).

    Example:
        >>> import torch
        >>> calibrated_score(torch.tensor([0.25, 1.0]), torch.tensor([0.25, 0.25]),
        ...                  torch.tensor([0.75, 0.75])).tolist()
        [0.0, 1.5]
    """
    room = ceiling - chance
    if bool((room <= 1e-6).any()):
        bad = int((room <= 1e-6).nonzero()[0, 0])
        raise InvalidInputError(
            f"sample {bad}: an ideal map scores {float(ceiling[bad]):.3g}, no better than a "
            f"uniform one ({float(chance[bad]):.3g}): the object covers (almost) the whole "
            "image or the layer's grid is too coarse; crop the image or explain a finer layer"
        )
    return (values - chance) / room


def shuffled_null(
    maps: torch.Tensor, region: RegionLike, *, metric: Metric = "mass"
) -> torch.Tensor:
    """Each map's mean score against the *other* samples' regions, ``(N,)``.

    A model whose maps follow its objects scores far higher on its own boxes than on
    others'; one that always looks at the same place (a corner, the centre, everywhere)
    scores about the same. Needs at least 2 samples.

    Example:
        >>> import torch
        >>> maps = torch.zeros(2, 4, 4)
        >>> maps[0, 0, 0] = maps[1, 3, 3] = 1.0
        >>> boxes = torch.tensor([[0, 0, 2, 2], [2, 2, 4, 4]])
        >>> shuffled_null(maps, boxes)  # each map against the other's box
        tensor([0., 0.])
    """
    _check_metric(metric)
    m = check_maps(maps)
    n, h, w = m.shape
    if n < 2:
        raise InvalidInputError("shuffled_null needs at least 2 samples (maps of other images)")
    inside = as_region(region, (h, w), n).masks.to(m.device).flatten(1).float()  # (N, HW)
    flat = m.flatten(1).clamp(min=0)
    if metric == "mass":
        total = flat.sum(dim=1, keepdim=True)
        share = torch.where(total > 0, flat / total.clamp(min=torch.finfo(flat.dtype).tiny), 0.0)
        pairs = share @ inside.T  # (N maps, N regions)
    else:
        top = flat.argmax(dim=1)
        pairs = inside[:, top].T * (flat.amax(dim=1) > 0)[:, None]
    off = ~torch.eye(n, dtype=torch.bool, device=m.device)
    return (pairs * off).sum(dim=1) / (n - 1)


@dataclasses.dataclass(frozen=True)
class PairedLift:
    """How much higher the own regions score than the shuffled ones.

    Attributes:
        mean: mean of ``own - null``.
        effect: standardised effect (Cohen's d_z: mean / sd of the differences; ``inf`` if
            every difference is the same positive number).
        p_value: one-sided Wilcoxon signed-rank test that the differences are > 0.
        n: number of samples.
    """

    mean: float
    effect: float
    p_value: float
    n: int


def paired_lift(own: torch.Tensor, null: torch.Tensor) -> PairedLift:
    """Paired one-sided test that ``own`` exceeds ``null`` (same samples).

    Example:
        >>> import torch
        >>> lift = paired_lift(torch.tensor([0.6, 0.7, 0.8, 0.9, 0.65, 0.75]),
        ...                    torch.tensor([0.1, 0.1, 0.2, 0.1, 0.15, 0.1]))
        >>> round(lift.mean, 3), lift.p_value < 0.05
        (0.608, True)
    """
    from scipy.stats import wilcoxon

    if own.shape != null.shape or own.dim() != 1 or own.numel() < 2:
        raise InvalidInputError(
            f"own and null must be (N,) with N >= 2 and the same shape; got "
            f"{tuple(own.shape)} and {tuple(null.shape)}"
        )
    diff = (own.double() - null.double()).cpu()
    mean = float(diff.mean())
    sd = float(diff.std())
    if sd > 0:
        effect = mean / sd
    else:
        effect = math.inf if mean > 0 else -math.inf if mean < 0 else 0.0
    if bool((diff == 0).all()):
        p = 1.0
    else:
        p = float(wilcoxon(diff.numpy(), alternative="greater", zero_method="zsplit").pvalue)
    return PairedLift(mean, effect, p, int(diff.numel()))


def chance(region: RegionLike, size: tuple[int, int], *, metric: Metric = "mass") -> torch.Tensor:
    """The chance level of ``metric`` (:func:`~modelaudit.measure.chance_level`)."""
    return chance_level(region, size)
