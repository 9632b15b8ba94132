"""The starter audit suite that ``modelaudit init`` writes for a user's own model (private).

The suite mirrors the repository's ``audits/`` folder: localization, background reliance,
sanity and stability audits wait for the user's labelled images; the structural audits run
at once. :func:`layer_comment` writes down, as comments of the generated conftest.py, which
layer suits which object sizes and the rule the ``cam_layer`` fixture applies at run time.

Example:
    >>> files = starter_files("mypkg.models:build", layer="layer4", input_size=(3, 224, 224),
    ...                       classes=10)
    >>> sorted(files)  # doctest: +NORMALIZE_WHITESPACE
    ['conftest.py', 'pytest.ini', 'test_background.py', 'test_localization.py',
     'test_sanity.py', 'test_stability.py', 'test_structure.py']
    >>> "audit_model = mypkg.models:build" in files["pytest.ini"]
    True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "FILE_NAMES",
    "data_fixture",
    "layer_comment",
    "layer_rows",
    "starter_files",
]

FILE_NAMES = (
    "pytest.ini",
    "conftest.py",
    "test_localization.py",
    "test_background.py",
    "test_sanity.py",
    "test_stability.py",
    "test_structure.py",
)

_PYTEST_INI = """\
# Configuration of the audits (written by `modelaudit init`). Run them with: pytest {folder}
# Relative paths below are relative to this folder.
[pytest]
addopts = -ra --tb=short --import-mode=importlib
# where your package is importable from
pythonpath = {project}
# the model under audit: a pkg.module:factory, a zoo name, or a .pt state_dict + audit_arch
audit_model = {model}
{arch}# release gate for metrics recorded with the `audit` fixture; create or refresh it with
#   pytest {folder} --audit-update-baseline
audit_baseline = baseline.json
# report.html, records.json and the overlays of failing samples, in this suite's own folder
# (two suites never overwrite each other's report)
audit_report_dir = audit-report
"""

_ARCH = """\
# the architecture the weights are loaded into (torch.load(weights_only=True), strict keys)
audit_arch = {arch}
"""

_CONFTEST = '''\
"""Fixtures for auditing {title} (written by `modelaudit init`; edit freely).

``audit_model`` (the model, in eval mode) comes from the modelaudit pytest plugin, built
from ``audit_model`` in pytest.ini or ``--audit-model``.

The attention audits (test_localization, test_background, test_sanity, test_stability)
need your labelled images: fill in ``labelled_batch`` below. The structural audits
(test_structure) run at once.
"""

import pytest
import torch

import modelaudit as ma

{layer_comment}
CAM_LAYER = {layer!r}  # None: chosen from your boxes at run time; a layer name pins it
MIN_CELLS = {min_cells}  # an object must span at least MIN_CELLS x MIN_CELLS cells of the layer
INPUT_SIZE = {input_size!r}  # (channels, height, width) of one input
NUM_CLASSES = {classes}
ANY_INPUT_SIZE = {any_size}  # False: the model accepts only INPUT_SIZE


@pytest.fixture(scope="session")
def cam_layer(audit_model, labelled_batch):
    """The layer the attention audits explain: CAM_LAYER if pinned, else the deepest layer
    whose cells let the median labelled box span MIN_CELLS x MIN_CELLS cells."""
    if CAM_LAYER is not None:
        return CAM_LAYER
    images, boxes, _ = labelled_batch
    return ma.choose_layer(audit_model, images, boxes, min_cells=MIN_CELLS).name


@pytest.fixture(scope="session")
def structure_layer(audit_model, probe):
    """The layer the structural audits explain (they have no boxes): CAM_LAYER if pinned,
    else the automatic default, the last 4-D feature map."""
    if CAM_LAYER is not None:
        return CAM_LAYER
    return ma.choose_layer(audit_model, probe).name


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


{labelled_batch}'''

_LABELLED_TODO = """\
@pytest.fixture(scope="session")
def labelled_batch(audit_device):
    \"\"\"Held-out images with the ground-truth box of the object in each: (images, boxes, labels).

    images: (N, C, H, W), preprocessed exactly as the model expects;
    boxes: (N, 4) long, (x1, y1, x2, y2) in pixels of those images, x2 and y2 exclusive;
    labels: (N,) long class indices.
    Use images the model was not trained on; 32 to 64 of them are plenty.
    \"\"\"
    pytest.skip(
        "no labelled images yet: return (images, boxes, labels) from the labelled_batch "
        "fixture in conftest.py"
    )
