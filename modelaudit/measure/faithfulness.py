"""Faithfulness: does removing what the map highlights change the model's decision?

**Score.** The model's confidence in the target class is the softmax probability of that
class, read from the model's logits; the target is resolved once on the unmodified images
(``target=None``: the predicted class) and kept for every perturbed forward. With a callable
target (see :mod:`modelaudit.targets`) its ``(N,)`` score of the raw output is used as is.

**Deletion / insertion** (Petsiuk et al., RISE): pixels are ordered by map value, highest
first (ties by row-major position; a stable sort). At step ``k = 0..steps`` the first
``floor(k * H * W / steps)`` pixels are replaced, in every channel, by the baseline
(deletion) or copied from the image onto the baseline (insertion). The curve of scores over
the fraction ``k / steps`` is integrated with the trapezoidal rule, so AUCs lie in [0, 1]
for probabilities. A faithful map gives a low deletion AUC and a high insertion AUC. All
perturbed images go through the model in batches of ``batch_size`` under
``torch.inference_mode()`` with the model in eval mode (its mode is restored afterwards).

**Baselines**: ``"zeros"``; ``"mean"`` (each image's per-channel mean); ``"blur"`` (Gaussian
blur, sigma 5 px as in RISE, replicate padding); or a tensor broadcastable to the images.

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

from typing import Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.hooks.state import preserved_state
from modelaudit.measure._validate import check_images, check_maps, check_same_size
from modelaudit.targets import Target, resolve_class_targets, target_scores

__all__ = [
    "Baseline",
    "average_drop",
    "deletion_auc",
    "increase_in_confidence",
    "insertion_auc",
    "perturbation_curve",
]

Baseline: TypeAlias = Literal["zeros", "blur", "mean"] | torch.Tensor

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


def _baseline(images: torch.Tensor, baseline: Baseline) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        try:
            shape = torch.broadcast_shapes(baseline.shape, images.shape)
        except RuntimeError:
            shape = None
        if shape != images.shape:
            raise InvalidInputError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to the "
                f"images' shape {tuple(images.shape)}"
            )
        if not torch.isfinite(baseline).all():
            raise InvalidInputError("baseline tensor must be finite")
        return baseline.to(images).expand_as(images)
    if baseline == "zeros":
        return torch.zeros_like(images)
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if baseline == "blur":
        return _blur(images)
    raise InvalidInputError(
        f"baseline must be 'zeros', 'blur', 'mean' or a tensor; got {baseline!r}"
    )


class _Scorer:
    """Scores of the (fixed) targets for any batch of inputs built from sample indices."""

    def __init__(self, model: nn.Module, images: torch.Tensor, target: Target) -> None:
        self.model = model
        self.target = target
        out = model(images)
        if callable(target):
            self.classes = None
            self.original = self._of(out, torch.arange(images.shape[0]))
            return
        idx = resolve_class_targets(out, target)
        if idx.dim() != 1:
            raise InvalidInputError(
                f"faithfulness metrics explain one class per sample; got targets of shape "
                f"{tuple(idx.shape)}. Pass one class per sample."
            )
        self.classes = idx
        self.original = self._of(out, torch.arange(images.shape[0]))

    def _of(self, out: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        if self.classes is None:
            scores = target_scores(out, self.target)
            if scores.dim() != 1:
                raise InvalidInputError(
                    "a callable target must return one score per sample, shape (N,)"
                )
            return scores.float()
        probs = out.float().softmax(dim=1)
        return probs.gather(1, self.classes[samples.to(self.classes.device)][:, None])[:, 0]

    def __call__(self, x: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return self._of(self.model(x), samples)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) scores of every sample's class for one input ``x`` (1, C, H, W) they share."""
        assert self.classes is not None, "a callable target scores whole batches"
        probs = self.model(x).float().softmax(dim=1)
        return probs[0, self.classes.to(probs.device)]


