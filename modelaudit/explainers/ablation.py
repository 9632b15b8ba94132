"""Ablation-CAM (Desai & Ramaswamy, 2020): how much the score drops without each channel.

``w_k = (S - S_k) / |S|`` where ``S_k`` is the target score with channel ``k`` of the layer
set to ``ablation_value`` (0, as in the paper) everywhere; map ``ReLU(sum_k w_k A_k)``.
The paper and pytorch-grad-cam divide by ``S`` itself, which flips every weight (and so the
map) when the score is negative; dividing by ``|S|`` keeps "removing this channel lowers
the score" positive. Where ``S == 0`` the plain drop ``S - S_k`` is used. pytorch-grad-cam
ablates with a large negative value when the layer has negative values; here the value is
yours to choose.

Efficiency: the ablated copies are made *at the layer*: each sample's trunk runs once per
batch of channels and its activation is expanded into ``forward_batch`` ablated copies (a
skip connection from below the layer broadcasts from batch 1). This is validated on the
first batch (an unablated copy must reproduce the original score); models where it does
not apply (a shape error or a failed assert in that probe, or another score) fall back to
repeating the input. Any other exception of the model (out of memory included) is raised. Channels equal to ``ablation_value``
everywhere are skipped: ablating them changes nothing, their weight is exactly 0.
Everything runs under ``torch.inference_mode``.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.ablation import ablationcam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    >>> ablationcam(net, torch.rand(2, 3, 8, 8), target=[[1, 2], [3, 4]], layer="1").shape
    torch.Size([2, 2, 8, 8])
"""

from __future__ import annotations

import math
from typing import Any, Unpack

import torch
from torch import nn

from modelaudit.errors import InvalidInputError, ModelAuditError
from modelaudit.explainers.base import CamContext, run_cam
from modelaudit.explainers.batching import Batches
from modelaudit.explainers.engine import Reshape
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.gradient_cams import safe_div, weighted_sum
from modelaudit.explainers.options import CamOptions, explanation_method
from modelaudit.hooks.layers import LayerSpec
from modelaudit.targets import Target

__all__ = ["ablationcam"]


def _positions(raw_shape: torch.Size, reshape: Reshape | None) -> torch.Tensor:
    """(C, h*w) flat indices, in one sample's raw layer output, of each reshaped channel."""
    count = math.prod(raw_shape[1:])
    idx = torch.arange(count, dtype=torch.float64).view(1, *raw_shape[1:])
    grid = reshape(idx) if reshape is not None else idx
    return grid[0].flatten(1).round().long()


class _Ablator:
    """Scores with one channel ablated per row, for one layer."""

    def __init__(self, ctx: CamContext, layer_index: int, value: float) -> None:
        self.ctx = ctx
        self.module = list(ctx.layers.values())[layer_index]
        self.pos = _positions(ctx.capture.raw_shapes[layer_index], ctx.reshape)
        self.value = value
        self.expand: bool | None = None  # decided on the first batch

    def _run(self, samples: torch.Tensor, chans: torch.Tensor, expand: bool, check: bool) -> Any:
        t, m = len(samples), len(chans)
        extra = 1 if check else 0

        def hook(_mod: nn.Module, _a: Any, out: torch.Tensor) -> torch.Tensor:
            base = out if not expand else out.repeat(m + extra, *([1] * (out.dim() - 1)))
            rows = base.clone().flatten(1)
            which = chans.repeat_interleave(t).to(rows.device)
            cols = self.pos.to(rows.device)[which]
            rows[extra * t :].scatter_(1, cols, self.value)
            return rows.view_as(base)

        x = self.ctx.inputs[samples.to(self.ctx.inputs.device)]
        if not expand:
            x = x.repeat(m, 1, 1, 1)
        handle = self.module.register_forward_hook(hook)
        try:
            with torch.inference_mode():
                return self.ctx.model(x)
        finally:
            handle.remove()

    def scores(self, samples: torch.Tensor, chans: torch.Tensor) -> torch.Tensor:
        """(len(chans) * len(samples), K) scores; row j*T + t ablates chans[j] of samples[t]."""
        scorer, t = self.ctx.scorer, len(samples)
        rows = samples.repeat(len(chans))
        if self.expand is None:
            self.expand = self._expand_works(samples, chans)
        if self.expand:
            with torch.inference_mode():
                return scorer.rows(self._run(samples, chans, True, False), rows).clone()
        with torch.inference_mode():
            out = self._run(samples, chans, False, False)
            assert out.shape[0] == len(chans) * t
            return scorer.rows(out, rows).clone()

    def _expand_works(self, samples: torch.Tensor, chans: torch.Tensor) -> bool:
        try:
            out = self._run(samples, chans[:1], True, True)
        except (RuntimeError, AssertionError) as exc:
            # what a batch that grows at the layer breaks: shape / size mismatches with
            # tensors from below it, and the model's batch-size asserts. Out of memory,
            # modelaudit's own errors and anything else the model raises go through.
            if isinstance(exc, torch.OutOfMemoryError | ModelAuditError):
                raise
            return False
        if not isinstance(out, torch.Tensor) or out.shape[0] != 2 * len(samples):
            return False
        with torch.inference_mode():
            got = self.ctx.scorer.rows(out[: len(samples)], samples)
        want = self.ctx.scorer.rows(self.ctx.capture.output)[samples.to(got.device)]
        scale = float(want.abs().max().clamp(min=1.0))
        return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale))