"""

_LABELLED_FROM_DISK = """\
# Your labelled images on disk (modelaudit init --data {spec}), read by
# modelaudit.data.{reader}; paths are relative to this folder. The transforms run on each
# image and its boxes together (torchvision transforms v2).
DATA_LIMIT = {limit}  # the first DATA_LIMIT images form the audit batch
CLASSES = {classes!r}  # class names in label order; None: the reader's own list


def read_dataset():
    \"\"\"Your dataset: (image, target) pairs, images resized to INPUT_SIZE.\"\"\"
    from pathlib import Path

    from torchvision.transforms import v2

    from modelaudit.data import {reader}

    here = Path(__file__).parent
    transforms = v2.Compose([
        v2.Resize(INPUT_SIZE[1:]),
        # v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),  # if needed
    ])
    return {call}


@pytest.fixture(scope="session")
def labelled_batch(audit_model, audit_device):
    \"\"\"The first DATA_LIMIT images of your dataset: (images, boxes, labels).

    One region per image (modelaudit.data.iter_batches): the class of its largest object and
    that object's box, widened to whole pixels. The dataset's class names name the classes
    in the report and the per-class results, unless the model has its own class_names.
    \"\"\"
    from modelaudit.data import iter_batches

    dataset = read_dataset()
    if getattr(audit_model, "class_names", None) is None:
        audit_model.class_names = list(dataset.classes)
    batch = next(iter_batches(
        dataset, batch_size=DATA_LIMIT, num_classes=NUM_CLASSES, need=("boxes",)
    ))
    corners = (batch.boxes[:, :2].floor(), batch.boxes[:, 2:].ceil())
    boxes = torch.cat(corners, dim=1).long()
    return tuple(t.to(audit_device) for t in (batch.images, boxes, batch.labels))
"""

_READERS = {
    "voc": ("voc_detection", "{reader}(here / {p0!r}, classes=CLASSES, transforms=transforms)"),
    "voc-segmentation": (
        "voc_segmentation",
        "{reader}(here / {p0!r}, classes=CLASSES, transforms=transforms)",
    ),
    "coco": ("coco_detection", "{reader}(here / {p0!r}, here / {p1!r}, transforms=transforms)"),
    "folder": (
        "image_folder_with_boxes",
        "{reader}(here / {p0!r}, here / {p1!r}, classes=CLASSES, transforms=transforms)",
    ),
}
"""Layouts of ``modelaudit init --data``: the reader and its call in the conftest."""

_TEST_LOCALIZATION = '''\
"""Does the model look at the object? Heat maps checked against ground-truth boxes.

Each test explains the true class of your labelled images with LayerCAM at the layer
chosen from your boxes (conftest.py) and compares the maps with the object's box, in
calibrated units that mean the same on any data, so there is no bound to choose:
0 is what a uniform map scores, 1 what the box itself scores at the layer's resolution.
The bounds come from modelaudit's calibration study (tuned on one split, 100% sensitivity
and specificity on two others; see modelaudit's README, "How the bounds were chosen").
A failure says where the model looks instead; audit-report/report.html shows the mean heat
map and the failing samples' overlays.
"""

import modelaudit as ma

POINTING_GAME = 0.55  # hit rate of the maps' maxima (the study's bound, LayerCAM)


def test_attention_lies_on_the_object(audit_model, labelled_batch, cam_layer, audit):
    images, boxes, labels = labelled_batch
    maps = ma.layercam(audit_model, images, target=labels, layer=cam_layer)
    ma.assert_looks_at_object(maps, boxes)  # the maps carry images, method, layer, grid
    # Release gate, image by image: the share of each map in its box against baseline.json.
    audit.metric("mass_in_box", {mass_in_box})


def test_hottest_pixel_lies_inside_the_box(audit_model, labelled_batch, cam_layer):
    images, boxes, labels = labelled_batch
    maps = ma.layercam(audit_model, images, target=labels, layer=cam_layer)
    ma.assert_pointing_game(maps, boxes, at_least=POINTING_GAME, aggregate="mean")
'''

_TEST_BACKGROUND = '''\
"""Does the prediction rest on the object or on the background around it? No heat maps.

