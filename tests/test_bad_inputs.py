"""Bad inputs across the library, the command line and the plugin: a clear error, every time.

Each row of a table is one bad input: an id, the call, the error type it must raise (an exit
status for the command line, an outcome for the plugin) and a phrase of the message that
tells the user what was wrong or how to fix it. Library calls run on a fresh tiny CNN and
must leave no hook on it, and its modes and ``requires_grad`` flags as they were.

A bad input that still gives an unclear error (a bare torch ``RuntimeError``, an
``AttributeError`` from deep inside) is not listed until it is fixed: add it then.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (imported once here, not again inside every in-process run)
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import find
from hypothesis.errors import InvalidArgument
from torch import nn

import modelaudit as ma
import modelaudit.zoo  # (torchvision imported once, outside inner pytester runs)
from modelaudit import strategies as st
from modelaudit.baseline import Baseline, normalize_direction, validate_tolerance
from modelaudit.cli import main
from modelaudit.errors import (
    BaselineError,
    HookError,
    InvalidInputError,
    LayerNotFoundError,
)
from modelaudit.hooks.inventory import list_hooks

# --------------------------------------------------------------------------- library


def tiny_cnn() -> nn.Module:
    """conv - BN - ReLU - dropout - conv - ReLU - pool - linear: 3 classes, eval mode."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
MAPS = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(2))
BOXES = torch.tensor([[2, 2, 8, 8], [4, 4, 12, 12]])
LAST_CONV = "4"


