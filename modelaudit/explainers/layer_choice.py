"""Which layer(s) to explain: the user's choice, or a documented default.

``layer=`` takes anything :func:`modelaudit.hooks.layers.resolve_layers` accepts (a name
with suggestions on typos, a glob, a module, a class, a predicate, or a list of them).

``layer=None`` picks **the last module (in execution order) whose output is a feature map
with h * w > 1, one per image, and that runs once per forward**, found by a probe forward
of the first sample. A feature map is an (N, C, h, w) tensor, a channels-last (N, h, w, C)
one or ViT tokens (N, prefix + h * w, D), read from the shape
(:func:`~modelaudit.explainers.reshape.infer_layout`; the engine then reshapes it, no
``reshape=`` needed). Token layers count only at the model's token width and when the
predicted class's score depends on their patch tokens (one backward of the probe sample,
run only for models with token layers): after a ViT's last block only the class token
reaches the head. So the default is the conventional CAM layer: ``layer4`` of a ResNet,
``features`` of DenseNet / MobileNet / VGG / EfficientNet (torchvision); for timm models
``layer4`` (ResNet), ``norm_pre`` (ConvNeXt), ``bn2`` (EfficientNet), ``final_conv``
(RegNet), ``blocks`` (MobileNetV3), ``norm`` (Swin, channels-last) and
``blocks.<last>.norm1`` (ViT/DeiT with a class token: the input of the last attention).
Attention matrices (N, heads, T, T) and per-box or per-window outputs (a detection head's
RoI features) are not feature maps. A model without any convolution gets a clear error:
pass ``layer=``. Pass ``layer=`` explicitly to skip the probe forward.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.layer_choice import select_layers
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> list(select_layers(net, torch.zeros(1, 3, 8, 8), None))
    ['1']
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import nn

from modelaudit.errors import InvalidInputError, LayerNotFoundError
from modelaudit.explainers.engine import explaining
from modelaudit.explainers.reshape import Layout, infer_layout, model_prefix_tokens
from modelaudit.hooks.layers import LayerSpec, resolve_layers
from modelaudit.outputs import select_output

__all__ = [
    "MIN_CELLS",
    "LayerChoice",
    "choose_layer",
    "default_layer",
    "feature_grids",
    "select_layers",
]

MIN_CELLS = 2
"""The median object box must span at least this many cells of the explained layer, in
height and in width: chosen by the calibration study (``scripts/calibration``) on its tuning
split, see README "How the bounds were chosen"."""


def default_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """The qualified name of the default layer (see the module docstring).

    Raises:
        LayerNotFoundError: the model has no convolution, or no module returns a 4-D map.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        >>> default_layer(net, torch.zeros(1, 3, 8, 8))
        '1'
    """
    grids = feature_grids(model, inputs)
    for wanted in (True, False):
        for name, (h, w) in reversed(grids):
            if (h * w > 1) == wanted:
                return name
    raise LayerNotFoundError(
        f"no module of {type(model).__name__} returns a (N, C, H, W) feature map; pass layer= "
        "and, for token outputs, reshape=."
    )


def feature_grids(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, tuple[int, int]]]:
    """Every module that returns a feature map and runs once, with its ``(h, w)``.

    Feature maps as in the module docstring: (N, C, h, w), channels-last and token outputs.

    In the order the modules *finish* during a probe forward of the first sample (a block
    comes after its children), so the last entry of a grid size is the deepest layer at it.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Flatten())
        >>> feature_grids(net, torch.zeros(1, 3, 8, 8))
        [('0', (6, 6)), ('1', (3, 3))]
    """
    return [(n, grid) for n, grid, _ in _probe(model, inputs)]


@dataclasses.dataclass(frozen=True)
class _Found:
    """A module whose output is a feature map: its name, grid, sign and layout."""

    name: str
    grid: tuple[int, int]
    nonneg: bool
    layout: Layout
    width: int
    in_grid: tuple[int, int] | None = None


def _probe(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, tuple[int, int], bool]]:
    """(name, grid, output is non-negative) of every feature map that runs once, finish order."""
    return [(f.name, f.grid, f.nonneg) for f in _survey(model, inputs)]


def _survey(model: nn.Module, inputs: torch.Tensor) -> list[_Found]:
    """Every module whose output is a feature map and that runs once, in finish order.

    Feature maps are (N, C, h, w), channels-last (N, h, w, C) and token (N, T, D) outputs
    (:func:`~modelaudit.explainers.reshape.infer_layout`) of the probe's batch of one.
    Left out: maps with more cells than their input (an adaptive pool that upsamples: no
    detail its input did not hold), square (N, heads, T, T) attention matrices of a token
    length T seen before, and token layers that are not the model's token width or whose
    patch tokens do not reach the output (after a ViT's last block only its class token
    does: their gradients are zero), found by one backward of the probe sample.
    """
    if not any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        raise LayerNotFoundError(
            f"{type(model).__name__} has no convolution layer, so there is no default layer "
            "to explain; pass layer= (a name from modelaudit.layer_names(model)) and, for "
            "transformers, reshape= (e.g. vit_reshape)."
        )
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    prefix = model_prefix_tokens(model)
    finished: list[_Found] = []
    calls: dict[str, int] = {}
    lengths: set[int] = set()  # token counts seen (attention matrices are T x T)

    def hook_for(name: str, module: nn.Module) -> Any:
        def hook(_m: nn.Module, args: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if not isinstance(out, torch.Tensor) or out.dim() not in (3, 4) or out.shape[0] != 1:
                return
            if out.dim() == 3:
                lengths.add(int(out.shape[1]))
            layout = infer_layout(out.shape, size, prefix_tokens=prefix, module=module)
            if layout is None or _upsamples(layout, args) or _attention(layout, out, lengths):
                return
            width = int(out.shape[-1] if layout.kind != "nchw" else out.shape[1])
            first = args[0] if isinstance(args, tuple) and args else None
            given = (
                infer_layout(first.shape, size, prefix_tokens=prefix)
                if isinstance(first, torch.Tensor) and first.dim() in (3, 4)
                else None
            )
            nonneg = bool((out >= 0).all())
            in_grid = None if given is None else given.grid
            finished.append(_Found(name, layout.grid, nonneg, layout, width, in_grid))

        return hook

    handles = [
        m.register_forward_hook(hook_for(n, m))
        for n, m in model.named_modules()
        if n and not isinstance(m, torch.jit.ScriptModule)  # no hooks on TorchScript
    ]
    try:
        with explaining(model), torch.no_grad():  # eval mode, restored: no BatchNorm update
            model(inputs[:1])
    finally:
        for h in handles:
            h.remove()
    found = [f for f in finished if calls[f.name] == 1]
    return _useful_tokens(model, inputs, found)


def _upsamples(layout: Layout, args: Any) -> bool:
    """Whether a (N, C, h, w) output has more cells than its (N, C, H, W) input."""
    first = args[0] if isinstance(args, tuple) and args else None
    if layout.kind != "nchw" or not isinstance(first, torch.Tensor) or first.dim() != 4:
        return False
    return layout.grid[0] * layout.grid[1] > first.shape[-2] * first.shape[-1]


def _attention(layout: Layout, out: torch.Tensor, lengths: set[int]) -> bool:
    """Whether an (N, C, h, w) reading is an (N, heads, T, T) attention matrix."""
    return layout.kind == "nchw" and out.shape[-1] == out.shape[-2] and out.shape[-1] in lengths


def _useful_tokens(model: nn.Module, inputs: torch.Tensor, found: list[_Found]) -> list[_Found]:
    """``found`` without token layers off the token width or whose patches reach nothing."""
    tokens = [f for f in found if f.layout.kind == "tokens"]
    if not tokens:
        return found
    widths = [f.width for f in tokens]
    width = max(set(widths), key=widths.count)
    wanted = {f.name: f for f in tokens if f.width == width}
    reach = _reaching(model, inputs, wanted)
    return [f for f in found if f.layout.kind != "tokens" or f.name in reach]


def _reaching(model: nn.Module, inputs: torch.Tensor, layers: dict[str, _Found]) -> set[str]:
    """Of token ``layers``, those whose patch tokens the predicted class's score depends on.

    One forward and backward of the first sample (in eval mode, parameters not requiring
    grad, restored after); all of ``layers`` if the output has no logits to score.
    """
    kept: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
            if isinstance(out, torch.Tensor) and out.requires_grad:
                kept[name] = out
                return out.clone()  # an in-place op later changes the clone, not ``out``
            return None

        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in layers]
    try:
        with explaining(model), torch.enable_grad():
            x = inputs[:1].detach().clone().requires_grad_(True)
            try:
                logits = select_output(model(x))
            except InvalidInputError:
                return set(layers)
            flat = logits.flatten(1)
            score = flat[0, flat[0].argmax()] if logits.dim() == 2 else logits.float().sum()
            if not score.requires_grad or not kept:
                return set()
            names = list(kept)
            grads = torch.autograd.grad(score, [kept[n] for n in names], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return {
        n
        for n, g in zip(names, grads)
        if g is not None and bool(g[:, layers[n].layout.prefix :].ne(0).any())
    }


def select_layers(
    model: nn.Module, inputs: torch.Tensor, layer: LayerSpec | None
) -> dict[str, nn.Module]:
    """Resolve ``layer`` (or the default) to ``{qualified name: module}`` in model order.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        >>> list(select_layers(net, torch.zeros(1, 3, 8, 8), nn.Conv2d))
        ['0', '2']
    """
    if layer is None:
        name = default_layer(model, inputs)
        return {name: dict(model.named_modules())[name]}
    return resolve_layers(model, layer)


@dataclasses.dataclass(frozen=True)
class LayerChoice:
    """The layer :func:`choose_layer` picked, and why.

    Attributes:
        name: the qualified layer name (pass it as ``layer=``).
        grid: ``(h, w)`` of its feature map at the probed input size.
        cell: ``(height, width)`` of one cell in input pixels.
        median_box: ``(height, width)`` of the median object box in pixels (None without boxes).
        reason: one sentence for logs and generated files.
        candidates: every layer returning a feature map once, deepest last, with its grid.
        layout: how the layer holds its map: ``"nchw"``, ``"nhwc"`` (channels last) or
            ``"tokens"``; the explainers reshape the last two themselves
            (:func:`~modelaudit.explainers.reshape.infer_layout`).
    """

    name: str
    grid: tuple[int, int]
    cell: tuple[float, float]
    median_box: tuple[float, float] | None
    reason: str
    candidates: tuple[tuple[str, tuple[int, int]], ...]
    layout: str = "nchw"

    def __str__(self) -> str:
        return self.name


def median_box_size(boxes: Any) -> tuple[float, float]:
    """``(height, width)`` medians of ``(N, 4)`` XYXY boxes or of bool ``(N, H, W)`` masks' boxes.

    Example:
        >>> median_box_size(torch.tensor([[0, 0, 4, 2], [0, 0, 8, 6], [1, 1, 3, 3]]))
        (2.0, 4.0)
    """
    t = torch.as_tensor(boxes)
    if t.dtype == torch.bool and t.dim() == 3:
        rows, cols = t.any(dim=2), t.any(dim=1)
        if not bool(rows.any(dim=1).all()):
            raise InvalidInputError("an object mask is empty: every image needs its object")
        h = rows.sum(dim=1).float()  # rows spanned (tight for convex; fine for a median)
        w = cols.sum(dim=1).float()
    elif t.dim() == 2 and t.shape[1] == 4 and t.shape[0] > 0:
        t = t.float()
        h, w = t[:, 3] - t[:, 1], t[:, 2] - t[:, 0]
    else:
        raise InvalidInputError(
            f"boxes must be (N, 4) XYXY boxes or a bool (N, H, W) mask; got shape "
            f"{tuple(t.shape)} of {t.dtype}"
        )
    return float(h.median()), float(w.median())


def _grid_output(found: list[_Found], grid: tuple[int, int]) -> _Found:
    """The layer to explain among those at ``grid`` (see :func:`choose_layer`).

    Maps in (N, C, h, w) only: :func:`_block_output`. With channels-last or token layers at
    the grid (transformers, ConvNeXt): the last one that does not run inside a block taking
    this grid in and giving a coarser one out (a next stage's downsampling), rectified if
    any is: their depth-0 modules (the patch embedding) precede the blocks, so the
    shallowest nesting would pick those.
    """
    at = [f for f in found if f.grid == grid]
    if all(f.layout.kind == "nchw" for f in at):
        name = _block_output([(f.name, f.nonneg) for f in at])
        return next(f for f in at if f.name == name)
    blocks = {f.name for f in found if f.in_grid == grid and f.grid != grid}  # downsampling
    own = [f for f in at if not blocks.intersection(_ancestors(f.name))]
    rectified = [f for f in own if f.nonneg]
    return (rectified or own or at)[-1]


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _block_output(layers: list[tuple[str, bool]]) -> str:
    """Of the layers sharing the chosen grid: the last rectified one at the shallowest nesting.

    Inside a block that downsamples (a ResNet's ``layer3.0``, a MobileNet's ``features.4``)
    the first modules still run at the finer grid (its 1x1 expansion, its ``conv1``): they
    are the block's private intermediates, not a stage's output; the outputs of whole
    blocks or stages sit higher in the module tree. And CAM weights activations that are
    rectified (ReLU outputs, as in the CAM papers): a linear bottleneck (a MobileNet
    block's output) has signed channels whose weighted sum cancels out, so a layer with a
    non-negative output is preferred when the grid has one.
    """
    rectified = [n for n, nonneg in layers if nonneg]
    names = rectified or [n for n, _ in layers]
    depth = min(n.count(".") for n in names)
    return [n for n in names if n.count(".") == depth][-1]


def _px(v: float) -> str:
    return f"{v:.3g}"


def choose_layer(
    model: nn.Module,
    images: torch.Tensor,
    boxes: Any = None,
    *,
    min_cells: float = MIN_CELLS,
) -> LayerChoice:
    """The deepest layer whose cells are small enough for the objects.

    Grad-CAM and its relatives resolve no detail finer than one cell of the explained layer:
    on a 2x2 grid every map is a blob in one quarter of the image, whatever the model reads.
    This picks the coarsest grid (the deepest layers, see :func:`feature_grids`) at which
    the median box spans at least ``min_cells`` cells in height and in width (if no layer is
    that fine, the finest grid), and of the layers at that grid the last one at the
    shallowest nesting with a rectified (non-negative) output: a block's or stage's output
    (``layer2`` of a ResNet), not a module inside the next, downsampling block, and not a
    linear bottleneck (a MobileNet block's output; its last ReLU, ``features.3.block.1``,
    instead). At a grid with channels-last or token layers (Swin, ConvNeXt, ViT) the last
    layer there outside the next downsampling block (``layers.1`` of a Swin, ``stages.1`` of
    a ConvNeXt; a ViT has one grid, its default layer). Without boxes, the default layer
    (the last feature map). Grids count cells of the model's own input: a detector that
    resizes its images (torchvision's transform) reports the resized grid.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(4), nn.MaxPool2d(2))
        >>> images, boxes = torch.zeros(2, 3, 32, 32), torch.tensor([[0, 0, 12, 12]] * 2)
        >>> choice = choose_layer(net, images, boxes)
        >>> choice.name, choice.grid, choice.cell
        ('1', (8, 8), (4.0, 4.0))
        >>> choose_layer(net, images, boxes, min_cells=1).name
        '2'
    """
    if not (isinstance(min_cells, int | float) and min_cells > 0):
        raise InvalidInputError(f"min_cells must be a number > 0; got {min_cells!r}")
    found = _survey(model, images)
    grids = [(f.name, f.grid) for f in found]
    if not grids:
        default_layer(model, images)  # raises the clear error
    height, width = int(images.shape[-2]), int(images.shape[-1])

    def cell(g: tuple[int, int]) -> tuple[float, float]:
        return height / g[0], width / g[1]

    if boxes is None:
        name = default_layer(model, images)
        grid = dict(grids)[name]
        kind = next(f.layout.kind for f in reversed(found) if f.name == name)
        reason = f"{name}: the last feature map ({grid[0]}x{grid[1]} cells); no boxes given"
        return LayerChoice(name, grid, cell(grid), None, reason, tuple(grids), kind)
    bh, bw = median_box_size(boxes)
    spatial = [(n, g) for n, g in grids if g[0] * g[1] > 1] or grids
    fits = [
        (n, g) for n, g in spatial if bh / cell(g)[0] >= min_cells and bw / cell(g)[1] >= min_cells
    ]
    if fits:
        grid = fits[-1][1]
        rule = f"the deepest layer where the median box spans >= {_px(min_cells)} cells"
    else:
        grid = max((g for _, g in spatial), key=lambda g: g[0] * g[1])
        rule = f"no layer is fine enough for >= {_px(min_cells)} cells; the finest one"
    chosen = _grid_output(found, grid)
    name = chosen.name
    ch, cw = cell(grid)
    reason = (
        f"{name}: {grid[0]}x{grid[1]} cells of {_px(ch)}x{_px(cw)} px; the median box "
        f"({_px(bh)}x{_px(bw)} px) spans {bh / ch:.1f}x{bw / cw:.1f} cells ({rule})"
    )
    return LayerChoice(name, grid, (ch, cw), (bh, bw), reason, tuple(grids), chosen.layout.kind)


def warn_if_coarse(grid: tuple[int, int] | None, size: tuple[int, int], boxes: Any) -> str | None:
    """A warning (also returned as text) when one cell is larger than the median box.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     text = warn_if_coarse((2, 2), (64, 64), torch.tensor([[0, 0, 10, 10]]))
        >>> text.split(":")[0]
        "the explained layer's cells (32x32 px) are larger than the median object box (10x10 px)"
    """
    if grid is None:
        return None
    bh, bw = median_box_size(boxes)
    ch, cw = size[0] / grid[0], size[1] / grid[1]
    if ch <= bh and cw <= bw:
        return None
    text = (
        f"the explained layer's cells ({_px(ch)}x{_px(cw)} px) are larger than the median "
        f"object box ({_px(bh)}x{_px(bw)} px): its heat maps cannot show whether the model "
        "looks at the object; explain a finer layer (modelaudit.choose_layer picks one)"
    )
    warnings.warn(text, CoarseLayerWarning, stacklevel=3)
    return text


class CoarseLayerWarning(UserWarning):
    """The explained layer's cells are larger than the objects (see :func:`warn_if_coarse`)."""
