"""Stability: small input changes should change the map little; a flip should flip it.

The change between two maps of a sample (:func:`map_change`) is one of

- ``"spearman"`` (default): ``1 - Spearman rank correlation``, in ``[0, 2]``; 0 = same
  ranking of pixels;
- ``"mean_abs"``: mean absolute difference of the two maps, each scaled to ``[0, 1]`` by
  its maximum (negative values clamped to 0), in ``[0, 1]``.

Both ignore a positive rescaling of either map.

Example:
    >>> import torch
    >>> from modelaudit.measure import map_change
    >>> a = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    >>> map_change(a, 10 * a), map_change(a, a.flip(-1), measure="mean_abs")
    (tensor([0.]), tensor([0.3750]))
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.measure._explainer import Explainer, run_explainer
from modelaudit.measure._validate import check_images, check_maps
from modelaudit.measure.similarity import spearman

__all__ = ["ChangeMeasure", "StabilityResult", "flip_equivariance", "map_change", "noise_stability"]

ChangeMeasure = Literal["spearman", "mean_abs"]


def map_change(
    maps_a: torch.Tensor, maps_b: torch.Tensor, *, measure: ChangeMeasure = "spearman"
) -> torch.Tensor:
    """How much each map changed, ``(N,)``; 0 means unchanged (see the module notes).

    Example:
        >>> import torch
        >>> map_change(torch.ones(1, 2, 2), torch.zeros(1, 2, 2), measure="mean_abs")
        tensor([1.])
    """
    if measure == "spearman":
        return 1 - spearman(maps_a, maps_b)
    if measure == "mean_abs":
        a = check_maps(maps_a, name="maps_a").clamp(min=0).flatten(1)
        b = check_maps(maps_b, name="maps_b").clamp(min=0).flatten(1)
        if a.shape != b.shape:
            raise InvalidInputError(
                f"maps to compare must have the same shape; got {tuple(maps_a.shape)} and "
                f"{tuple(maps_b.shape)}"
            )
        b = b.to(a.device)

        def unit(x: torch.Tensor) -> torch.Tensor:
            top = x.amax(dim=1, keepdim=True)
            return torch.where(top > 0, x / top.clamp(min=torch.finfo(x.dtype).tiny), 0.0)

        return (unit(a) - unit(b)).abs().mean(dim=1)
    raise InvalidInputError(f"measure must be 'spearman' or 'mean_abs'; got {measure!r}")


@dataclasses.dataclass
class StabilityResult:
    """Map change under several noise draws.

    Attributes:
        changes: ``(R, N)`` change of sample n's map under noise draw r.
        original: ``(N, H, W)`` maps of the clean images.
        measure: ``"spearman"`` or ``"mean_abs"``.
        noisy: ``(R', N, H, W)`` the maps of the first ``keep_maps`` noise draws (empty
            unless asked for), for pictures.
    """

    changes: torch.Tensor
    original: torch.Tensor
    measure: str
    noisy: tuple[torch.Tensor, ...] = ()

    @property
    def per_sample(self) -> torch.Tensor:
        """``(N,)`` largest change of each sample over the noise draws."""
        return self.changes.max(dim=0).values

    @property
    def max(self) -> float:
        """Largest change over all samples and draws."""
        return float(self.changes.max())

    @property
    def mean(self) -> float:
        """Mean over samples of :attr:`per_sample`."""
        return float(self.per_sample.mean())


def noise_stability(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer,
    *,
    sigma: float = 0.02,
    repeats: int = 4,
    seed: int = 0,
    measure: ChangeMeasure = "spearman",
    keep_maps: int = 0,
) -> StabilityResult:
    """Change of each map when Gaussian noise of std ``sigma`` is added to the image.

    ``sigma`` is in the images' own units (0.02 is 2% of a [0, 1] range); noisy images are
    not clipped. Noise comes from a ``torch.Generator`` seeded with ``seed`` (the global RNG
    is untouched), one explainer call per draw. The maps of the first ``keep_maps`` draws
    are kept in ``noisy`` (for the report's pictures).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> res = noise_stability(nn.Identity(), torch.rand(2, 1, 5, 5), lambda m, x: x[:, 0] ** 2)
        >>> tuple(res.changes.shape), bool(res.max < 0.5)
        ((4, 2), True)
    """
    if not (isinstance(sigma, int | float) and sigma > 0):
        raise InvalidInputError(f"sigma must be a positive number; got {sigma!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats must be a positive int; got {repeats!r}")
    images = check_images(images)
    original = run_explainer(explainer, model, images)
    gen = torch.Generator().manual_seed(int(seed))
    rows, kept = [], []
    for r in range(repeats):
        noise = torch.randn(images.shape, generator=gen).to(images)
        noisy = run_explainer(explainer, model, images + sigma * noise, when=f"for noise draw {r}")
        rows.append(map_change(original, noisy, measure=measure))
        if r < keep_maps:
            kept.append(noisy.detach())
    return StabilityResult(
        changes=torch.stack(rows), original=original, measure=measure, noisy=tuple(kept)
    )


def flip_equivariance(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer,
    *,
    direction: Literal["horizontal", "vertical"] = "horizontal",
    measure: ChangeMeasure = "spearman",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Change between the map of the flipped image and the flipped map, ``(N,)``.

    An equivariant explainer (and model) gives 0.

    Returns:
        ``(change, maps)``: the per-sample change and the maps of the unflipped images.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> change, _ = flip_equivariance(nn.Identity(), torch.rand(2, 1, 4, 4),
        ...                               lambda m, x: x[:, 0])
        >>> change
        tensor([0., 0.])
    """
    if direction not in ("horizontal", "vertical"):
        raise InvalidInputError(f"direction must be 'horizontal' or 'vertical'; got {direction!r}")
    images = check_images(images)
    dim = -1 if direction == "horizontal" else -2
    maps = run_explainer(explainer, model, images)
    flipped = run_explainer(
        explainer, model, images.flip(dim), when=f"for {direction}ly flipped images"
    )
    if flipped.shape != maps.shape:
        raise InvalidInputError(
            f"maps of flipped images have shape {tuple(flipped.shape)}, the others "
            f"{tuple(maps.shape)}"
        )
    return map_change(maps.flip(dim), flipped, measure=measure), maps
