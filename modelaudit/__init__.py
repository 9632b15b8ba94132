"""modelaudit: pytest for what a vision model looks at.

The public API is this module's ``__all__``: the names a user's audit needs. Everything
else stays importable from its own module (``modelaudit.hooks``, ``modelaudit.explainers``,
``modelaudit.measure``, ``modelaudit.checks``, ``modelaudit.report``...). Names are imported
on first use, so ``import modelaudit`` (and the pytest plugin that ships with it) does not
import torch until something is used.

Example:
    >>> import modelaudit as ma
    >>> callable(ma.capture), callable(ma.gradcam), "assert_mass_in_box" in ma.__all__
    (True, True, True)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelaudit._version import __version__
from modelaudit.errors import (
    AuditFailure,
    BaselineError,
    HookError,
    InvalidInputError,
    LayerNotFoundError,
    ModelAuditError,
)

if TYPE_CHECKING:
    from modelaudit.checks import (
        AuditRecord,
        ClassResult,
        assert_background_reliance,
        assert_faithful,
        assert_feature_map_shapes,
        assert_gradcheck,
        assert_hook_grads_match_autograd,
        assert_hooks_preserve_gradients,
        assert_iou,
        assert_looks_at_object,
        assert_map_changes_when_randomized,
        assert_mass_in_box,
        assert_no_hooks_left,
        assert_pointing_game,
        assert_stable,
        assert_within_baseline,
        collect_records,
        decide,
    )
    from modelaudit.data import (
        Batch,
        coco_detection,
        image_folder_with_boxes,
        iter_batches,
        read_dataset,
        voc_detection,
        voc_segmentation,
    )
    from modelaudit.explainers import (
        Explanation,
        LayerChoice,
        ablationcam,
        available_methods,
        choose_layer,
        eigencam,
        explain,
        gradcam,
        gradcam_pp,
        layercam,
        register_method,
        scorecam,
        swin_reshape,
        vit_reshape,
    )
    from modelaudit.fingerprints import fingerprint
    from modelaudit.hooks import (
        capture,
        feature_map_grid,
        feature_map_shapes,
        hooks_by_module,
        layer_names,
        preserved_state,
        tensor_grads,
    )
    from modelaudit.measure import (
        OffObject,
        Scan,
        ScanPart,
        background_counterfactuals,
        background_reliance,
        calibrated_score,
        chance_level,
        deletion_auc,
        insertion_auc,
        iou,
        localization_ceiling,
        mass_in_box,
        merge_scans,
        noise_stability,
        off_object_mass,
        pointing_game,
        randomization_similarity,
        rank_accuracy,
        scan,
        scan_part,
        shuffled_null,
    )
    from modelaudit.outputs import (
        from_output,
    )
    from modelaudit.report import AuditRecorder, log_feature_maps, overlay
    from modelaudit.targets import (
        detection_target,
        segmentation_target,
    )


__all__ = [
    "AuditFailure",
    "AuditRecord",
    "AuditRecorder",
    "BaselineError",
    "Batch",
    "ClassResult",
    "Explanation",
    "HookError",
    "InvalidInputError",
    "LayerChoice",
    "LayerNotFoundError",
    "ModelAuditError",
    "OffObject",
    "Scan",
    "ScanPart",
    "ablationcam",
    "assert_background_reliance",
    "assert_faithful",
    "assert_feature_map_shapes",
    "assert_gradcheck",
    "assert_hook_grads_match_autograd",
    "assert_hooks_preserve_gradients",
    "assert_iou",
    "assert_looks_at_object",
    "assert_map_changes_when_randomized",
    "assert_mass_in_box",
    "assert_no_hooks_left",
    "assert_pointing_game",
    "assert_stable",
    "assert_within_baseline",
    "available_methods",
    "background_counterfactuals",
    "background_reliance",
    "calibrated_score",
    "capture",
    "chance_level",
    "choose_layer",
    "coco_detection",
    "collect_records",
    "decide",
    "deletion_auc",
    "detection_target",
    "eigencam",
    "explain",
    "feature_map_grid",
    "feature_map_shapes",
    "fingerprint",
    "from_output",
    "gradcam",
    "gradcam_pp",
    "hooks_by_module",
    "image_folder_with_boxes",
    "insertion_auc",
    "iou",
    "iter_batches",
    "layer_names",
    "layercam",
    "localization_ceiling",
    "log_feature_maps",
    "mass_in_box",
    "merge_scans",
    "noise_stability",
    "off_object_mass",
    "overlay",
    "pointing_game",
    "preserved_state",
    "randomization_similarity",
    "rank_accuracy",
    "read_dataset",
    "register_method",
    "scan",
    "scan_part",
    "scorecam",
    "segmentation_target",
    "shuffled_null",
    "swin_reshape",
    "tensor_grads",
    "vit_reshape",
    "voc_detection",
    "voc_segmentation",
]

# Where each lazily imported public name lives (the errors above are imported eagerly).
_HOME = {
    **dict.fromkeys(
        [
            "capture",
            "feature_map_grid",
            "feature_map_shapes",
            "hooks_by_module",
            "layer_names",
            "preserved_state",
            "tensor_grads",
        ],
        "modelaudit.hooks",
    ),
    **dict.fromkeys(
        [
            "Explanation",
            "LayerChoice",
            "ablationcam",
            "available_methods",
            "choose_layer",
            "eigencam",
            "explain",
            "gradcam",
            "gradcam_pp",
            "layercam",
            "register_method",
            "scorecam",
            "swin_reshape",
            "vit_reshape",
        ],
        "modelaudit.explainers",
    ),
    **dict.fromkeys(
        [
            "OffObject",
            "background_counterfactuals",
            "background_reliance",
            "calibrated_score",
            "chance_level",
            "deletion_auc",
            "insertion_auc",
            "iou",
            "localization_ceiling",
            "mass_in_box",
            "noise_stability",
            "off_object_mass",
            "pointing_game",
            "randomization_similarity",
            "rank_accuracy",
            "shuffled_null",
        ],
        "modelaudit.measure",
    ),
    **dict.fromkeys(
        [
            "AuditRecord",
            "assert_background_reliance",
            "assert_faithful",
            "assert_feature_map_shapes",
            "assert_gradcheck",
            "assert_hook_grads_match_autograd",
            "assert_hooks_preserve_gradients",
            "assert_iou",
            "assert_looks_at_object",
            "assert_map_changes_when_randomized",
            "assert_mass_in_box",
            "assert_no_hooks_left",
            "assert_pointing_game",
            "assert_stable",
            "assert_within_baseline",
            "collect_records",
            "decide",
        ],
        "modelaudit.checks",
    ),
    **dict.fromkeys(["AuditRecorder", "log_feature_maps", "overlay"], "modelaudit.report"),
    **dict.fromkeys(
        [
            "Batch",
            "coco_detection",
            "image_folder_with_boxes",
            "iter_batches",
            "read_dataset",
            "voc_detection",
            "voc_segmentation",
        ],
        "modelaudit.data",
    ),
    **dict.fromkeys(["from_output"], "modelaudit.outputs"),
    **dict.fromkeys(["detection_target", "segmentation_target"], "modelaudit.targets"),
    **dict.fromkeys(["Scan", "scan"], "modelaudit.measure"),
    **dict.fromkeys(["ClassResult"], "modelaudit.checks"),
    **dict.fromkeys(["ScanPart", "merge_scans", "scan_part"], "modelaudit.measure"),
    "fingerprint": "modelaudit.fingerprints",
}
_SUBMODULES = frozenset(
    {
        "baseline",
        "outputs",
        "data",
        "checks",
        "cli",
        "explainers",
        "hooks",
        "loading",
        "measure",
        "report",
        "strategies",
        "targets",
        "zoo",
    }
)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'modelaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
