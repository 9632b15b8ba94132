"""Faithfulness: does removing what the map highlights change the model's decision?

**Score.** The model's confidence in the target class is the softmax probability of that
class, read from the model's logits; the target is resolved once on the unmodified images
(``target=None``: the predicted class) and kept for every perturbed forward
(:func:`modelaudit.targets.score_targets`). With a callable target its ``(N,)`` score of the
raw output is used as is; like everywhere in the package, it is called on outputs of N rows
ordered like the batch.

**Deletion / insertion** (Petsiuk et al., RISE): pixels are ordered by map value, highest
first (ties by row-major position; a stable sort). At step ``k = 0..steps`` the first
``floor(k * H * W / steps)`` pixels are replaced, in every channel, by the fill
(deletion) or copied from the image onto the fill (insertion). The curve of scores over
the fraction ``k / steps`` is integrated with the trapezoidal rule, so AUCs lie in [0, 1]
for probabilities. A faithful map gives a low deletion AUC and a high insertion AUC. All
perturbed images go through the model ``forward_batch`` per forward under
``torch.inference_mode()`` with the model in eval mode (its mode is restored afterwards).

**Fills** (what replaces a deleted pixel): ``"zeros"``; ``"mean"`` (each image's
per-channel mean); ``"blur"`` (Gaussian blur, sigma 5 px as in RISE, replicate padding); or
a tensor broadcastable to the images.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.measure import deletion_auc
    >>> class Bright(nn.Module):             # logit of class 0 = 4 * mean brightness
    ...     def forward(self, x):
    ...         s = 4 * x.mean(dim=(1, 2, 3))
    ...         return torch.stack([s, torch.zeros_like(s)], 1)
    >>> images = torch.ones(1, 1, 2, 2)
    >>> deletion_auc(Bright(), images, torch.rand(1, 2, 2), target=0, steps=4)
    tensor([0.8264])
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.batching import Batches
from modelaudit.hooks.state import preserved_state
from modelaudit.measure._validate import check_images, check_maps, check_same_size
from modelaudit.outputs import FromOutput, select_output
from modelaudit.targets import Target, TargetScorer, score_targets

__all__ = [
    "Fill",
    "average_drop",
    "curve_auc",
    "deletion_auc",
    "increase_in_confidence",
    "insertion_auc",
    "perturbation_curve",
]

Fill: TypeAlias = Literal["zeros", "blur", "mean"] | torch.Tensor

BLUR_SIGMA = 5.0


def _blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _fill(images: torch.Tensor, fill: Fill) -> torch.Tensor:
    if isinstance(fill, torch.Tensor):
        try:
            shape = torch.broadcast_shapes(fill.shape, images.shape)
        except RuntimeError:
            shape = None
        if shape != images.shape:
            raise InvalidInputError(
                f"fill tensor of shape {tuple(fill.shape)} does not broadcast to the "
                f"images' shape {tuple(images.shape)}"
            )
        if not torch.isfinite(fill).all():
            raise InvalidInputError("fill tensor must be finite")
        return fill.to(images).expand_as(images)
    if fill == "zeros":
        return torch.zeros_like(images)
    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        return _blur(images)
    raise InvalidInputError(f"fill must be 'zeros', 'blur', 'mean' or a tensor; got {fill!r}")


def _first_scores(
    model: nn.Module, images: torch.Tensor, target: Target
) -> tuple[TargetScorer, torch.Tensor]:
    """Fix the targets on ``images``: the scorer and the images' (N,) scores."""
    out = model(images)
    scorer, scores = score_targets(
        out if callable(target) or isinstance(target, FromOutput) else select_output(out).float(),
        target,
        images.shape[0],
        softmax=True,
    )
    if not scorer.single:
        if scorer.is_callable:
            raise InvalidInputError(
                "a callable target must return one score per sample, shape (N,)"
            )
        raise InvalidInputError(
            f"faithfulness metrics explain one class per sample; got targets of shape "
            f"{tuple(scorer.class_indices('faithfulness').shape)}. Pass one class per sample."
        )
    return scorer, scores[:, 0].float()


def _scores(scorer: TargetScorer, out: Any, samples: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) scores of a later output: softmax probability (float32) or a callable's score."""
    return scorer.rows(out if scorer.is_callable else scorer.select(out).float(), samples)[
        :, 0
    ].float()