From your boxes (Xiao et al. 2020, "Noise or Signal"): Only-BG images (the object removed),
Only-FG (the background neutralised) and Mixed-Rand (the object on another class's
background). A model that reads the object classifies Only-BG at chance and keeps its answer
on Mixed-Rand; one that reads the background does the opposite and fails here. The margins
come from modelaudit's calibration study. With object masks, pass masks= instead of boxes=.
"""

import modelaudit as ma


def test_prediction_does_not_rest_on_the_background(audit_model, labelled_batch):
    images, boxes, labels = labelled_batch
    ma.assert_background_reliance(audit_model, images, labels, boxes=boxes)
'''

_TEST_SANITY = '''\
"""Sanity check (Adebayo et al., 2018): the heat map must depend on what the model learned.

The layers' weights are replaced by random ones one at a time, from the top down, keeping
the earlier replacements ("cascading"). After each step the new map is compared with the
original one by Spearman rank correlation: 1 means the same ranking of pixels, 0 none. A
method whose map survives randomisation explains the image, not the model, and fails here.
"""

import modelaudit as ma

N = 16  # images; each randomisation step explains all of them once
MAX_SIMILARITY = 0.4  # mean over images of the rank correlation at the most similar step


def test_map_changes_when_weights_are_randomized(audit_model, labelled_batch, cam_layer):
    images, _, labels = labelled_batch
    images, labels = images[:N], labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=cam_layer)

    # Grad-CAM runs again, same layer and targets, on randomised copies of the model.
    ma.assert_map_changes_when_randomized(
        audit_model,
        maps,
        at_most=MAX_SIMILARITY,
        mode="cascading",
        at_step="all",  # each image counts its most similar step...
        aggregate="mean",  # ...and the mean over images must stay below the bound
        seed=0,
    )
'''

_TEST_STABILITY = '''\
"""Stability: a little noise on the image must not move the heat map much.