def _ablation_weights(ctx: CamContext, i: int, value: float, forward_batch: int) -> torch.Tensor:
    acts = ctx.activations[i]
    n, c = acts.shape[:2]
    scorer = ctx.scorer
    base = scorer.rows(ctx.capture.output).to(acts.dtype)  # (N, K)
    keep = (acts.flatten(2) != value).any(-1)  # (N, C): ablating changes something
    ablated = base[:, :, None].expand(n, scorer.k, c).clone()
    ablator = _Ablator(ctx, i, value)
    if scorer.is_callable:  # whole batches of N rows, channel-major
        chans = keep.any(0).nonzero().flatten().cpu()
        batches = Batches(len(chans), max(1, forward_batch // n), into=[ablated])
        for part in batches:
            s = ablator.scores(torch.arange(n), chans[part]).to(acts.dtype)
            rows = (slice(None), slice(None), chans[part].to(acts.device))
            batches.put(rows, [s.view(part.stop - part.start, n, -1).permute(1, 2, 0)])
    else:
        for s_i in range(n):
            chans = keep[s_i].nonzero().flatten().cpu()
            batches = Batches(len(chans), forward_batch, into=[ablated])
            for part in batches:
                s = ablator.scores(torch.tensor([s_i]), chans[part]).to(acts.dtype)
                batches.put((s_i, slice(None), chans[part].to(acts.device)), [s.T])
    drop = base[:, :, None] - ablated
    denom = base.abs()[:, :, None].expand_as(drop)
    return torch.where(denom == 0, drop, safe_div(drop, denom))


@explanation_method("ablationcam")
def ablationcam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    layer: LayerSpec | None = None,
    *,
    forward_batch: int = 64,
    ablation_value: float = 0.0,
    **options: Unpack[CamOptions],
) -> Explanation:
    """Ablation-CAM; formula, conventions and batching in the module docstring.

    With ``reshape=`` (transformers) a "channel" is a feature of the patch tokens; the
    positions ``reshape`` drops (the class token) are never ablated.

    Args:
        forward_batch: ablated copies per forward.
        ablation_value: the value an ablated channel is set to.

    Example:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ablationcam(net, x, target=3, layer="1").shape
        torch.Size([2, 16, 16])
    """
    if forward_batch < 1 or not math.isfinite(ablation_value):
        raise InvalidInputError(
            "forward_batch must be >= 1 and ablation_value finite; got "
            f"{forward_batch}, {ablation_value}"
        )

    def formula(ctx: CamContext) -> list[torch.Tensor]:
        return [
            weighted_sum(_ablation_weights(ctx, i, ablation_value, forward_batch), a)
            for i, a in enumerate(ctx.activations)
        ]

    return run_cam(
        model, inputs, target, layer, formula, method="ablationcam", gradients=False, **options
    )
