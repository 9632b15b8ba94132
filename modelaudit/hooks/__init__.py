"""Capture: record what layers receive, return and get as gradients, through torch hooks."""

from modelaudit.hooks.gradients import (
    assert_hook_grads_match_autograd,
    assert_hooks_preserve_gradients,
    gradcheck_module,
)
from modelaudit.hooks.grid import feature_map_grid, grid_layout, scale_each
from modelaudit.hooks.inventory import (
    ModuleHook,
    assert_no_hooks_left,
    disabled_hooks,
    hook_count,
    hooks_by_module,
    list_hooks,
)
from modelaudit.hooks.layers import (
    LayerSpec,
    closest_layer_names,
    layer_names,
    leaf_layers,
    resolve_layer,
    resolve_layers,
)
from modelaudit.hooks.recording import CallsPolicy, Capture, HookEvent, RecordMissingError, capture
from modelaudit.hooks.shapes import assert_feature_map_shapes, feature_map_shapes
from modelaudit.hooks.state import ModelState, preserved_state
from modelaudit.hooks.tensors import TensorGrads, tensor_grads

__all__ = [
    "CallsPolicy",
    "Capture",
    "HookEvent",
    "LayerSpec",
    "ModelState",
    "ModuleHook",
    "RecordMissingError",
    "TensorGrads",
    "assert_feature_map_shapes",
    "assert_hook_grads_match_autograd",
    "assert_hooks_preserve_gradients",
    "assert_no_hooks_left",
    "capture",
    "closest_layer_names",
    "disabled_hooks",
    "feature_map_grid",
    "feature_map_shapes",
    "gradcheck_module",
    "grid_layout",
    "hook_count",
    "hooks_by_module",
    "layer_names",
    "leaf_layers",
    "list_hooks",
    "preserved_state",
    "resolve_layer",
    "resolve_layers",
    "scale_each",
    "tensor_grads",
]
