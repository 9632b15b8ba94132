"""The starter audit suite that ``modelaudit init`` writes for a user's own model (private).

Example:
    >>> files = starter_files("mypkg.models:build", layer="layer4", input_size=(3, 224, 224),
    ...                       classes=10)
    >>> sorted(files)
    ['conftest.py', 'pytest.ini', 'test_attention.py', 'test_structure.py']
    >>> "audit_model = mypkg.models:build" in files["pytest.ini"]
    True
"""

from __future__ import annotations

__all__ = ["FILE_NAMES", "starter_files"]

FILE_NAMES = ("pytest.ini", "conftest.py", "test_attention.py", "test_structure.py")

_PYTEST_INI = """\
# Configuration of the audits (written by `modelaudit init`). Run them with: pytest {folder}
[pytest]
addopts = -ra --import-mode=importlib
# where your package is importable from (relative to this folder)
pythonpath = {project}
# the model under audit (a pkg.module:factory, a zoo name, or a .pt state_dict + audit_arch)
audit_model = {factory}
# release gate for metrics recorded with the `audit` fixture; create or refresh it with
#   pytest {folder} --audit-update-baseline
audit_baseline = baseline.json
# report.html, records.json and the overlays of failing samples
audit_report_dir = {project}/audit-report
"""

_CONFTEST = '''\
"""Fixtures for auditing {factory} (written by `modelaudit init`; edit freely).

``audit_model`` (the model, in eval mode) comes from the modelaudit pytest plugin, built
from ``audit_model`` in pytest.ini or ``--audit-model``.
"""

import pytest
import torch

CAM_LAYER = {layer!r}  # the layer CAM methods explain; `modelaudit layers {factory}` lists all
INPUT_SIZE = {input_size!r}  # (channels, height, width) of one input
NUM_CLASSES = {classes}
ANY_INPUT_SIZE = {any_size}  # False: the model accepts only INPUT_SIZE


@pytest.fixture(scope="session")
def cam_layer():
    return CAM_LAYER


@pytest.fixture(scope="session")
def input_size():
    return INPUT_SIZE


@pytest.fixture(scope="session")
def num_classes():
    return NUM_CLASSES


@pytest.fixture(scope="session")
def any_input_size():
    """Skips the audits that need inputs of other sizes when the model takes only one."""
    if not ANY_INPUT_SIZE:
        pytest.skip(f"the model accepts only {{INPUT_SIZE}} inputs")


@pytest.fixture(scope="session")
def probe(audit_device):
    """Four seeded random inputs for the structural audits (real images work too)."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, *INPUT_SIZE, generator=gen).to(audit_device)


@pytest.fixture(scope="session")
def labelled_batch(audit_device):
    """Held-out images with the ground-truth box of the object in each: (images, boxes, labels).

    images: (N, C, H, W), preprocessed exactly as the model expects;
    boxes: (N, 4) long, (x1, y1, x2, y2) in pixels of those images, x2 and y2 exclusive;
    labels: (N,) long class indices.
    Use images the model was not trained on; 32 to 64 of them are plenty.
    """
    pytest.skip(
        "no labelled images yet: return (images, boxes, labels) from the labelled_batch "
        "fixture in conftest.py"
    )
'''

_TEST_ATTENTION = '''\
"""Does the model look at the object? Heat maps checked against ground-truth boxes.

Chance level is what a uniform map scores: the box's share of the image. Each test checks
that its bound sits well above it. Failing samples get overlays in the report folder.
"""

import pytest

import modelaudit as ma

MASS_IN_BOX = 0.5  # share of each map inside the object's box...
MOST_IMAGES = 0.9  # ...for at least 90% of the images
POINTING_GAME = 0.8  # share of maps whose hottest pixel lies in the box


def _chance(images, boxes):
    return float(ma.chance_level(boxes, tuple(images.shape[-2:])).mean())


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_attention_lies_inside_the_box(audit_model, labelled_batch, cam_layer, method, audit):
    images, boxes, labels = labelled_batch
    assert MASS_IN_BOX >= 2 * _chance(images, boxes), "the bound must sit well above chance"
    maps = ma.explain(method, audit_model, images, target=labels, layer=cam_layer)
    ma.assert_mass_in_box(  # the maps carry images, method and layer for the report
        maps, boxes, at_least=MASS_IN_BOX, aggregate=MOST_IMAGES,
    )
    audit.metric("mass_in_box", ma.mass_in_box(maps, boxes).mean())  # gated on baseline.json


def test_hottest_pixel_lies_inside_the_box(audit_model, labelled_batch, cam_layer):
    images, boxes, labels = labelled_batch
    assert POINTING_GAME >= 2 * _chance(images, boxes), "the bound must sit well above chance"
    maps = ma.gradcam(audit_model, images, target=labels, layer=cam_layer)
    ma.assert_pointing_game(
        maps, boxes, at_least=POINTING_GAME, aggregate="mean",
    )
'''