def _inputs(images: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = check_images(images)
    maps = check_maps(maps).to(images.device)
    check_same_size(maps, images)
    return images, maps


def _check_counts(steps: int, batch_size: int) -> None:
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidInputError(f"{name} must be a positive int; got {v!r}")


def perturbation_curve(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    target: Target = None,
    baseline: Baseline = "zeros",
    steps: int = 20,
    batch_size: int = 64,
) -> torch.Tensor:
    """Target scores while pixels are deleted (or inserted) in order of map value.

    Args:
        model: a classifier returning ``(N, classes)`` logits (or any output, with a
            callable ``target``).
        images: ``(N, C, H, W)`` inputs.
        maps: ``(N, H, W)`` heat maps at the images' resolution.
        mode: ``"deletion"`` (start from the image) or ``"insertion"`` (from the baseline).
        target: class(es) to score; ``None`` is the predicted class.
        baseline: ``"zeros"``, ``"blur"``, ``"mean"`` or a tensor.
        steps: number of steps; the curve has ``steps + 1`` points.
        batch_size: perturbed images per forward.

    Returns:
        ``(N, steps + 1)`` scores; column k is after ``floor(k * H * W / steps)`` pixels.

    Cost: ``steps * N`` images through the model: the unperturbed images' scores come from
    the forward that resolves the targets, and a baseline that is the same for every image
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
    _check_counts(steps, batch_size)
    images, maps = _inputs(images, maps)
    n, _, h, w = images.shape
    flat = maps.flatten(1)
    order = flat.sort(dim=1, descending=True, stable=True).indices
    rank = torch.empty(order.shape, dtype=torch.int32, device=order.device)
    positions = torch.arange(h * w, dtype=torch.int32, device=order.device)
    rank.scatter_(1, order, positions.expand(n, -1))
    counts = [k * h * w // steps for k in range(steps + 1)]  # pixels changed at step k
    intact, blank = (0, steps) if mode == "deletion" else (steps, 0)
    with preserved_state(model, eval_mode=True), torch.inference_mode():
        base = _baseline(images, baseline)
        scorer = _Scorer(model, images, target)
        scores = torch.empty(steps + 1, n, device=images.device)
        scores[intact] = scorer.original.to(scores.device)  # the first forward: no rerun
        columns = [k for k in range(steps + 1) if k != intact]
        if scorer.classes is not None and bool((base == base[:1]).all()):
            scores[blank] = scorer.shared(base[:1]).to(scores.device)  # one image for all
            columns.remove(blank)
        first, then = (base, images) if mode == "deletion" else (images, base)
        jobs = [(k, i) for k in columns for i in range(n)]  # (column, sample), column-major
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            x = images.new_empty((len(chunk), *images.shape[1:]))
            at = 0
            for k, lo, hi in _runs(chunk):  # contiguous samples of one column: views, no gather
                changed = (rank[lo:hi] < counts[k]).view(-1, 1, h, w)
                torch.where(changed, first[lo:hi], then[lo:hi], out=x[at : at + hi - lo])
                at += hi - lo
            k_idx = torch.tensor([k for k, _ in chunk], device=scores.device)
            s_idx = torch.tensor([i for _, i in chunk], device=images.device)
            scores[k_idx, s_idx.to(scores.device)] = scorer(x, s_idx).to(scores.device)
    return scores.T.clone()


def _runs(chunk: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``(column, first, last + 1)`` for each run of consecutive samples in one column."""
    runs: list[tuple[int, int, int]] = []
    for k, i in chunk:
        if runs and runs[-1][0] == k and runs[-1][2] == i:
            runs[-1] = (k, runs[-1][1], i + 1)
        else:
            runs.append((k, i, i + 1))
    return runs


def _auc(curve: torch.Tensor) -> torch.Tensor:
    steps = curve.shape[1] - 1
    return (curve[:, :-1] + curve[:, 1:]).sum(dim=1) / (2 * steps)


def deletion_auc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    baseline: Baseline = "zeros",
    steps: int = 20,
    batch_size: int = 64,
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
    return _auc(
        perturbation_curve(
            model,
            images,
            maps,
            mode="deletion",
            target=target,
            baseline=baseline,
            steps=steps,
            batch_size=batch_size,
        )
    )


def insertion_auc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    baseline: Baseline = "blur",
    steps: int = 20,
    batch_size: int = 64,
) -> torch.Tensor:
    """Area under the insertion curve (higher is more faithful), ``(N,)``.

    The default baseline is ``"blur"`` (as in RISE); see :func:`perturbation_curve`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> insertion_auc(net, torch.rand(2, 1, 2, 2), torch.rand(2, 2, 2)).shape
        torch.Size([2])
    """
    return _auc(
        perturbation_curve(
            model,
            images,
            maps,
            mode="insertion",
            target=target,
            baseline=baseline,
            steps=steps,
            batch_size=batch_size,
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
        scorer = _Scorer(model, images, target)
        kept = scorer(masked, torch.arange(images.shape[0]))
    return scorer.original.clone(), kept.clone()


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
