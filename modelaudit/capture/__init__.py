"""Capture: record what layers receive, return and get as gradients, through torch hooks."""

from modelaudit.capture.layers import (
    LayerSpec,
    closest_layer_names,
    layer_names,
    leaf_layers,
    resolve_layer,
    resolve_layers,
)
from modelaudit.capture.state import ModelState, preserved_state

__all__ = [
    "LayerSpec",
    "ModelState",
    "closest_layer_names",
    "layer_names",
    "leaf_layers",
    "preserved_state",
    "resolve_layer",
    "resolve_layers",
]
