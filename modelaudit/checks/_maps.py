"""What the heat-map checks share: provenance read from the maps, and the report's samples.

Maps returned by an explainer are :class:`~modelaudit.explainers.Explanation` tensors that
remember their method, layer, targets and inputs; a check reads those instead of asking
for them again. Keywords passed explicitly win; plain tensors work too.

Example:
    >>> import torch
    >>> from modelaudit.checks._maps import provenance
    >>> provenance(torch.zeros(1, 4, 4), method="gradcam", layer=None)
    {'method': 'gradcam'}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from modelaudit.checks.record import Curves, Overview, SampleViews
from modelaudit.errors import InvalidInputError
from modelaudit.measure._explainer import Explainer
from modelaudit.measure._validate import Region, check_images
from modelaudit.measure.offobject import OffObject, off_object_mass

__all__ = [
    "LOOKS_INSTEAD",
    "display_samples",
    "explainer_from",
    "images_of",
    "looks_instead",
    "provenance",
    "where_it_looks",
]

LOOKS_INSTEAD = "Where the model looks instead:"
"""How the failure text's line about the off-object mass starts."""


def provenance(maps: Any, *, method: str | None, layer: Any) -> dict[str, Any]:
    """``{"method": ..., "layer": ...}`` from the keywords, else from the maps (if known)."""
    method = method if method is not None else getattr(maps, "method", None)
    layer = layer if layer is not None else getattr(maps, "layer", None)
    found = {"method": method, "layer": layer}
    return {k: v for k, v in found.items() if v is not None}


def images_of(maps_or_images: Any) -> torch.Tensor:
    """The images behind an explainer's maps, or the argument itself if it is images."""
    inputs = getattr(maps_or_images, "inputs", None)
    return maps_or_images if inputs is None else inputs


def explainer_from(maps: Any, what: str) -> Explainer:
    """An ``explainer(model, images)`` that re-runs the method that made ``maps``.

    For checks that explain again (on noisy images, on a randomised model): the method,
    layer and targets of the :class:`~modelaudit.explainers.Explanation` are reused.
    """
    from modelaudit.explainers import explain

    method = getattr(maps, "method", None)
    if method is None:
        raise InvalidInputError(
            f"{what} needs an explainer: pass explainer=lambda model, images: ... or maps "
            "returned by a modelaudit explainer (they remember their method and layer)"
        )
    layer, targets = getattr(maps, "layer", None), getattr(maps, "targets", None)
    options = dict(getattr(maps, "options", None) or {})

    def again(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        target = None if targets is None else targets.to(images.device)
        return explain(method, model, images, target=target, layer=layer, **options)

    return again


def display_samples(
    maps: torch.Tensor | None,
    images: torch.Tensor | None,
    region: Region | None,
    *,
    explained: Any = None,
    region_kind: str = "object",
    peaks: bool = False,
    strip: Sequence[tuple[str, torch.Tensor]] = (),
    curves: Curves | None = None,
) -> SampleViews | None:
    """Detached CPU copies scaled for drawing: maps to [0, 1] per map, images to [0, 1].

    The class each map explains, the model's prediction and probability and the class
    names come from ``explained`` (default ``maps``) when it is an explainer's output.
    ``region_kind`` says what ``region`` outlines (``"object"`` or ``"forbidden
    region"``), ``peaks`` marks each map's maximum, ``strip`` adds captioned maps per
    sample (randomised, noisy), ``curves`` a record-level plot.

    Example:
        >>> views = display_samples(torch.rand(2, 4, 4) * 3, None, None, peaks=True)
        >>> float(views.maps.max()) <= 1.0, views.peaks, views.region
        (True, True, 'object')
    """
    if maps is None and images is None:
        return None
    n = None if maps is None else maps.shape[0]
    shown_maps = None if maps is None else _unit_maps(maps)
    shown_images = None if images is None else _unit_images(check_images(images, n=n))
    boxes = masks = None
    if region is not None:
        if region.boxes is not None:
            boxes = region.boxes.cpu()
        else:
            masks = region.masks.cpu()
    source = maps if explained is None else explained
    return SampleViews(
        images=shown_images,
        maps=shown_maps,
        boxes=boxes,
        masks=masks,
        region=region_kind,
        peaks=peaks,
        labels=_per_sample(getattr(source, "targets", None), n),
        predicted=_per_sample(getattr(source, "predicted", None), n),
        confidence=_per_sample(getattr(source, "confidence", None), n),
        class_names=getattr(source, "class_names", None),
        strip=tuple((caption, _unit_maps(m)) for caption, m in strip),
        curves=curves,
    )


def _per_sample(values: Any, n: int | None) -> torch.Tensor | None:
    """``values`` as an (n,) CPU tensor when it is one value per sample, else None."""
    if not isinstance(values, torch.Tensor) or values.dim() != 1:
        return None
    if n is not None and values.shape[0] != n:
        return None
    return values.detach().cpu()


def _unit_maps(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.detach().float().cpu().clamp(min=0).flatten(1)
    top = flat.amax(dim=1, keepdim=True)
    return (
        torch.where(top > 0, flat / top.clamp(min=1e-30), 0.0)
        .view(maps.shape)
        .as_subclass(torch.Tensor)
    )


def _unit_images(images: torch.Tensor) -> torch.Tensor:
    x = images.detach().float().cpu()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
        x = torch.where(span > 0, (x - lo) / span.clamp(min=1e-30), 0.0)
    return x.as_subclass(torch.Tensor)


def where_it_looks(
    maps: torch.Tensor, region: Region, images: torch.Tensor | None = None
) -> tuple[str, Overview]:
    """The failure line "Where the model looks instead: ..." and the report's overview.

    ``maps`` (N, H, W) and their validated ``region`` (the object of each sample) go to
    :func:`modelaudit.measure.off_object_mass`; ``images`` (N, C, H, W), when given, are
    averaged as the overview's background. For a check whose bound is ``at_least=`` on the
    object: pass the line as ``failure_notes=`` and the overview as ``overview=`` to
    :func:`~modelaudit.checks.record.decide`.

    Example:
        >>> from modelaudit.measure._validate import as_region
        >>> maps = torch.zeros(2, 16, 16)
        >>> maps[:, 12:, 12:] = 1.0
        >>> line, overview = where_it_looks(maps, as_region(torch.tensor([[6, 6, 10, 10]] * 2), (16, 16)))
        >>> print(line)
        Where the model looks instead: 100% of the maps' mass lies off the object; most of it in the bottom-right corner (100% of the off-object mass in 6% of the image)
        >>> overview.mean_map.shape, overview.caption == line[len(LOOKS_INSTEAD) + 1 :]
        (torch.Size([16, 16]), True)
    """
    found = off_object_mass(maps, region.masks)
    image = None
    if images is not None:
        image = _unit_images(check_images(images, n=maps.shape[0])).mean(dim=0)
    return looks_instead(found, image)


def looks_instead(found: OffObject, image: torch.Tensor | None) -> tuple[str, Overview]:
    """The failure line and the report's :class:`Overview` of an :class:`OffObject`, over
    ``image`` (the mean input in [0, 1], or None): what in-memory maps and scans share."""
    caption = found.describe()
    overview = Overview(
        mean_map=found.mean_map,
        mean_region=found.mean_region,
        off_map=found.off_map,
        image=image,
        region_mask=found.region_mask,
        caption=caption,
    )
    return f"{LOOKS_INSTEAD} {caption}", overview
