"""Fixtures shared by the audits: data with ground truth, the layer to explain, probe inputs.

The model comes from the modelaudit pytest plugin: ``audit_model`` is a session-scoped
fixture holding whatever ``--audit-model`` (or ``audit_model`` in pytest.ini) names, in eval
mode on ``--audit-device``. To audit your own model, copy this folder and replace ``shapes``
with a fixture that returns your labelled images (or start with ``modelaudit init``).

Two kinds of audit live here:

- attention audits (test_localization, test_sanity, test_faithfulness, test_stability) need
  images whose ground truth is known; they run for models trained on the zoo's shapes and
  are skipped, with the reason, for anything else;
- structural audits (test_shapes, test_gradients, test_hooks) run for every model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import modelaudit as ma
from modelaudit import zoo
from modelaudit.explainers.layer_choice import default_layer

N_IMAGES = 64  # held-out images the attention audits explain (never seen in training)


@pytest.fixture(scope="session")
def model_name(pytestconfig: pytest.Config) -> str:
    """The ``--audit-model`` value (the command line wins over pytest.ini)."""
    return str(pytestconfig.getoption("audit_model") or pytestconfig.getini("audit_model"))


@pytest.fixture(scope="session")
def model_facts(model_name: str) -> dict[str, Any]:
    """What the zoo knows about the model (layer to explain, input size...); {} otherwise."""
    return zoo.model_info(model_name) if model_name in zoo.available_models() else {}


@pytest.fixture(scope="session")
def cam_layer(
    audit_model: torch.nn.Module, model_facts: dict[str, Any], probe: torch.Tensor
) -> str:
    """The layer the structural audits explain: the zoo's documented one, else the default.

    The default is the last layer returning a 4-D feature map (``layer4`` of a ResNet);
    ``modelaudit layers MODEL`` lists the names you can pick instead.
    """
    return model_facts.get("gradcam_layer") or default_layer(audit_model, probe)


@pytest.fixture(scope="session")
def object_layer(audit_model: torch.nn.Module, shapes: Any) -> str:
    """The layer the attention audits explain: the deepest whose cells fit the objects.

    ``ma.choose_layer`` picks the deepest layer at which the median box spans at least two
    cells each way (a coarser grid blurs every map over the whole object and beyond, so
    no heat map could show what the model reads); for ``shapes-cnn`` that is its last
    block (16 x 16 cells of 4 px, boxes of about 23 px).
    """
    return ma.choose_layer(audit_model, shapes.images, shapes.boxes).name


@pytest.fixture(scope="session")
def reshape(model_facts: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Token -> grid reshaping for a vision transformer; None for CNNs."""
    return ma.vit_reshape if model_facts.get("tokens") else None


@pytest.fixture(scope="session")
def input_size(model_facts: dict[str, Any]) -> tuple[int, int]:
    """(H, W) the model expects; 64 x 64 unless the zoo says otherwise."""
    height, width = model_facts.get("input_size") or (64, 64)
    return int(height), int(width)


@pytest.fixture(scope="session")
def shapes(model_name: str, model_facts: dict[str, Any], audit_device: torch.device) -> Any:
    """Held-out shape images with ground-truth boxes (``.images .boxes .labels``...).

    Every image carries the watermark of its own class in a corner, outside the object's
    box: a model that reads the watermark instead of the shape scores high accuracy here,
    and the attention audits catch it.
    """
    if model_facts.get("kind") != "trained":
        pytest.skip(
            f"attention audits need images with ground-truth boxes; {model_name!r} was not "
            "trained on the zoo's shapes (for your own model and data, see `modelaudit init`)"
        )
    data = zoo.audit_data(N_IMAGES)
    fields = ("images", "boxes", "labels", "masks", "watermark_labels", "watermark_boxes")
    return zoo.ShapesData(**{f: getattr(data, f).to(audit_device) for f in fields})


@pytest.fixture(scope="session")
def probe(input_size: tuple[int, int], audit_device: torch.device) -> torch.Tensor:
    """Four seeded random images at the model's input size, for the structural audits."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, *input_size, generator=gen).to(audit_device)