_TEST_STRUCTURE = '''\
"""Structural audits: feature-map shapes, gradients seen by hooks, no hooks left behind."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import modelaudit as ma
from modelaudit import strategies as mst


# Hypothesis rejects function-scoped fixtures: audit_model and these are session-scoped.
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_feature_maps_follow_the_input_size(
    audit_model, cam_layer, input_size, num_classes, any_input_size, audit_device, data
):
    c, h, w = input_size
    sides = mst.sizes(h * 3 // 4, h * 5 // 4), mst.sizes(w * 3 // 4, w * 5 // 4)
    images = data.draw(mst.images(batch=2, channels=c, height=sides[0], width=sides[1]))
    images = images.to(audit_device)
    upright = ma.feature_map_shapes(audit_model, images, layers=cam_layer)[cam_layer]
    flipped = ma.feature_map_shapes(audit_model, images.transpose(2, 3), layers=cam_layer)
    assert upright[0] == 2
    assert flipped[cam_layer][2:] == upright[2:][::-1]  # transposed input, transposed map
    with torch.no_grad():
        assert audit_model(images).shape == (2, num_classes)
    assert ma.gradcam(audit_model, images, layer=cam_layer).shape == (2, *images.shape[-2:])


def test_hook_gradients_match_autograd(audit_model, probe):
    ran = ma.feature_map_shapes(audit_model, probe[:1])  # leaves that ran
    modules = dict(audit_model.named_modules())
    layers = [n for n in ran if isinstance(modules[n], nn.Conv2d | nn.Linear)]
    ma.assert_hook_grads_match_autograd(audit_model, probe, layers)


def test_hooks_leave_gradients_alone(audit_model, probe, cam_layer, audit_capture):
    ma.assert_hooks_preserve_gradients(audit_model, probe)  # the model's own hooks
    with audit_capture(audit_model, cam_layer, grads=True):  # and modelaudit's
        ma.assert_hooks_preserve_gradients(audit_model, probe)


def test_explaining_leaves_no_trace(audit_model, probe, cam_layer):
    before = ma.hooks_by_module(audit_model)
    weights = {k: v.clone() for k, v in audit_model.state_dict().items()}
    for method in ("gradcam", "layercam"):
        ma.explain(method, audit_model, probe, layer=cam_layer)
    ma.assert_no_hooks_left(audit_model, baseline=before)
    assert not audit_model.training
    assert all(torch.equal(weights[k], v) for k, v in audit_model.state_dict().items())
'''


def starter_files(
    factory: str,
    *,
    layer: str,
    input_size: tuple[int, int, int],
    classes: int,
    any_size: bool = True,
    folder: str = "audits",
    project: str = "..",
) -> dict[str, str]:
    """The files of a starter audit suite, ``{file name: text}``.

    Args:
        factory: ``pkg.module:factory`` building the model.
        layer: the layer CAM methods explain.
        input_size: ``(channels, height, width)`` of one input.
        classes: number of output classes.
        any_size: whether the model accepts other input sizes (else the shape audit skips).
        folder: the suite's folder as the user names it (used in comments).
        project: the project root relative to the folder (put on ``sys.path``).
    """
    values = {
        "factory": factory,
        "layer": layer,
        "input_size": tuple(int(s) for s in input_size),
        "classes": int(classes),
        "any_size": bool(any_size),
        "folder": folder,
        "project": project,
    }
    return {
        "pytest.ini": _PYTEST_INI.format(**values),
        "conftest.py": _CONFTEST.format(**values),
        "test_attention.py": _TEST_ATTENTION,
        "test_structure.py": _TEST_STRUCTURE,
    }
