"""The explainer contract for model-based metrics, and a checked way to call one.

An *explainer* is any callable ``explainer(model, images) -> maps`` returning ``(N, H, W)``
heat maps for ``(N, C, H, W)`` images, e.g.
``lambda m, x: modelaudit.gradcam(m, x, layer="features.8")``. Metrics that perturb the model
(sanity) hand the explainer a *copy* of the model, so it must find layers by name, not hold
module objects of the original.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.measure._explainer import run_explainer
    >>> run_explainer(lambda m, x: x.mean(1), nn.Identity(), torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 4, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.measure._validate import check_maps

__all__ = ["Explainer", "run_explainer"]

Explainer: TypeAlias = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def run_explainer(
    explainer: Explainer, model: nn.Module, images: torch.Tensor, *, when: str = ""
) -> torch.Tensor:
    """Call ``explainer(model, images)`` and check it returned finite ``(N, H, W)`` maps.

    ``when`` describes the situation for error messages (e.g. "after randomising 'fc'").
    """
    if not callable(explainer):
        raise InvalidInputError(
            f"explainer must be a callable (model, images) -> (N, H, W) maps; got "
            f"{type(explainer).__name__}"
        )
    maps = explainer(model, images)
    maps = check_maps(maps, name="explainer output", when=when)
    name = "explainer output" + (f" {when}" if when else "")
    if maps.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"{name} has {maps.shape[0]} maps for {images.shape[0]} images; the explainer must "
            "return one (H, W) map per image."
        )
    return maps.detach()