def _inputs(images: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = check_images(images)
    maps = check_maps(maps).to(images.device)
    check_same_size(maps, images)
    return images, maps


def _check_counts(steps: int, forward_batch: int) -> None:
    for name, v in (("steps", steps), ("forward_batch", forward_batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidInputError(f"{name} must be a positive int; got {v!r}")


def perturbation_curve(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    target: Target = None,
    fill: Fill = "zeros",
    steps: int = 20,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Target scores while pixels are deleted (or inserted) in order of map value.

    Args:
        model: a classifier returning ``(N, classes)`` logits (or any output, with a
            callable ``target``).
        images: ``(N, C, H, W)`` inputs.
        maps: ``(N, H, W)`` heat maps at the images' resolution.
        mode: ``"deletion"`` (start from the image) or ``"insertion"`` (from the fill).
        target: class(es) to score; ``None`` is the predicted class.
        fill: what replaces deleted pixels: ``"zeros"``, ``"blur"``, ``"mean"`` or a tensor.
        steps: number of steps; the curve has ``steps + 1`` points.
        forward_batch: perturbed images per forward (whole groups of N for a callable
            target).

    Returns:
        ``(N, steps + 1)`` scores; column k is after ``floor(k * H * W / steps)`` pixels.

    Cost: ``steps * N`` images through the model: the unperturbed images' scores come from
    the forward that resolves the targets, and a fill that is the same for every image
    (``"zeros"``, a constant tensor) is scored once for the fully perturbed column.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> perturbation_curve(net, torch.rand(3, 1, 2, 2), torch.rand(3, 2, 2), steps=4).shape
        torch.Size([3, 5])
    """
    if mode not in ("deletion", "insertion"):
        raise InvalidInputError(f"mode must be 'deletion' or 'insertion'; got {mode!r}")
    _check_counts(steps, forward_batch)
    images, maps = _inputs(images, maps)
    n, _, h, w = images.shape
    order = maps.flatten(1).sort(dim=1, descending=True, stable=True).indices
    rank = torch.empty(order.shape, dtype=torch.int32, device=order.device)
    positions = torch.arange(h * w, dtype=torch.int32, device=order.device)
    rank.scatter_(1, order, positions.expand(n, -1))
    intact, blank = (0, steps) if mode == "deletion" else (steps, 0)
    with preserved_state(model, eval_mode=True), torch.inference_mode():
        base = _fill(images, fill)
        scorer, original = _first_scores(model, images, target)
        scores = torch.empty(steps + 1, n, device=images.device)
        scores[intact] = original.to(scores.device)  # the first forward: no rerun
        columns = [k for k in range(steps + 1) if k != intact]
        if not scorer.is_callable and bool((base == base[:1]).all()):  # one image for all
            scores[blank] = _scores(scorer, model(base[:1]).expand(n, -1)).to(scores.device)
            columns.remove(blank)
        first, then = (base, images) if mode == "deletion" else (images, base)
        _score_columns(model, scorer, scores, columns, rank, first, then, forward_batch)
    return scores.T.clone()


def _score_columns(
    model: nn.Module,
    scorer: TargetScorer,
    scores: torch.Tensor,
    columns: list[int],
    rank: torch.Tensor,
    first: torch.Tensor,
    then: torch.Tensor,
    forward_batch: int,
) -> None:
    """Fill ``scores[k]`` for each column ``k``: pixels of rank below its count from ``first``."""
    n, _, h, w = first.shape
    steps = scores.shape[0] - 1
    counts = [k * h * w // steps for k in range(steps + 1)]  # pixels changed at step k
    jobs = [(k, i) for k in columns for i in range(n)]  # (column, sample), column-major
    step = max(1, forward_batch // n) * n if scorer.is_callable else forward_batch
    batches = Batches(len(jobs), step, into=[scores])
    for part in batches:
        chunk = jobs[part]
        x = first.new_empty((len(chunk), *first.shape[1:]))
        at = 0
        for k, lo, hi in _runs(chunk):  # contiguous samples of one column: views, no gather
            changed = (rank[lo:hi] < counts[k]).view(-1, 1, h, w)
            torch.where(changed, first[lo:hi], then[lo:hi], out=x[at : at + hi - lo])
            at += hi - lo
        k_idx = torch.tensor([k for k, _ in chunk], device=scores.device)
        s_idx = torch.tensor([i for _, i in chunk], device=first.device)
        got = _scores(scorer, model(x), s_idx).to(scores.device)
        batches.put((k_idx, s_idx.to(scores.device)), [got])


def _runs(chunk: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``(column, first, last + 1)`` for each run of consecutive samples in one column."""
    runs: list[tuple[int, int, int]] = []
    for k, i in chunk:
        if runs and runs[-1][0] == k and runs[-1][2] == i:
            runs[-1] = (k, runs[-1][1], i + 1)
        else:
            runs.append((k, i, i + 1))
    return runs


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under ``(N, steps + 1)`` curves over [0, 1] by the trapezoidal rule, ``(N,)``.

    Example:
        >>> import torch
        >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]]))
        tensor([0.5000, 1.0000])
    """
    steps = curve.shape[1] - 1
    return (curve[:, :-1] + curve[:, 1:]).sum(dim=1) / (2 * steps)


def deletion_auc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    fill: Fill = "zeros",
    steps: int = 20,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Area under the deletion curve (lower is more faithful), ``(N,)``.

    See :func:`perturbation_curve` for the arguments.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> deletion_auc(net, torch.rand(2, 1, 2, 2), torch.rand(2, 2, 2)).shape
        torch.Size([2])
    """
    return curve_auc(
        perturbation_curve(
            model,
            images,
            maps,
            mode="deletion",
            target=target,
            fill=fill,
            steps=steps,
            forward_batch=forward_batch,
        )
    )