Noise of standard deviation 0.02 (2% of the pixel range, invisible to a person) is added
four times; the change of a map is 1 - Spearman rank correlation with the original map
(0: same ranking of pixels; 1: unrelated). Each image counts its largest change.
"""

import modelaudit as ma

N = 32  # images
MAX_CHANGE = 0.2  # largest change over the noise draws, for every image


def test_map_is_stable_under_small_noise(audit_model, labelled_batch, cam_layer, audit):
    images, _, labels = labelled_batch
    images, labels = images[:N], labels[:N]
    maps = ma.gradcam(audit_model, images, target=labels, layer=cam_layer)

    # Grad-CAM runs again, same layer and targets, on noisy copies of the images.
    record = ma.assert_stable(
        audit_model, maps, perturbation="noise", sigma=0.02, repeats=4, at_most=MAX_CHANGE
    )
    mean_change = sum(record.values) / len(record.values)
    audit.metric("mean_map_change_noise", mean_change, direction="lower", tolerance=0.5)
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
    audit_model, structure_layer, input_size, num_classes, any_input_size, audit_device, data
):
    c, h, w = input_size
    sides = mst.sizes(h * 3 // 4, h * 5 // 4), mst.sizes(w * 3 // 4, w * 5 // 4)
    images = data.draw(mst.images(batch=2, channels=c, height=sides[0], width=sides[1]))
    images = images.to(audit_device)
    upright = ma.feature_map_shapes(audit_model, images, layers=structure_layer)[structure_layer]
    flipped = ma.feature_map_shapes(audit_model, images.transpose(2, 3), layers=structure_layer)
    assert upright[0] == 2
    assert flipped[structure_layer][2:] == upright[2:][::-1]  # transposed input, transposed map
    with torch.no_grad():
        assert audit_model(images).shape == (2, num_classes)
    assert ma.gradcam(audit_model, images, layer=structure_layer).shape == (2, *images.shape[-2:])


def test_hook_gradients_match_autograd(audit_model, probe):
    ran = ma.feature_map_shapes(audit_model, probe[:1])  # leaves that ran
    modules = dict(audit_model.named_modules())
    layers = [n for n in ran if isinstance(modules[n], nn.Conv2d | nn.Linear)]
    ma.assert_hook_grads_match_autograd(audit_model, probe, layers)


def test_hooks_leave_gradients_alone(audit_model, probe, structure_layer, audit_capture):
    ma.assert_hooks_preserve_gradients(audit_model, probe)  # the model's own hooks
    with audit_capture(audit_model, structure_layer, grads=True):  # and modelaudit's
        ma.assert_hooks_preserve_gradients(audit_model, probe)


def test_explaining_leaves_no_trace(audit_model, probe, structure_layer):
    before = ma.hooks_by_module(audit_model)
    weights = {k: v.clone() for k, v in audit_model.state_dict().items()}
    for method in ("gradcam", "layercam"):
        ma.explain(method, audit_model, probe, layer=structure_layer)
    ma.assert_no_hooks_left(audit_model, baseline=before)
    assert not audit_model.training
    assert all(torch.equal(weights[k], v) for k, v in audit_model.state_dict().items())
'''


_MASS_PER_SAMPLE = "ma.mass_in_box(maps, boxes), maps=maps"
"""``audit.metric`` takes the per-sample values and the maps (the report shows them)."""


def _px(value: float) -> str:
    """Pixels with at most one decimal: ``16``, ``10.7``."""
    return f"{round(value, 1):g}"


def _sides(hw: tuple[float, float]) -> str:
    """``"16 px"`` for a square, ``"16x12 px"`` (height x width) otherwise."""
    h, w = (_px(v) for v in hw)
    return f"{h} px" if h == w else f"{h}x{w} px"


def layer_rows(
    candidates: Sequence[tuple[str, tuple[int, int]]],
    hw: tuple[int, int],
    *,
    min_cells: float = 2,
    default: str | None = None,
) -> list[str]:
    """One aligned line per grid size: its deepest layer, cell size and the objects it suits.

    A layer of grid (h, w) at input ``hw`` has cells of ``H/h x W/w`` px; an object must
    span ``min_cells`` cells each way, so it suits objects of ``min_cells`` times that and
    more. Grids too coarse for ``min_cells`` cells are left out.

    Example:
        >>> for line in layer_rows([("a", (8, 8)), ("b", (4, 4)), ("pool", (1, 1))], (64, 64),
        ...                        default="b"):
        ...     print(line)
        a  8x8 cells of  8 px  -> objects of 16 px and more
        b  4x4 cells of 16 px  -> objects of 32 px and more  (the default without boxes)
    """
    deepest: dict[tuple[int, int], str] = {}
    for name, grid in candidates:
        key = (int(grid[0]), int(grid[1]))
        deepest.pop(key, None)  # re-insert: execution order of the deepest one
        deepest[key] = name
    rows = []
    for grid, name in deepest.items():
        if min(grid) < min_cells:
            continue
        cell = (hw[0] / grid[0], hw[1] / grid[1])
        smallest = (cell[0] * min_cells, cell[1] * min_cells)
        note = "  (the default without boxes)" if name == default else ""
        rows.append(
            (
                name,
                f"{grid[0]}x{grid[1]}",
                _sides(cell),
                f"-> objects of {_sides(smallest)} and more{note}",
            )
        )
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    return [
        f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])} cells of {r[2].rjust(widths[2])}  {r[3]}"
        for r in rows
    ]


def layer_comment(
    candidates: Sequence[tuple[str, tuple[int, int]]],
    hw: tuple[int, int],
    *,
    min_cells: float = 2,
    default: str | None = None,
    pinned: str | None = None,
    spec: str = "MODEL",
) -> str:
    """The comment block of the generated conftest.py explaining the choice of CAM layer.

    Args:
        candidates: ``(name, (h, w))`` of every 4-D layer that runs once, in execution
            order (:attr:`modelaudit.LayerChoice.candidates`).
        hw: the audit input size (H, W) in pixels.
        min_cells: cells an object must span each way.
        default: the layer chosen without boxes (marked in the table).
        pinned: the layer ``--layer`` pinned, if any.
        spec: what to pass to ``modelaudit layers`` to list every layer.
    """
    table = layer_rows(candidates, hw, min_cells=min_cells, default=default)
    lines = [
        "Which layer the attention audits explain. Grad-CAM & co score a layer's feature map",
        "one cell at a time, so a map can tell an object from its surroundings only when the",
        f"object spans at least MIN_CELLS x MIN_CELLS cells (MIN_CELLS = {_px(min_cells)}). The layers",
        f"at the audit input of {hw[0]} x {hw[1]} px, the deepest of each grid, sizes height x",
        f"width (`modelaudit layers {spec}` lists every layer):",
        "",
        *(f"  {row}" for row in table),
        "",
        "The rule (ma.choose_layer, in the cam_layer fixture): the deepest layer whose cells",
        "are small enough that the median labelled box spans at least MIN_CELLS x MIN_CELLS",
        "cells (if none is, the finest layer); deeper layers carry more meaning, shallower",
        "ones finer detail. The structural audits have no boxes: they use the default, the",
        "last 4-D feature map.",
    ]
    if pinned is not None:
        lines += [
            f"CAM_LAYER pins {pinned!r} (modelaudit init --layer): every audit explains it;",
            "set CAM_LAYER = None to choose from your boxes instead.",
        ]
    return "\n".join(f"# {line}".rstrip() for line in lines)


def starter_files(
    model: str,
    *,
    input_size: tuple[int, int, int],
    classes: int,
    arch: str | None = None,
    layer: str | None = None,
    comment: str = "",
    min_cells: float = 2,
    any_size: bool = True,
    folder: str = "audits",
    project: str = "..",
    labelled: str = "",
) -> dict[str, str]:
    """The files of a starter audit suite, ``{file name: text}``.

    Args:
        model: ``pkg.module:factory`` building the model, or a weights file (with ``arch``),
            as written into pytest.ini (a path relative to the suite folder, or absolute).
        input_size: ``(channels, height, width)`` of one input.
        classes: number of output classes.
        arch: ``pkg.module:factory`` the weights file is loaded into (``audit_arch``).
        layer: the layer every audit explains (``CAM_LAYER``); None chooses it at run time.
        comment: the layer reasoning (:func:`layer_comment`) written above ``CAM_LAYER``.
        min_cells: cells an object must span each way (``MIN_CELLS``).
        any_size: whether the model accepts other input sizes (else the shape audit skips).
        folder: the suite's folder as the user names it (used in comments).
        project: the project root relative to the folder (put on ``sys.path``).
        labelled: the ``labelled_batch`` fixture (:func:`data_fixture`); default: one that
            skips until the user fills it in.
    """
    title = model if arch is None else f"{arch} with the weights {model}"
    values = {
        "model": model,
        "arch": "" if arch is None else _ARCH.format(arch=arch),
        "title": title,
        "layer": layer,
        "layer_comment": comment or "# CAM_LAYER: see `modelaudit layers`.",
        "min_cells": _px(min_cells),
        "input_size": tuple(int(s) for s in input_size),
        "classes": int(classes),
        "any_size": bool(any_size),
        "folder": folder,
        "project": project,
        "labelled_batch": labelled or _LABELLED_TODO,
    }
    return {
        "pytest.ini": _PYTEST_INI.format(**values),
        "conftest.py": _CONFTEST.format(**values),
        "test_localization.py": _TEST_LOCALIZATION.format(mass_in_box=_MASS_PER_SAMPLE),
        "test_background.py": _TEST_BACKGROUND,
        "test_sanity.py": _TEST_SANITY,
        "test_stability.py": _TEST_STABILITY,
        "test_structure.py": _TEST_STRUCTURE,
    }


def data_fixture(
    layout: str,
    paths: Sequence[str],
    *,
    spec: str,
    classes: Sequence[str] | None = None,
    limit: int = 64,
) -> str:
    """The conftest's ``labelled_batch`` fixture reading a dataset on disk (``init --data``).

    Args:
        layout: ``"voc"``, ``"voc-segmentation"``, ``"coco"`` or ``"folder"``
            (:data:`modelaudit.data.LAYOUTS`).
        paths: its paths, relative to the suite folder (or absolute).
        spec: the ``--data`` value as the user gave it (quoted in a comment).
        classes: the class names in label order, or None for the reader's own list.
        limit: the number of images in the audit batch.

    Example:
        >>> text = data_fixture("coco", ["../data/images", "../data/ann.json"], spec="coco:x,y")
        >>> "coco_detection(here / '../data/images', here / '../data/ann.json'" in text
        True
    """
    reader, call = _READERS[layout]
    p0, p1 = [*paths, ""][:2]
    return _LABELLED_FROM_DISK.format(
        spec=spec,
        reader=reader,
        limit=int(limit),
        classes=None if classes is None else tuple(classes),
        call=call.format(reader=reader, p0=p0, p1=p1),
    )
