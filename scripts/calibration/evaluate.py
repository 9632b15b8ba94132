"""Score one verified model on one cue kind's audit set with every candidate measure.

For each layer policy (the old default - the last feature map - and :func:`choose_layer`
with ``min_cells`` 1, 2 and 3) and each method (Grad-CAM, LayerCAM), the candidates:

- ``raw``: mean mass in box;
- ``lift``: mean of mass / chance;
- ``calibrated``: mean of (mass - chance) / (ceiling - chance), ceiling at the layer's grid;
- ``pointing_calibrated``: the same for the pointing game;
- ``null_*``: the paired test of own-box mass against the shuffled-box null.

And the background counterfactual accuracies (Only-BG, Only-FG, Mixed-Rand, Mixed-Same).
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from torch import nn

import modelaudit as ma
from modelaudit.explainers.layer_choice import choose_layer, default_layer
from modelaudit.measure import background_reliance
from modelaudit.measure.calibration import (
    calibrated_score,
    localization_ceiling,
    paired_lift,
    shuffled_null,
)
from modelaudit.measure.offobject import off_object_mass

from .data import make
from .zoo import Spec

AUDIT_N = 64
POLICIES = ("default", "cells1", "cells2", "cells3")
METHODS = ("gradcam", "gradcam++", "layercam")


def audit_set(spec: Spec, cue: str) -> Any:
    seed = 9_000_000 + zlib.crc32(f"{spec.size}-{spec.area}-{cue}".encode()) % 100_000
    return make(AUDIT_N, seed=seed, size=spec.size, area=spec.area, cue=cue, cue_agree=1.0)


def layers_for(model: nn.Module, data: Any) -> dict[str, str]:
    out = {"default": default_layer(model, data.images)}
    for k in (1, 2, 3):
        out[f"cells{k}"] = choose_layer(model, data.images, data.boxes, min_cells=k).name
    return out


def localization_scores(maps: Any, boxes: torch.Tensor) -> dict[str, float]:
    size = tuple(maps.shape[-2:])
    grid = maps.grid
    mass = ma.mass_in_box(maps, boxes)
    chance = ma.chance_level(boxes, size)
    ceiling = localization_ceiling(boxes, size, grid=grid)
    point = ma.pointing_game(maps, boxes)
    p_ceiling = localization_ceiling(boxes, size, grid=grid, metric="pointing")
    null = shuffled_null(maps, boxes)
    lift = paired_lift(mass, null)
    off = off_object_mass(maps, boxes)
    return {
        "grid": list(grid),
        "raw": float(mass.mean()),
        "chance": float(chance.mean()),
        "ceiling": float(ceiling.mean()),
        "lift": float((mass / chance).mean()),
        "calibrated": float(calibrated_score(mass, chance, ceiling).mean()),
        "pointing": float(point.mean()),
        "pointing_ceiling": float(p_ceiling.mean()),
        "pointing_calibrated": float(
            calibrated_score(point, chance, p_ceiling.clamp(min=chance + 1e-3)).mean()
        ),
        "null": float(null.mean()),
        "null_calibrated": float(((mass - null) / (ceiling - chance)).mean()),
        "null_mean": lift.mean,
        "null_effect": lift.effect if abs(lift.effect) < 1e9 else 1e9,
        "null_p": lift.p_value,
        "off_object": off.off_object,
        "looks_instead": off.region,
    }


def evaluate(model: nn.Module, spec: Spec, cue: str) -> dict[str, Any]:
    data = audit_set(spec, cue)
    row: dict[str, Any] = {"layers": layers_for(model, data), "scores": {}}
    for layer in sorted(set(row["layers"].values())):
        for method in METHODS:
            maps = ma.explain(method, model, data.images, target=data.labels, layer=layer)
            row["scores"][f"{method}@{layer}"] = localization_scores(maps, data.boxes)
    bg = background_reliance(model, data.images, data.labels, masks=data.masks)
    row["background"] = {k: float(v) for k, v in bg.accuracies().items()}
    row["background"]["chance"] = float(bg.chance)
    return row