def _gradcam_at_last_conv(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return ma.gradcam(model, images, 0, LAST_CONV)


class SideBranch(nn.Module):
    """A model with a layer (``unused``) that its forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.unused = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def _capture(model: nn.Module, layers: Any, *, run: bool = True, **kwargs: Any) -> None:
    with ma.capture(model, layers, **kwargs):
        if run:
            model(X)


def _grads_without_backward(model: nn.Module) -> None:
    with ma.capture(model, "0", grads=True) as cap, torch.no_grad():
        model(X)
    cap.grads["0"]


def _draw(strategy: Any) -> Any:
    return find(strategy, lambda _: True)


def _baseline_file(tmp: Path, text: str) -> Path:
    path = tmp / "baseline.json"
    path.write_text(text)
    return path


def _metric(**fields: Any) -> str:
    """A baseline file with one metric ``m``; ``fields`` override its valid entry."""
    entry = {"value": 1.0, "direction": "higher", "tolerance": 0.1, **fields}
    return json.dumps({"version": 1, "metrics": {"m": entry}})


# A call takes (model, tmp_path); the model is a fresh tiny_cnn().
Call = Callable[[nn.Module, Path], Any]
FIX = "fix it by hand, or delete it and re-create it with --audit-update-baseline"

LIBRARY_CASES = [
    # --- once unclear (a TypeError, AttributeError, bare ValueError, or NaN passing)
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, "0", reshape=3),
        InvalidInputError,
        "gradcam(): reshape must be a function activation -> (N, C, h, w)",
        id="explain-reshape-not-callable",
    ),
    pytest.param(
        lambda m, t: ma.capture(m, "0", calls="once").__enter__(),
        InvalidInputError,
        "calls='once' is not a policy; use one of 'last', 'all', 'error'",
        id="capture-calls-policy",
    ),
    pytest.param(
        lambda m, t: ma.assert_within_baseline([1, 2]),
        InvalidInputError,
        "assert_within_baseline takes Comparison objects",
        id="baseline-gate-numbers",
    ),
    pytest.param(
        lambda m, t: ma.assert_hook_grads_match_autograd(m, X, ["0"], atol=math.nan),
        InvalidInputError,
        "atol must be a finite number >= 0",
        id="gradients-atol-nan",
    ),
    pytest.param(
        lambda m, t: ma.assert_hooks_preserve_gradients(m, X, rtol=-1.0),
        InvalidInputError,
        "rtol must be a finite number >= 0",
        id="gradients-rtol-negative",
    ),
    pytest.param(
        lambda m, t: ma.preserved_state(3).__enter__(),
        InvalidInputError,
        "preserved_state needs a torch.nn.Module; got int",
        id="preserved-state-not-a-module",
    ),
    pytest.param(
        lambda m, t: ma.hooks_by_module("model"),
        InvalidInputError,
        "hooks_by_module needs a torch.nn.Module; got str",
        id="hooks-by-module-not-a-module",
    ),
    pytest.param(
        lambda m, t: ma.layer_names(None),
        InvalidInputError,
        "layer_names needs a torch.nn.Module; got NoneType",
        id="layer-names-not-a-module",
    ),
    # --- explainers: layers
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, "nope"),
        LayerNotFoundError,
        "model has no layer named 'nope'; closest names: '0'",
        id="explain-layer-missing",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, "conv*"),
        LayerNotFoundError,
        "layer pattern 'conv*' matched no layer",
        id="explain-layer-pattern-matches-nothing",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, nn.Conv1d),
        LayerNotFoundError,
        "model has no layer of type Conv1d; it has: AdaptiveAvgPool2d, BatchNorm2d",
        id="explain-layer-type-missing",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, nn.Conv2d(3, 3, 1)),
        LayerNotFoundError,
        "passed as a layer is not part of the model",
        id="explain-layer-module-not-in-model",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, "7"),
        InvalidInputError,
        "CAM methods need a (N, C, h, w) feature map",
        id="explain-layer-not-a-feature-map",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, 4),
        InvalidInputError,
        "a layer is a qualified name ('layer4.1'), a glob pattern",
        id="explain-layer-int",
    ),
    pytest.param(
        lambda m, t: ma.scorecam(SideBranch(), X, 0, "unused"),
        HookError,
        "did not run during the forward pass; explain a layer on the path",
        id="explain-layer-not-on-the-path",
    ),
    pytest.param(
        lambda m, t: ma.eigencam(m, X, None, "nope"),
        LayerNotFoundError,
        "model has no layer named 'nope'",
        id="eigencam-layer-missing",
    ),
    pytest.param(
        lambda m, t: ma.layercam(m, X, 0, "zz"),
        LayerNotFoundError,
        "model has no layer named 'zz'",
        id="layercam-layer-missing",
    ),
    # --- explainers: targets
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 5, LAST_CONV),
        InvalidInputError,
        "target class 5 for sample 0 is out of range: the model has 3 classes (valid: 0..2)",
        id="explain-target-out-of-range",
    ),
    pytest.param(
        lambda m, t: ma.gradcam_pp(m, X, -1, LAST_CONV),
        InvalidInputError,
        "target class -1 for sample 0 is out of range",
        id="explain-target-negative",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, torch.tensor([0, 1, 2]), LAST_CONV),
        InvalidInputError,
        "but the batch has 2 samples; give one class per sample",
        id="explain-target-wrong-length",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, torch.tensor([0.5, 1.0]), LAST_CONV),
        InvalidInputError,
        "target must hold integer class indices",
        id="explain-target-float",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, "cat", LAST_CONV),
        InvalidInputError,
        "target must be an int, N ints or (N, K) ints; got 'cat'",
        id="explain-target-string",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m[:1], X, 0, "0"),
        InvalidInputError,
        "class targets need a model output of shape (N, classes)",
        id="explain-output-not-logits",
    ),
    # --- explainers: inputs
    pytest.param(
        lambda m, t: ma.gradcam(m, X[0], 0, LAST_CONV),
        InvalidInputError,
        "Add the batch dimension with x[None]",
        id="explain-input-missing-batch-dim",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, torch.full_like(X, math.nan), 0, LAST_CONV),
        InvalidInputError,
        "inputs contain NaN or Inf in sample(s) [0, 1]",
        id="explain-input-nan",
    ),
    pytest.param(
        lambda m, t: ma.layercam(m, (X * 255).to(torch.uint8), 0, LAST_CONV),
        InvalidInputError,
        "inputs must be floating point; got torch.uint8. Convert with x.float()",
        id="explain-input-uint8",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X[:0], 0, LAST_CONV),
        InvalidInputError,
        "inputs are empty",
        id="explain-input-empty-batch",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X.numpy(), 0, LAST_CONV),
        InvalidInputError,
        "inputs must be a torch.Tensor",
        id="explain-input-numpy",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X[:, :1], 0, LAST_CONV),
        InvalidInputError,
        "the model expects 3 input channels but the inputs have 1",
        id="explain-input-wrong-channels",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(_gradcam_at_last_conv, X, 0, LAST_CONV),
        InvalidInputError,
        "the model must be a torch.nn.Module; got function",
        id="explain-model-not-a-module",
    ),
    # --- explainers: methods and options
    pytest.param(
        lambda m, t: ma.explain("gradcm", m, X, 0, LAST_CONV),
        InvalidInputError,
        "unknown explanation method 'gradcm'. Did you mean 'gradcam'",
        id="explain-method-unknown",
    ),
    pytest.param(
        lambda m, t: ma.explain("gradcam", m, X, 0, LAST_CONV, foo=1),
        TypeError,
        "unexpected keyword argument 'foo'",
        id="explain-option-unknown",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, LAST_CONV, pass_size=0),
        InvalidInputError,
        "pass_size must be a positive int (samples per pass), 'auto' or None; got 0",
        id="gradcam-pass-size-zero",
    ),
    pytest.param(
        lambda m, t: ma.gradcam(m, X, 0, LAST_CONV, pass_size="big"),
        InvalidInputError,
        "pass_size must be a positive int",
        id="gradcam-pass-size-word",
    ),
    pytest.param(
        lambda m, t: ma.scorecam(m, X, 0, LAST_CONV, forward_batch=0),
        InvalidInputError,
        "forward_batch must be a positive int or 'auto'",
        id="scorecam-forward-batch-zero",
    ),
    pytest.param(
        lambda m, t: ma.scorecam(m, X, 0, LAST_CONV, weights="bogus"),
        InvalidInputError,
        "weights must be 'softmax' or 'probability'; got 'bogus'",
        id="scorecam-weights-unknown",
    ),
    pytest.param(
        lambda m, t: ma.scorecam(m, X, 0, LAST_CONV, top_k=0),
        InvalidInputError,
        "top_k must be >= 1 (or None for exact Score-CAM)",
        id="scorecam-top-k-zero",
    ),
    pytest.param(
        lambda m, t: ma.ablationcam(m, X, 0, LAST_CONV, forward_batch=0),
        InvalidInputError,
        "forward_batch must be >= 1",
        id="ablationcam-forward-batch-zero",
    ),
    pytest.param(
        lambda m, t: ma.ablationcam(m, X, 0, LAST_CONV, ablation_value=math.nan),
        InvalidInputError,
        "ablation_value finite",
        id="ablationcam-ablation-value-nan",
    ),
    pytest.param(
        lambda m, t: ma.vit_reshape(torch.rand(2, 11, 8)),
        InvalidInputError,
        "do not form a 3x3 grid; pass height= and width=",
        id="vit-reshape-tokens-not-square",
    ),
    pytest.param(
        lambda m, t: ma.vit_reshape(torch.rand(2, 8)),
        InvalidInputError,
        "vit_reshape expects tokens (N, tokens, dim); got (2, 8)",
        id="vit-reshape-2d",
    ),
    pytest.param(
        lambda m, t: ma.swin_reshape(torch.rand(2, 8, 4)),
        InvalidInputError,
        "swin_reshape expects (N, H, W, C) features",
        id="swin-reshape-3d",
    ),
    pytest.param(
        lambda m, t: ma.register_method("gradcam")(_gradcam_at_last_conv),
        InvalidInputError,
        "is already registered; pass replace=True to override it",
        id="register-method-taken-name",
    ),
    pytest.param(
        lambda m, t: ma.register_method("")(_gradcam_at_last_conv),
        InvalidInputError,
        "a method name needs letters or digits",
        id="register-method-empty-name",
    ),
    # --- hooks: capture and friends
    pytest.param(
        lambda m, t: _capture(m, "nope"),
        LayerNotFoundError,
        "model has no layer named 'nope'",
        id="capture-layer-missing",
    ),
    pytest.param(
        lambda m, t: _capture(m, 3),
        InvalidInputError,
        "a layer is a qualified name",
        id="capture-layer-int",
    ),
    pytest.param(
        lambda m, t: _capture(m, []),
        LayerNotFoundError,
        "an empty list of layers was given; name at least one layer",
        id="capture-no-layers",
    ),
    pytest.param(
        lambda m, t: _capture(m, "0", run=False),
        HookError,
        "The model was never called inside the block",
        id="capture-model-never-called",
    ),
    pytest.param(
        lambda m, t: _capture(m, "0", calls="once"),
        ValueError,
        "calls='once' is not a policy; use one of 'last', 'all', 'error'",
        id="capture-calls-policy-unknown",
    ),
    pytest.param(
        lambda m, t: _capture(m, "0", reduce=3),
        TypeError,
        "reduce must be a callable tensor -> value; got int",
        id="capture-reduce-not-callable",
    ),
    pytest.param(
        lambda m, t: _grads_without_backward(m),
        HookError,
        "no gradient reached layer '0'. Run the backward pass",
        id="capture-grads-without-backward",
    ),
    pytest.param(
        lambda m, t: ma.feature_map_shapes(m, (2, 3, 16, 16), "nope"),
        LayerNotFoundError,
        "model has no layer named 'nope'",
        id="feature-map-shapes-layer-missing",
    ),
    pytest.param(
        lambda m, t: ma.feature_map_grid(m, X, "0"),
        InvalidInputError,
        "feature_map_grid draws one image at a time; got a batch of 2",
        id="feature-map-grid-batch",
    ),
    # --- measure
    pytest.param(
        lambda m, t: ma.mass_in_box(MAPS, torch.tensor([[0, 0, 20, 20], [0, 0, 4, 4]])),
        InvalidInputError,
        "lies outside the 16x16 (HxW) image: x2=20 > width 16",
        id="mass-in-box-box-outside-image",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(MAPS, torch.tensor([[8, 8, 2, 2], [0, 0, 4, 4]])),
        InvalidInputError,
        "is inverted: x2=2 < x1=8. Boxes are XYXY",
        id="mass-in-box-box-inverted",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(MAPS, BOXES[:1].repeat(3, 1)),
        InvalidInputError,
        "got boxes for 3 samples but the maps have 2",
        id="mass-in-box-batch-mismatch",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(torch.full_like(MAPS, math.nan), BOXES),
        InvalidInputError,
        "heat maps must be finite",
        id="mass-in-box-map-nan",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(torch.rand(16), BOXES),
        InvalidInputError,
        "maps must have shape (N, H, W); got (16,)",
        id="mass-in-box-map-1d",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(MAPS, torch.tensor([[1, 2, 3], [1, 2, 3]])),
        InvalidInputError,
        "boxes must have shape (N, 4) or (N, K, 4) in XYXY order; got (2, 3)",
        id="mass-in-box-box-three-coordinates",
    ),
    pytest.param(
        lambda m, t: ma.mass_in_box(MAPS, torch.ones(2, 8, 8, dtype=torch.bool)),
        InvalidInputError,
        "masks must be bool (N, H, W) matching the maps' size (16, 16)",
        id="mass-in-box-mask-wrong-size",
    ),
    pytest.param(
        lambda m, t: ma.pointing_game(MAPS, BOXES, tolerance=-1),
        InvalidInputError,
        "tolerance must be a finite number of pixels >= 0; got -1",
        id="pointing-game-tolerance-negative",
    ),
    pytest.param(
        lambda m, t: ma.iou(MAPS, BOXES, threshold=0.5, top_k=0.2),
        InvalidInputError,
        "give threshold= or top_k=, not both",
        id="iou-threshold-and-top-k",
    ),
    pytest.param(
        lambda m, t: ma.iou(MAPS, BOXES, threshold="mean"),
        InvalidInputError,
        "threshold must be a fraction of the map's maximum in [0, 1] or 'otsu'",
        id="iou-threshold-word",
    ),
    pytest.param(
        lambda m, t: ma.iou(MAPS, BOXES, threshold=1.5),
        InvalidInputError,
        "threshold must be a fraction of the map's maximum in [0, 1]",
        id="iou-threshold-above-one",
    ),
    pytest.param(
        lambda m, t: ma.iou(MAPS, BOXES, top_k=2.0),
        InvalidInputError,
        "top_k must be a fraction of pixels in (0, 1]; got 2.0",
        id="iou-top-k-above-one",
    ),
    pytest.param(
        lambda m, t: ma.iou(MAPS, BOXES, threshold=math.nan),
        InvalidInputError,
        "threshold must be a fraction of the map's maximum in [0, 1] or 'otsu'; got nan",
        id="iou-threshold-nan",
    ),
    pytest.param(
        lambda m, t: ma.deletion_auc(m, X, MAPS, target=7),
        InvalidInputError,
        "target class 7 for sample 0 is out of range: the model has 3 classes",
        id="deletion-auc-target-out-of-range",
    ),
    pytest.param(
        lambda m, t: ma.noise_stability(m, X, lambda model, images: None),
        InvalidInputError,
        "explainer output must be a torch.Tensor of shape (N, H, W); got NoneType",
        id="noise-stability-explainer-returns-none",
    ),
    pytest.param(
        lambda m, t: ma.chance_level(BOXES),
        InvalidInputError,
        "chance_level needs size=(H, W) for boxes",
        id="chance-level-boxes-without-size",
    ),
    pytest.param(
        lambda m, t: ma.deletion_auc(m, X, MAPS, target=0, steps=0),
        InvalidInputError,
        "steps must be a positive int; got 0",
        id="deletion-auc-steps-zero",
    ),
    pytest.param(
        lambda m, t: ma.deletion_auc(m, X, MAPS, target=0, fill="purple"),
        InvalidInputError,
        "fill must be 'zeros', 'blur', 'mean' or a tensor; got 'purple'",
        id="deletion-auc-fill-unknown",
    ),
    pytest.param(
        lambda m, t: ma.deletion_auc(m, X, torch.rand(2, 8, 8), target=0),
        InvalidInputError,
        "maps are (8, 8) but images are (16, 16); upsample the maps first",
        id="deletion-auc-map-size-mismatch",
    ),
    pytest.param(
        lambda m, t: ma.insertion_auc(m, X, torch.rand(3, 16, 16), target=0),
        InvalidInputError,
        "maps has 3 samples but images has 2; pass one map per image",
        id="insertion-auc-batch-mismatch",
    ),
    pytest.param(
        lambda m, t: ma.insertion_auc(m, X, MAPS, target=0, forward_batch=0),
        InvalidInputError,
        "forward_batch must be a positive int; got 0",
        id="insertion-auc-forward-batch-zero",
    ),
    pytest.param(
        lambda m, t: ma.noise_stability(m, X, _gradcam_at_last_conv, sigma=-1),
        InvalidInputError,
        "sigma must be a positive number; got -1",
        id="noise-stability-sigma-negative",
    ),
    pytest.param(
        lambda m, t: ma.noise_stability(m, X, _gradcam_at_last_conv, repeats=0),
        InvalidInputError,
        "repeats must be a positive int; got 0",
        id="noise-stability-repeats-zero",
    ),
    pytest.param(
        lambda m, t: ma.noise_stability(m, X, _gradcam_at_last_conv, measure="cosine"),
        InvalidInputError,
        "measure must be 'spearman' or 'mean_abs'; got 'cosine'",
        id="noise-stability-measure-unknown",
    ),
    pytest.param(
        lambda m, t: ma.randomization_similarity(m, X, _gradcam_at_last_conv, mode="random"),
        InvalidInputError,
        "mode must be 'cascading' or 'independent'; got 'random'",
        id="randomization-mode-unknown",
    ),
    pytest.param(
        lambda m, t: ma.randomization_similarity(m, X, _gradcam_at_last_conv, similarity="x"),
        InvalidInputError,
        "similarity must be 'spearman' or 'ssim'; got 'x'",
        id="randomization-similarity-unknown",
    ),
    pytest.param(
        lambda m, t: ma.randomization_similarity(m, X, _gradcam_at_last_conv, layers="nope"),
        LayerNotFoundError,
        "model has no layer named 'nope'",
        id="randomization-layer-missing",
    ),
    # --- checks
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES),
        InvalidInputError,
        "give exactly one bound as a keyword: at_least=... (higher is better) or at_most=...",
        id="assert-mass-in-box-no-bound",
    ),
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES, at_least=0.1, at_most=0.9),
        InvalidInputError,
        "give exactly one bound as a keyword",
        id="assert-mass-in-box-two-bounds",
    ),
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES, at_least=0.5, aggregate="most"),
        InvalidInputError,
        "aggregate must be 'all', 'mean' or a fraction of samples in (0, 1]; got 'most'",
        id="assert-mass-in-box-aggregate-unknown",
    ),
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES, at_least=0),
        InvalidInputError,
        "at_least=0 always passes: mass_in_box lies in [0, 1]",
        id="assert-mass-in-box-bound-always-passes",
    ),
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES, at_least=math.nan),
        InvalidInputError,
        "at_least must be a number; got nan",
        id="assert-mass-in-box-bound-nan",
    ),
    pytest.param(
        lambda m, t: ma.assert_mass_in_box(MAPS, BOXES, at_least="0.5"),
        InvalidInputError,
        "at_least must be a number; got '0.5'",
        id="assert-mass-in-box-bound-string",
    ),
    pytest.param(
        lambda m, t: ma.assert_iou(MAPS, BOXES),
        InvalidInputError,
        "give exactly one bound as a keyword",
        id="assert-iou-no-bound",
    ),
    pytest.param(
        lambda m, t: ma.assert_pointing_game(MAPS, BOXES, tolerance=-2, at_least=0.1),
        InvalidInputError,
        "tolerance must be a finite number of pixels >= 0; got -2",
        id="assert-pointing-game-tolerance-negative",
    ),
    pytest.param(
        lambda m, t: ma.assert_faithful(m, MAPS, images=X, metric="removal", at_most=0.5),
        InvalidInputError,
        "metric must be 'deletion' or 'insertion'; got 'removal'",
        id="assert-faithful-metric-unknown",
    ),
    pytest.param(
        lambda m, t: ma.assert_faithful(m, MAPS, at_most=0.5, target=0),
        InvalidInputError,
        "assert_faithful needs the images the maps explain: pass images=",
        id="assert-faithful-plain-maps-without-images",
    ),
    pytest.param(
        lambda m, t: ma.assert_stable(
            m, X, _gradcam_at_last_conv, at_least=0.1, perturbation="blur"
        ),
        InvalidInputError,
        "perturbation must be 'noise', 'hflip' or 'vflip'; got 'blur'",
        id="assert-stable-perturbation-unknown",
    ),
    pytest.param(
        lambda m, t: ma.assert_stable(m, X, at_least=0.1),
        InvalidInputError,
        "assert_stable needs an explainer: pass explainer=",
        id="assert-stable-no-explainer",
    ),
    pytest.param(
        lambda m, t: ma.assert_stable(m, X, 3, at_least=0.1),
        InvalidInputError,
        "explainer must be a callable (model, images) -> (N, H, W) maps; got int",
        id="assert-stable-explainer-not-callable",
    ),
    pytest.param(
        lambda m, t: ma.assert_hooks_preserve_gradients(m, X, 9),
        InvalidInputError,
        "target class 9 for sample 0 is out of range",
        id="assert-hooks-preserve-gradients-target-out-of-range",
    ),
    pytest.param(
        lambda m, t: ma.assert_map_changes_when_randomized(
            m, X, _gradcam_at_last_conv, at_most=0.5, at_step="first"
        ),
        InvalidInputError,
        "at_step must be 'all' or 'last'; got 'first'",
        id="assert-randomized-at-step-unknown",
    ),
    pytest.param(
        lambda m, t: ma.assert_hook_grads_match_autograd(m, X, "nope", 0),
        LayerNotFoundError,
        "model has no layer named 'nope'",
        id="assert-hook-grads-layer-missing",
    ),
    pytest.param(
        lambda m, t: ma.assert_gradcheck(nn.Linear(2, 2)),
        InvalidInputError,
        "assert_gradcheck needs at least one example input",
        id="assert-gradcheck-no-input",
    ),
    pytest.param(
        lambda m, t: ma.decide("assert_x", "x", [], at_least=0.5),
        InvalidInputError,
        "there are no values to check (an empty batch?)",
        id="decide-no-values",
    ),
    pytest.param(
        lambda m, t: ma.decide("assert_x", "x", [0.6, 0.7], at_least=0.5, items=["a"]),
        InvalidInputError,
        "items has 1 entries for 2 values; give one per value",
        id="decide-items-length-mismatch",
    ),
    pytest.param(
        lambda m, t: ma.overlay(X[0], MAPS[0], alpha=2),
        InvalidInputError,
        "alpha must be a number in [0, 1], got 2",
        id="overlay-alpha-above-one",
    ),
    pytest.param(
        lambda m, t: ma.overlay(X[0], MAPS[0], colormap="jet2"),
        InvalidInputError,
        "unknown colormap 'jet2'; use one of 'inferno', 'viridis'",
        id="overlay-colormap-unknown",
    ),
    # --- the audit recorder (the `audit` fixture's object)
    pytest.param(
        lambda m, t: ma.AuditRecorder("t").metric("m", 1.0, direction="up"),
        InvalidInputError,
        "direction must be 'higher' (higher is better) or 'lower', got 'up'",
        id="recorder-metric-direction-unknown",
    ),
    pytest.param(
        lambda m, t: ma.AuditRecorder("t").metric("", 1.0),
        InvalidInputError,
        "metric name must be a non-empty string, got ''",
        id="recorder-metric-name-empty",
    ),
    pytest.param(
        lambda m, t: ma.AuditRecorder("t").metric("m", 1.0, tolerance=-1),
        InvalidInputError,
        "tolerance must be a finite number >= 0, got -1",
        id="recorder-metric-tolerance-negative",
    ),
    # --- baseline files
    pytest.param(
        lambda m, t: Baseline.load(t / "none.json", missing_ok=False),
        BaselineError,
        "none.json does not exist",
        id="baseline-missing-file",
    ),
    pytest.param(
        lambda m, t: Baseline.load(t),
        BaselineError,
        "cannot read baseline file",
        id="baseline-is-a-directory",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, "{")),
        BaselineError,
        "is not valid JSON (line 1, column 2: ",
        id="baseline-not-json",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, "[]")),
        BaselineError,
        f"is invalid: the top level must be a JSON object, got an array; {FIX}",
        id="baseline-top-level-array",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, '{"version": 1, "metrics": {}, "x": 1}')),
        BaselineError,
        "unknown top-level keys ['x']; allowed: ['metadata', 'metrics', 'version']",
        id="baseline-unknown-top-level-key",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, '{"version": 99, "metrics": {}}')),
        BaselineError,
        "unsupported version 99 (written by a newer modelaudit?); this modelaudit reads version 1",
        id="baseline-newer-version",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, '{"metrics": {}}')),
        BaselineError,
        "'version' must be the integer 1, got None",
        id="baseline-no-version",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, '{"version": 1, "metrics": []}')),
        BaselineError,
        "'metrics' must be a JSON object, got an array",
        id="baseline-metrics-array",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, '{"version": 1, "metrics": {"m": 3}}')),
        BaselineError,
        "metric 'm': expected an object, got int",
        id="baseline-metric-not-object",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, _metric(value=math.nan))),
        BaselineError,
        "NaN is not allowed in a baseline file (values must be finite)",
        id="baseline-value-nan",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, _metric(value="1"))),
        BaselineError,
        "metric 'm': 'value' must be a finite number, got '1'",
        id="baseline-value-string",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, _metric(direction="up"))),
        BaselineError,
        "metric 'm': direction must be 'higher' (higher is better) or 'lower', got 'up'",
        id="baseline-direction-unknown",
    ),
    pytest.param(
        lambda m, t: Baseline.load(_baseline_file(t, _metric(tolerance=-0.1))),
        BaselineError,
        "metric 'm': tolerance must be a finite number >= 0, got -0.1",
        id="baseline-tolerance-negative",
    ),
    pytest.param(
        lambda m, t: Baseline.load(
            _baseline_file(
                t, '{"version": 1, "metrics": {"m": {"value": 1, "direction": "higher"}}}'
            )
        ),
        BaselineError,
        "metric 'm': missing ['tolerance'] keys",
        id="baseline-tolerance-missing",
    ),
    pytest.param(
        lambda m, t: Baseline().save(),
        BaselineError,
        "no path to save the baseline to; pass save(path)",
        id="baseline-save-without-path",
    ),
    pytest.param(
        lambda m, t: Baseline().set("m", 1.0, direction="sideways", tolerance=0.1),
        BaselineError,
        "direction must be 'higher' (higher is better) or 'lower', got 'sideways'",
        id="baseline-set-direction-unknown",
    ),
    pytest.param(
        lambda m, t: Baseline().set("m", math.nan, direction="higher", tolerance=0.1),
        BaselineError,
        "metric 'm': 'value' must be a finite number, got nan",
        id="baseline-set-value-nan",
    ),
    pytest.param(
        lambda m, t: validate_tolerance(math.inf),
        InvalidInputError,
        "tolerance must be a finite number >= 0, got inf",
        id="baseline-tolerance-infinite",
    ),
    pytest.param(
        lambda m, t: normalize_direction("up"),
        InvalidInputError,
        "direction must be 'higher' (higher is better) or 'lower', got 'up'",
        id="baseline-normalize-direction-unknown",
    ),
    # --- Hypothesis strategies
    pytest.param(
        lambda m, t: _draw(st.images(batch=0)),
        InvalidArgument,
        "batch=0 must be at least 1",
        id="strategy-images-batch-zero",
    ),
    pytest.param(
        lambda m, t: _draw(st.images(batch=1.5)),
        InvalidArgument,
        "batch=1.5 must be an int or a strategy of ints",
        id="strategy-images-batch-float",
    ),
    pytest.param(
        lambda m, t: _draw(st.images(min_value=1.0, max_value=0.0)),
        InvalidArgument,
        "min_value=1.0 is larger than max_value=0.0",
        id="strategy-images-bounds-inverted",
    ),
    pytest.param(
        lambda m, t: _draw(st.images(min_value=math.nan)),
        InvalidArgument,
        "min_value=nan must be a finite number",
        id="strategy-images-bound-nan",
    ),
    pytest.param(
        lambda m, t: _draw(st.boxes(image_size=8, min_size=20)),
        InvalidArgument,
        "min_size=20 is larger than the image size (8, 8)",
        id="strategy-boxes-larger-than-image",
    ),
    pytest.param(
        lambda m, t: _draw(st.batches(shape="hexagon")),
        InvalidArgument,
        "shape='hexagon' must be one of ('rectangle', 'ellipse', 'triangle')",
        id="strategy-batches-shape-unknown",
    ),
    pytest.param(
        lambda m, t: _draw(st.sizes(min_size=10, max_size=5)),
        InvalidArgument,
        "min_size=10 is larger than max_size=5",
        id="strategy-sizes-inverted",
    ),
    pytest.param(
        lambda m, t: _draw(st.targets(classes=0)),
        InvalidArgument,
        "classes=0 must be at least 1",
        id="strategy-targets-no-classes",
    ),
    pytest.param(
        lambda m, t: _draw(st.masks(width=-3)),
        InvalidArgument,
        "width=-3 must be at least 1",
        id="strategy-masks-width-negative",
    ),
]


def _flags(model: nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize(("call", "error", "phrase"), LIBRARY_CASES)
def test_library_bad_input_is_a_clear_error(
    call: Call, error: type[Exception], phrase: str, tmp_path: Path
) -> None:
    model = tiny_cnn()
    flags = _flags(model)
    with pytest.raises(error, match=re.escape(phrase)):
        call(model, tmp_path)
    assert list_hooks(model) == [] and ma.hooks_by_module(model) == {}
    assert _flags(model) == flags
    assert all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------- command line

MODELS = """
import torch
from torch import nn

def pooled():
    return nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 2))