def insertion_auc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    fill: Fill = "blur",
    steps: int = 20,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Area under the insertion curve (higher is more faithful), ``(N,)``.

    The default fill is ``"blur"`` (as in RISE); see :func:`perturbation_curve`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> insertion_auc(net, torch.rand(2, 1, 2, 2), torch.rand(2, 2, 2)).shape
        torch.Size([2])
    """
    return curve_auc(
        perturbation_curve(
            model,
            images,
            maps,
            mode="insertion",
            target=target,
            fill=fill,
            steps=steps,
            forward_batch=forward_batch,
        )
    )


def _confidence(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the images and of ``images * map / max(map)`` (Grad-CAM++'s explanation map)."""
    images, maps = _inputs(images, maps)
    flat = maps.clamp(min=0).flatten(1)
    top = flat.amax(dim=1, keepdim=True)
    weight = torch.where(top > 0, flat / top.clamp(min=torch.finfo(flat.dtype).tiny), 0.0)
    masked = images * weight.view(maps.shape)[:, None].to(images.dtype)
    with preserved_state(model, eval_mode=True), torch.inference_mode():
        scorer, original = _first_scores(model, images, target)
        kept = _scores(scorer, model(masked))
    return original.clone(), kept.clone()


def average_drop(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, *, target: Target = None
) -> torch.Tensor:
    """Drop in confidence when only the highlighted part is kept (Chattopadhyay et al.).

    The image is multiplied by its map scaled to ``[0, 1]`` by the map's maximum (negative
    values clamped; a zero map blanks the image). Per sample: ``max(0, Y - O) / Y`` with ``Y``
    the score of the image and ``O`` that of the masked image; the paper's "average drop %"
    is ``100 * mean``. Lower is better.

    Raises:
        InvalidInputError: a callable target gave a score ``<= 0`` for an original image.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> drop = average_drop(net, torch.rand(2, 1, 2, 2), torch.ones(2, 2, 2))
        >>> drop                                  # a map of ones keeps the image intact
        tensor([0., 0.])
    """
    y, o = _confidence(model, images, maps, target)
    if (y <= 0).any():
        i = int((y <= 0).nonzero()[0, 0])
        raise InvalidInputError(
            f"average drop needs positive scores; sample {i} scores {float(y[i]):g} on the "
            "original image (use class targets, whose softmax probability is positive)."
        )
    return (y - o).clamp(min=0) / y


def increase_in_confidence(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, *, target: Target = None
) -> torch.Tensor:
    """1.0 where keeping only the highlighted part raises the score, else 0.0; ``(N,)``.

    Same masked image as :func:`average_drop`; the mean is the paper's "increase in
    confidence" rate. Higher is better.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> increase_in_confidence(net, torch.rand(2, 1, 2, 2), torch.ones(2, 2, 2))
        tensor([0., 0.])
    """
    y, o = _confidence(model, images, maps, target)
    return (o > y).to(y.dtype)
