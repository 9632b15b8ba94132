"""Measure: pure, batched metrics over heat maps, boxes, masks and (for some) a model.

Localization (:mod:`~modelaudit.measure.localization`), map similarity
(:mod:`~modelaudit.measure.similarity`), parameter randomisation
(:mod:`~modelaudit.measure.sanity`), deletion/insertion and confidence drop
(:mod:`~modelaudit.measure.faithfulness`), stability
(:mod:`~modelaudit.measure.stability`), where off-object mass lies
(:mod:`~modelaudit.measure.offobject`), background counterfactuals
(:mod:`~modelaudit.measure.background`) and streamed scans of a dataset
(:mod:`~modelaudit.measure.scanning`). Nothing here registers hooks; model-based metrics
call a user-supplied ``explainer(model, images) -> (N, H, W)``.

Example:
    >>> import torch
    >>> import modelaudit as ma
    >>> maps = torch.zeros(1, 8, 8)
    >>> maps[0, 2, 3] = 1.0
    >>> ma.pointing_game(maps, torch.tensor([[2, 1, 6, 5]]))
    tensor([1.])
"""

from modelaudit.measure._explainer import Explainer
from modelaudit.measure.background import (
    BackgroundReliance,
    Counterfactuals,
    background_counterfactuals,
    background_reliance,
)
from modelaudit.measure.calibration import (
    PairedLift,
    calibrated_score,
    ideal_maps,
    localization_ceiling,
    paired_lift,
    shuffled_null,
)
from modelaudit.measure.faithfulness import (
    average_drop,
    deletion_auc,
    increase_in_confidence,
    insertion_auc,
    perturbation_curve,
)
from modelaudit.measure.localization import (
    chance_level,
    iou,
    mass_in_box,
    mass_in_mask,
    pointing_game,
    rank_accuracy,
)
from modelaudit.measure.offobject import (
    OffObject,
    mean_heat_map,
    mean_region,
    off_object_mass,
)
from modelaudit.measure.offobject_sums import OffObjectSums
from modelaudit.measure.sanity import RandomizationResult, randomization_similarity
from modelaudit.measure.scan_parts import ScanPart, merge_scans
from modelaudit.measure.scanning import Kept, Scan, scan, scan_part
from modelaudit.measure.similarity import map_similarity, spearman, ssim
from modelaudit.measure.stability import (
    StabilityResult,
    flip_equivariance,
    map_change,
    noise_stability,
)

__all__ = [
    "BackgroundReliance",
    "Counterfactuals",
    "Explainer",
    "Kept",
    "OffObject",
    "OffObjectSums",
    "PairedLift",
    "RandomizationResult",
    "Scan",
    "ScanPart",
    "StabilityResult",
    "average_drop",
    "background_counterfactuals",
    "background_reliance",
    "calibrated_score",
    "chance_level",
    "deletion_auc",
    "flip_equivariance",
    "ideal_maps",
    "increase_in_confidence",
    "insertion_auc",
    "iou",
    "localization_ceiling",
    "map_change",
    "map_similarity",
    "mass_in_box",
    "mass_in_mask",
    "mean_heat_map",
    "mean_region",
    "merge_scans",
    "noise_stability",
    "off_object_mass",
    "paired_lift",
    "perturbation_curve",
    "pointing_game",
    "randomization_similarity",
    "rank_accuracy",
    "scan",
    "scan_part",
    "shuffled_null",
    "spearman",
    "ssim",
]