def fixed():  # takes 8 x 8 inputs only
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))

def conv_only():  # returns a feature map, not logits
    return nn.Sequential(nn.Conv2d(3, 2, 1))

def linear_only():  # no convolutional feature map
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))

def not_a_module():
    return 42
"""


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A module of model factories on sys.path, an image, a broken image and weights."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "bad_input_models.py").write_text(textwrap.dedent(MODELS))
    image = folder / "scene.png"
    iio.imwrite(image, np.full((24, 20, 3), 50, dtype=np.uint8))
    (folder / "broken.png").write_text("not a png")
    torch.save(nn.Linear(2, 2).state_dict(), folder / "weights.pt")
    full = folder / "full"
    full.mkdir()
    (full / "conftest.py").write_text("# mine\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        yield {
            "m": "bad_input_models",
            "img": str(image),
            "broken": str(folder / "broken.png"),
            "weights": str(folder / "weights.pt"),
            "full": str(full),
            "dir": str(folder),
        }


# (argv with {placeholders}, exit status, phrase of the one-line error on stderr).
# Status 2 is a usage error found by argparse, 1 an error found while running.
CLI_CASES = [
    pytest.param([], 2, "the following arguments are required: COMMAND", id="cli-no-command"),
    pytest.param(["frobnicate"], 2, "invalid choice: 'frobnicate'", id="cli-unknown-command"),
    pytest.param(
        ["layers", "resnet19"],
        1,
        "'resnet19' is not a zoo model, an importable 'pkg.module:factory' or a .pt/.pth",
        id="layers-unknown-zoo-model",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--size", "8", "8", "8"],
        1,
        "--size takes H or H W, got 3 numbers",
        id="layers-size-three-numbers",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--size", "0"],
        2,
        "argument --size: a size must be at least 1 pixel, got 0",
        id="layers-size-zero",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--size", "big"],
        2,
        "argument --size: 'big' is not a whole number of pixels",
        id="layers-size-word",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--batch", "0"],
        2,
        "argument --batch: a size must be at least 1",
        id="layers-batch-zero",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--channels", "0"],
        2,
        "argument --channels: a size must be at least 1",
        id="layers-channels-zero",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--device", "bogus"],
        1,
        "'bogus' is not a torch device",
        id="layers-device-unknown",
    ),
    pytest.param(
        ["layers", "{m}:nope"],
        1,
        "'bad_input_models' has no attribute 'nope' (from 'bad_input_models:nope')",
        id="layers-factory-missing",
    ),
    pytest.param(
        ["layers", "no_such_module_xyz:build"],
        1,
        "cannot import module 'no_such_module_xyz' of model factory",
        id="layers-factory-module-missing",
    ),
    pytest.param(
        ["layers", "{m}:not_a_module"],
        1,
        "returned int, not a torch.nn.Module",
        id="layers-factory-returns-int",
    ),
    pytest.param(
        ["layers", "{dir}/missing.pt"],
        1,
        "missing.pt does not exist",
        id="layers-weights-missing",
    ),
    pytest.param(
        ["layers", "{weights}"],
        1,
        "holds weights only; say which architecture to load them into with arch=NAME",
        id="layers-weights-without-arch",
    ),
    pytest.param(
        ["layers", "{weights}", "--arch", "{m}:pooled"],
        1,
        "do not fit architecture 'bad_input_models:pooled'",
        id="layers-weights-wrong-arch",
    ),
    pytest.param(
        ["layers", "{m}:fixed", "--size", "16"],
        1,
        "the model fails on zeros of shape (1, 3, 16, 16)",
        id="layers-model-rejects-size",
    ),
    pytest.param(
        ["layers", "{m}:pooled", "--size", "8", "--channels", "2"],
        1,
        "the model fails on zeros of shape (1, 2, 8, 8)",
        id="layers-model-rejects-channels",
    ),
    pytest.param(["explain"], 2, "required: MODEL, IMAGE", id="explain-no-arguments"),
    pytest.param(
        ["explain", "{m}:pooled", "{dir}/none.png"],
        1,
        "none.png does not exist",
        id="explain-image-missing",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{broken}", "-o", "{out}"],
        1,
        "cannot read image",
        id="explain-image-unreadable",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{img}"],
        1,
        "would overwrite the input image; choose another file",
        id="explain-output-is-input",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "-m", "gradcm"],
        1,
        "unknown explanation method 'gradcm'. Did you mean 'gradcam'",
        id="explain-method-unknown",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "-t", "5"],
        1,
        "--target 5 is out of range: the model has 2 classes",
        id="explain-target-out-of-range",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "-t", "-1"],
        1,
        "--target -1 is out of range",
        id="explain-target-negative",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "-t", "dog"],
        1,
        "--target 'dog' is not a class index",
        id="explain-target-word",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "-l", "7"],
        1,
        "model has no layer named '7'",
        id="explain-layer-missing",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--alpha", "2"],
        1,
        "--alpha must be in [0, 1], got 2.0",
        id="explain-alpha-above-one",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--alpha", "half"],
        2,
        "argument --alpha: invalid float value: 'half'",
        id="explain-alpha-word",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--colormap", "jet"],
        2,
        "argument --colormap: invalid choice: 'jet' (choose from 'inferno', 'viridis')",
        id="explain-colormap-unknown",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--reshape", "deit"],
        2,
        "argument --reshape: invalid choice: 'deit'",
        id="explain-reshape-unknown",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--std", "0", "1", "1"],
        1,
        "--std values must be positive",
        id="explain-std-zero",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--mean", "0.5", "0.5"],
        2,
        "argument --mean: expected 3 arguments",
        id="explain-mean-two-values",
    ),
    pytest.param(
        [
            "explain",
            "{m}:pooled",
            "{img}",
            "-o",
            "{out}",
            "--channels",
            "1",
            "--mean",
            "0",
            "0",
            "0",
        ],
        1,
        "--mean/--std take 3 values, for 3-channel images",
        id="explain-mean-with-one-channel",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--channels", "2"],
        1,
        "has 3 channels; the model takes 2",
        id="explain-image-channels-mismatch",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--scale", "0"],
        2,
        "argument --scale: a size must be at least 1",
        id="explain-scale-zero",
    ),
    pytest.param(
        ["explain", "{m}:pooled", "{img}", "-o", "{out}", "--size", "4", "4", "4"],
        1,
        "--size takes H or H W, got 3 numbers",
        id="explain-size-three-numbers",
    ),
    pytest.param(
        ["explain", "{m}:fixed", "{img}", "-o", "{out}"],
        1,
        "the model fails on the image as a tensor of shape (1, 3, 24, 20)",
        id="explain-model-rejects-image-size",
    ),
    pytest.param(
        ["explain", "{m}:conv_only", "{img}", "-o", "{out}"],
        1,
        "the model returned (1, 2, 24, 20); expected (1, classes) logits",
        id="explain-model-returns-feature-map",
    ),
    pytest.param(
        ["init", "resnet18", "--dir", "{tmp}/a"],
        1,
        "FACTORY must look like pkg.module:function, got 'resnet18'",
        id="init-factory-not-importable-spec",
    ),
    pytest.param(
        ["init", "{m}:pooled", "--dir", "{full}"],
        1,
        "already has conftest.py; pass --force to overwrite them",
        id="init-would-overwrite",
    ),
    pytest.param(
        ["init", "{m}:nope", "--dir", "{tmp}/a"],
        1,
        "'bad_input_models' has no attribute 'nope'",
        id="init-factory-missing",
    ),
    pytest.param(
        ["init", "{m}:fixed", "--dir", "{tmp}/a", "--size", "16"],
        1,
        "the model fails on an input of shape (1, 3, 16, 16)",
        id="init-model-rejects-size",
    ),
    pytest.param(
        ["init", "{m}:linear_only", "--dir", "{tmp}/a", "--size", "8"],
        1,
        "no convolutional feature map found to explain; pass --layer",
        id="init-no-feature-map",
    ),
    pytest.param(
        ["init", "{m}:conv_only", "--dir", "{tmp}/a", "--size", "8"],
        1,
        "the model returned (1, 2, 8, 8); the audits expect (N, classes) logits",
        id="init-model-returns-feature-map",
    ),
    pytest.param(
        ["init", "{m}:pooled", "--dir", "{tmp}/a", "--size", "8", "--layer", "zz"],
        1,
        "model has no layer named 'zz'",
        id="init-layer-missing",
    ),
]


@pytest.mark.parametrize(("argv", "status", "phrase"), CLI_CASES)
def test_cli_bad_input_is_one_line_on_stderr(
    argv: list[str],
    status: int,
    phrase: str,
    cli_files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = {**cli_files, "tmp": str(tmp_path), "out": str(tmp_path / "out.png")}
    assert main([arg.format(**values) for arg in argv]) == status
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    line = captured.err.strip().splitlines()[-1]
    # "modelaudit layers: error: ..." (1), or argparse's usage error "modelaudit ...: error:" (2)
    prefix = f"modelaudit {argv[0]}: error: " if status == 1 else "modelaudit"
    assert line.startswith(prefix) and "error: " in line and phrase in line, line
    assert "run with --debug" not in line  # a known error, not an unexpected exception
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- plugin

TOLERANCE_TEST = "def test_t(audit):\n    audit.metric('m', 1.0)\n"
MODEL_TEST = "def test_m(audit_model):\n    pass\n"
DEVICE_TEST = "def test_d(audit_device):\n    pass\n"

# (command-line args, ini lines, test file, outcome, fnmatch pattern of the message).
# "usage" is pytest's usage error (exit status 4, message on stderr); "error" a test whose
# setup errored and "failed" a failed test, each with its message in the terminal report.
PLUGIN_CASES = [
    pytest.param(
        ["--audit-tolerance=-1"],
        "",
        TOLERANCE_TEST,
        "usage",
        "*audit_tolerance must be a number >= 0 (a relative tolerance such as 0.05), got '-1'*",
        id="plugin-tolerance-negative-flag",
    ),
    pytest.param(
        [],
        "audit_tolerance = nan",
        TOLERANCE_TEST,
        "usage",
        "*audit_tolerance must be a number >= 0*got 'nan'*",
        id="plugin-tolerance-nan-ini",
    ),
    pytest.param(
        [],
        "audit_report_max_samples = -3",
        TOLERANCE_TEST,
        "usage",
        "*audit_report_max_samples must be a whole number >= 0, got '-3'*",
        id="plugin-max-samples-negative-ini",
    ),
    pytest.param(
        ["--audit-update-baseline"],
        "",
        TOLERANCE_TEST,
        "usage",
        "*--audit-update-baseline needs a baseline file: pass --audit-baseline=FILE*",
        id="plugin-update-baseline-without-file",
    ),
    pytest.param(
        ["--audit-model=no_such_module_xyz:build"],
        "",
        MODEL_TEST,
        "usage",
        "*--audit-model=no_such_module_xyz:build*cannot import module 'no_such_module_xyz'*",
        id="plugin-model-factory-missing",
    ),
    pytest.param(
        [],
        "",
        MODEL_TEST,
        "error",
        "*no model under audit: pass --audit-model=NAME*",
        id="plugin-no-model",
    ),
    pytest.param(
        ["--audit-device=bogus"],
        "",
        DEVICE_TEST,
        "usage",
        "*--audit-device / audit_device: 'bogus' is not a torch device*",
        id="plugin-device-unknown",
    ),
    pytest.param(
        ["--audit-baseline=."],
        "",
        TOLERANCE_TEST,
        "failed",
        "*BaselineError: cannot read baseline file*Is a directory*",
        id="plugin-baseline-is-a-directory",
    ),
]


@pytest.mark.parametrize(("args", "ini", "test", "outcome", "pattern"), PLUGIN_CASES)
def test_plugin_bad_option_is_a_clear_error(
    args: list[str], ini: str, test: str, outcome: str, pattern: str, pytester: pytest.Pytester
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_bad=test)
    result = pytester.runpytest_inprocess(
        *args, "--audit-report-dir=none", "-p", "no:cacheprovider"
    )
    if outcome == "usage":
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([pattern])
    else:
        result.assert_outcomes(**{"errors" if outcome == "error" else "failed": 1})
        result.stdout.fnmatch_lines([pattern])
