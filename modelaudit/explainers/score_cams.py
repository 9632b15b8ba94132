"""Score-CAM and its smoothed (SS-CAM) and integrated (IS-CAM) variants: no gradients.

Each channel ``A_k`` of the layer becomes a mask ``M_k``: upsampled bilinearly
(``align_corners=False``) to the input size and scaled to [0, 1] per channel by
``(x - min) / (max - min + eps)`` (:func:`normalize_maps`). The model scores the masked
input ``M_k * x``; the channel weights are ``w_k = softmax_k(S(M_k * x))`` (softmax over channels of the target's
raw score) and the map is ``ReLU(sum_k w_k A_k)``.

This is pytorch-grad-cam's and TorchCAM's convention. TorchCAM subtracts the score of a
baseline first, and the paper (Wang et al., 2020) writes ``f(M_k * x) - f(x_b)``; a
per-sample constant cancels in the softmax, so the maps are identical. The authors'
reference code instead weights each channel by the class *probability*
``softmax_c(f(M_k * x))`` with no channel softmax: pass ``weights="probability"``.
pytorch-grad-cam upsamples with ``align_corners=True``.

Efficiency: masked inputs run ``forward_batch`` per forward under ``torch.inference_mode``.
The default ``"auto"`` takes 8 per forward, fewer for inputs larger than 224x224, so that
one forward holds at most :data:`MASKED_PIXELS` pixels (8 images of 224x224). Measured on
CPU (one thread, resnet18 at 224x224, bench/): 8 per forward was level with
pytorch-grad-cam's 16 (0.9-1.03x its time, depending on the process's heap) and adds
10-15% to the peak memory of a one-image forward's process; ``forward_batch=2`` adds 2% and
takes up to ~10% longer.
A channel that is constant over the map has an all-zero mask, so its masked input is the
same for every such channel: it is scored once per sample (not once per channel) and the
softmax still counts every channel, so the weights are exactly those of the full method.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.score_cams import scorecam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    >>> scorecam(net, torch.rand(2, 3, 8, 8), target=3, layer="1").shape
    torch.Size([2, 8, 8])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Unpack

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.base import CamContext, Formula, run_cam
from modelaudit.explainers.batching import Batches
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.gradient_cams import weighted_sum
from modelaudit.explainers.options import CamOptions, explanation_method
from modelaudit.explainers.postprocess import normalize_maps, upsample_maps
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = [
    "iscam",
    "keyed_noise",
    "masked_scores",
    "scorecam",
    "sscam",
    "top_variance_channels",
]

# (masks (B, 1, H, W), inputs (B, C, H, W), channel of each row (B,), -1 for the shared
# all-zero mask) -> masked inputs (B, C, H, W)
Variant = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Weights = Literal["softmax", "probability"]
ForwardBatch = int | Literal["auto"]


#: Pixels per masked forward under ``forward_batch="auto"`` (8 images of 224x224).
MASKED_PIXELS = 8 * 224 * 224

#: Masked inputs per forward under ``forward_batch="auto"`` for small inputs.
MAX_MASKED_BATCH = 8


def masked_batch(forward_batch: ForwardBatch, inputs: torch.Tensor) -> int:
    """Masked inputs per forward: ``forward_batch``, or for ``"auto"`` 8, fewer for big inputs.

    Example:
        >>> import torch
        >>> [masked_batch("auto", torch.zeros(1, 3, s, s)) for s in (64, 224, 320, 448, 640)]
        [8, 8, 3, 2, 1]
        >>> masked_batch(32, torch.zeros(1, 3, 224, 224))
        32
    """
    if forward_batch != "auto":
        return int(forward_batch)
    pixels = inputs.shape[-2] * inputs.shape[-1]
    return max(1, min(MAX_MASKED_BATCH, MASKED_PIXELS // pixels))


def _check_options(forward_batch: ForwardBatch, num_samples: int, weights: str) -> None:
    bad_batch = forward_batch != "auto" and (
        isinstance(forward_batch, bool) or not isinstance(forward_batch, int) or forward_batch < 1
    )
    if bad_batch or num_samples < 1:
        raise InvalidInputError(
            "forward_batch must be a positive int or 'auto' and num_samples >= 1; got "
            f"forward_batch={forward_batch!r}, num_samples={num_samples}"
        )
    if weights not in ("softmax", "probability"):
        raise InvalidInputError(f"weights must be 'softmax' or 'probability'; got {weights!r}")


def masked_scores(
    ctx: CamContext,
    acts: torch.Tensor,
    variants: list[Variant],
    *,
    forward_batch: int,
    probability: bool = False,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over ``variants`` of the target scores of masked inputs: (N, K, C).

    ``forward_batch`` masked inputs go through the model per forward (whole groups of N
    for a callable target). Channels constant over the map share one all-zero-mask forward
    per sample. With ``keep`` (N, C) bool, only those channels are scored (the others'
    scores are 0). ``probability``: class targets scored by their softmax probability.
    """
    n, c = acts.shape[:2]
    scorer, x = ctx.scorer.probabilities() if probability else ctx.scorer, ctx.inputs
    flat = acts.flatten(2)
    if keep is None:
        keep = torch.ones(n, c, dtype=torch.bool, device=acts.device)
    active = (flat.amax(-1) > flat.amin(-1)) & keep  # (N, C): a kept, non-zero mask

    def score(masks: torch.Tensor, samples: torch.Tensor, chans: torch.Tensor) -> torch.Tensor:
        total = None
        for variant in variants:
            with torch.inference_mode():
                masked = variant(masks, x[samples], chans)
                rows = scorer.rows(ctx.model(masked), samples).clone()
            total = rows if total is None else total + rows
        assert total is not None
        return total.clone() / len(variants)  # clone: a normal tensor, not an inference one

    scores = torch.zeros(n, scorer.k, c, dtype=acts.dtype, device=acts.device)
    if scorer.is_callable:  # the callable needs whole batches of N rows
        chans = active.any(0).nonzero().flatten()
        pairs = torch.stack(
            [torch.arange(n).repeat(len(chans)), chans.cpu().repeat_interleave(n)], dim=1
        )
        step = max(1, forward_batch // n) * n
        skipped = ~active.any(0, keepdim=True).expand(n, c) & keep
    else:
        pairs = active.nonzero().cpu()
        step = forward_batch
        skipped = ~active & keep
    batches = Batches(len(pairs), step, into=[scores])
    for part in batches:
        ni, ci = pairs[part, 0], pairs[part, 1]
        maps = upsample_maps(acts[ni.to(acts.device), ci.to(acts.device)], x.shape[-2:])
        masks = normalize_maps(maps)[:, None].to(x.dtype)
        batches.put((ni, slice(None), ci), [score(masks, ni, ci).to(scores.dtype)])
    if bool(skipped.any()):
        zero = score(
            torch.zeros(n, 1, *x.shape[-2:], dtype=x.dtype, device=x.device),
            torch.arange(n),
            torch.full((n,), -1, dtype=torch.long),
        )
        scores = torch.where(skipped[:, None, :], zero.to(scores.dtype)[:, :, None], scores)
    return scores


def top_variance_channels(acts: torch.Tensor, top_k: int) -> torch.Tensor:
    """(N, C) bool: each sample's ``top_k`` channels of largest spatial variance.

    Faster Score-CAM (Wang et al., 2020, the authors' follow-up note) scores only these
    channels: low-variance channels make nearly uniform masks that barely move the score.

    Example:
        >>> import torch
        >>> acts = torch.zeros(1, 3, 2, 2)
        >>> acts[0, 1] = torch.tensor([[0.0, 4.0], [4.0, 0.0]])
        >>> acts[0, 2] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> top_variance_channels(acts, 1).tolist()
        [[False, True, False]]
    """
    n, c = acts.shape[:2]
    keep = torch.zeros(n, c, dtype=torch.bool, device=acts.device)
    chosen = acts.flatten(2).var(dim=-1).topk(min(top_k, c), dim=1).indices
    return keep.scatter_(1, chosen, True)


def _score_formula(
    variants: Callable[[], list[Variant]],
    weights: Weights,
    forward_batch: ForwardBatch,
    top_k: int | None = None,
) -> Formula:
    def formula(ctx: CamContext) -> list[torch.Tensor]:
        if weights == "probability":
            ctx.scorer.class_indices('weights="probability"')
        out = []
        for a in ctx.activations:
            keep = None if top_k is None else top_variance_channels(a, top_k)
            s = masked_scores(
                ctx,
                a,
                variants(),
                forward_batch=masked_batch(forward_batch, ctx.inputs),
                probability=weights == "probability",
                keep=keep,
            )
            if keep is not None:  # channels not scored get weight 0
                s = s.masked_fill(~keep[:, None, :], float("-inf") if weights == "softmax" else 0)
            w = torch.softmax(s, dim=-1) if weights == "softmax" else s
            out.append(weighted_sum(w, a))
        return out

    return formula


_MASK64 = 2**64 - 1


def _mix(*parts: int) -> int:
    """A seed from integers (splitmix64 rounds): the same on every run and platform.

    Example:
        >>> _mix(0, 3, 1) == _mix(0, 3, 1), _mix(0, 3, 1) == _mix(0, 1, 3)
        (True, False)
    """
    z = 0
    for part in parts:
        z = (z + (part & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
    return z >> 1  # manual_seed takes up to 2**63 - 1 here without wrapping


def keyed_noise(
    like: torch.Tensor, chans: torch.Tensor, seed: int | None, draw: int
) -> torch.Tensor:
    """N(0, 1) noise shaped like ``like`` (B, ...), row ``i`` a function of ``chans[i]``.

    With a seed, the noise of a row depends only on ``(seed, channel, draw)``: not on the
    row's position, the other rows, the batch or ``forward_batch``, so a seeded map of an
    image is the same alone or in any batch. ``seed=None`` draws from torch's global
    generator.

    Example:
        >>> import torch
        >>> a = keyed_noise(torch.zeros(3, 2), torch.tensor([5, 1, 5]), seed=0, draw=0)
        >>> torch.equal(a[0], a[2]), torch.equal(a[0], a[1])
        (True, False)
        >>> torch.equal(keyed_noise(torch.zeros(1, 2), torch.tensor([1]), 0, 0)[0], a[1])
        True
    """
    if seed is None:
        return torch.randn(like.shape, dtype=like.dtype).to(like.device)
    rows: dict[int, torch.Tensor] = {}
    for c in chans.tolist():
        if c not in rows:
            gen = torch.Generator().manual_seed(_mix(seed, c, draw))
            rows[c] = torch.randn(like.shape[1:], generator=gen, dtype=like.dtype)
    return torch.stack([rows[c] for c in chans.tolist()]).to(like.device)


@explanation_method("scorecam")
def scorecam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    forward_batch: ForwardBatch = "auto",
    weights: Weights = "softmax",
    top_k: int | None = None,
    **options: Unpack[CamOptions],
) -> Explanation:
    """Score-CAM (Wang et al., 2020); formula and conventions in the module docstring.

    Costs one forward per non-constant channel and sample (batched). ``top_k=k`` is the
    fast mode (Faster Score-CAM): only each sample's ``k`` channels of largest spatial
    variance are scored and weighted (softmax over those ``k``), the rest get weight 0, so
    it costs ``k`` forwards per sample instead of ``C``.

    Args:
        weights: ``"softmax"`` (over channels, as the peers) or ``"probability"`` (class
            probability of each masked input, as the authors' code; class targets only).
        top_k: score only the ``top_k`` highest-variance channels (None: all, exact).

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> scorecam(net, x, target=3, layer="1", forward_batch=8).shape
        torch.Size([2, 16, 16])
    """
    _check_options(forward_batch, 1, weights)
    if top_k is not None and top_k < 1:
        raise InvalidInputError(f"top_k must be >= 1 (or None for exact Score-CAM); got {top_k}")

    def variants() -> list[Variant]:
        return [lambda m, x, _c: m * x]

    formula = _score_formula(variants, weights, forward_batch, top_k)
    return run_cam(
        model, inputs, target, layer, formula, method="scorecam", gradients=False, **options
    )


@explanation_method("sscam")
def sscam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    forward_batch: ForwardBatch = "auto",
    num_samples: int = 10,
    std: float = 2.0,
    noise: Literal["mask", "input"] = "mask",
    seed: int | None = 0,
    weights: Weights = "softmax",
    **options: Unpack[CamOptions],
) -> Explanation:
    """SS-CAM (Wang, Naidu et al., 2020): Score-CAM with scores averaged over noise.

    ``w_k = softmax_k(mean_i S((M_k + e_i) * x))`` with ``e_i ~ N(0, std^2)`` per pixel
    (``noise="mask"``, the paper's SS-CAM(1) and TorchCAM's choice; the paper uses N = 10,
    sigma = 2, TorchCAM 35 samples), or ``S(M_k * (x + e_i))`` (``noise="input"``,
    SS-CAM(2)). Constant channels share one noisy estimate per sample (same distribution as
    scoring each of them separately). Costs ``num_samples`` times Score-CAM.

    With a ``seed``, draw ``i`` of channel ``k`` is the same noise for every image
    (:func:`keyed_noise`), so a seeded map of an image does not depend on the other images
    of the batch, its position in it, or ``forward_batch``.

    Args:
        num_samples: noise draws averaged per channel.
        std: the noise's standard deviation (on the [0, 1] mask, or on the input).
        noise: ``"mask"`` or ``"input"``.
        seed: seed of the noise (``None``: torch's global generator, and the maps then
            depend on the batch).
        weights: as :func:`scorecam`.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> sscam(net, x, target=3, layer="1", num_samples=2).shape
        torch.Size([2, 16, 16])
    """
    _check_options(forward_batch, num_samples, weights)
    if noise not in ("mask", "input") or std < 0:
        raise InvalidInputError(
            f"noise must be 'mask' or 'input' and std >= 0; got {noise!r}, {std}"
        )

    def on_mask(j: int) -> Variant:
        return lambda m, x, c: (m + std * keyed_noise(m, c, seed, j)) * x

    def on_input(j: int) -> Variant:
        return lambda m, x, c: m * (x + std * keyed_noise(x, c, seed, j))

    def variants() -> list[Variant]:
        return [(on_mask if noise == "mask" else on_input)(j) for j in range(num_samples)]

    formula = _score_formula(variants, weights, forward_batch)
    return run_cam(
        model, inputs, target, layer, formula, method="sscam", gradients=False, **options
    )


@explanation_method("iscam")
def iscam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    forward_batch: ForwardBatch = "auto",
    num_samples: int = 10,
    weights: Weights = "softmax",
    **options: Unpack[CamOptions],
) -> Explanation:
    """IS-CAM (Naidu et al., 2020): Score-CAM integrated along the path from 0 to the mask.

    ``w_k = softmax_k(1/n sum_{i=1..n} S((i/n) M_k * x))``, a Riemann sum of the score
    along the straight path from the black image to the masked input (the integrated
    gradients idea the paper borrows). TorchCAM's ``ISCAM`` scales the i-th mask by the
    cumulative sum ``sum_{j<=i} j/n`` instead (up to ``(n+1)/2`` times the mask).
    Costs ``num_samples`` times Score-CAM.

    Args:
        num_samples: integration steps ``n``.
        weights: as :func:`scorecam`.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> iscam(net, x, target=3, layer="1", num_samples=2).shape
        torch.Size([2, 16, 16])
    """
    _check_options(forward_batch, num_samples, weights)

    def scaled(f: float) -> Variant:
        return lambda m, x, _c: (f * m) * x

    def variants() -> list[Variant]:
        return [scaled((i + 1) / num_samples) for i in range(num_samples)]

    formula = _score_formula(variants, weights, forward_batch)
    return run_cam(
        model, inputs, target, layer, formula, method="iscam", gradients=False, **options
    )
