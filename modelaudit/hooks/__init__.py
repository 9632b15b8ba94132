"""Capture: record what layers receive, return and get as gradients, through torch hooks."""

from modelaudit.hooks.gradients import hook_grad_gaps, hook_gradient_effects
from modelaudit.hooks.grid import feature_map_grid, grid_layout, scale_each
from modelaudit.hooks.inventory import (
    ModuleHook,
    describe_hooks_left,
    disabled_hooks,
    hook_count,
    hooks_by_module,
    hooks_left,
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
from modelaudit.hooks.shapes import feature_map_shapes, shape_diff
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
    "capture",
    "closest_layer_names",
    "describe_hooks_left",
    "disabled_hooks",
    "feature_map_grid",
    "feature_map_shapes",
    "grid_layout",
    "hook_count",
    "hook_grad_gaps",
    "hook_gradient_effects",
    "hooks_by_module",
    "hooks_left",
    "layer_names",
    "leaf_layers",
    "list_hooks",
    "preserved_state",
    "resolve_layer",
    "resolve_layers",
    "scale_each",
    "shape_diff",
    "tensor_grads",
]
