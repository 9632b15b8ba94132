"""Model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps").

If an explanation explains the model, randomising the model's weights must change it. We
randomise layers of a deep copy of the model, from the top (output end) down, explain the
same images after each step and compare each map with the original one.

- ``mode="cascading"``: step k randomises the top k+1 layers (cumulative);
- ``mode="independent"``: step k randomises only layer k, all others keep their weights.

A randomised parameter is redrawn from ``N(0, s^2)``, ``s`` being that tensor's own
standard deviation (1.0 for a constant or one-element tensor, such as a fresh BatchNorm
weight), so activations keep their scale. Buffers (BatchNorm running statistics) are kept.
Draws come from a ``torch.Generator`` seeded with ``seed`` in step order, so both modes use
the same random weights for a layer and the global RNG is untouched.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.measure import randomization_similarity
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 1))
    >>> explain = lambda m, x: m(x)[:, 0].relu()        # the output is the map
    >>> res = randomization_similarity(net, torch.rand(2, 1, 6, 6), explain)
    >>> res.steps, tuple(res.similarity.shape)
    (['2', '0'], (2, 2))
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Literal

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.hooks.layers import LayerSpec, resolve_layers
from modelaudit.measure._explainer import Explainer, run_explainer
from modelaudit.measure._validate import check_images
from modelaudit.measure.similarity import Similarity, map_similarity

__all__ = ["RandomizationResult", "randomization_similarity"]


@dataclasses.dataclass
class RandomizationResult:
    """Similarity of each randomisation step's maps to the original maps.

    Attributes:
        mode: ``"cascading"`` or ``"independent"``.
        steps: the layer randomised at each step, top layer first.
        similarity: ``(S, N)`` similarity of step s's map of sample n to its original map.
        original: ``(N, H, W)`` maps of the unmodified model.
        measure: ``"spearman"`` or ``"ssim"``.
        kept: ``(step name, (N, H, W) maps)`` at up to ``keep_maps`` steps spread evenly
            over the plan, the last one included (empty unless asked for), for pictures.
    """

    mode: str
    steps: list[str]
    similarity: torch.Tensor
    original: torch.Tensor
    measure: str
    kept: tuple[tuple[str, torch.Tensor], ...] = ()

    @property
    def mean(self) -> torch.Tensor:
        """``(S,)`` mean similarity over samples at each step."""
        return self.similarity.mean(dim=1)

    @property
    def worst(self) -> torch.Tensor:
        """``(N,)`` highest similarity of each sample over all steps (least change)."""
        return self.similarity.max(dim=0).values


def _layer_params(
    model: nn.Module, layers: LayerSpec | None
) -> list[tuple[str, list[nn.Parameter]]]:
    """(step name, parameters to randomise) in model order."""
    if layers is None:
        out = [
            (name, list(m.parameters(recurse=False)))
            for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))
        ]
        if not out:
            raise InvalidInputError("the model has no parameters to randomise")
        return out
    out = []
    for name, m in resolve_layers(model, layers).items():
        params = list(m.parameters())
        if not params:
            raise InvalidInputError(
                f"layer {name!r} ({type(m).__name__}) has no parameters to randomise; choose "
                "layers with weights, e.g. nn.Conv2d, nn.Linear or a block containing them."
            )
        out.append((name, params))
    return out


def _redraw(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    std = float(p.detach().double().std()) if p.numel() > 1 else 0.0
    scale = std if std > 0 else 1.0
    return (torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale).to(p)


def randomization_similarity(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer,
    *,
    mode: Literal["cascading", "independent"] = "cascading",
    layers: LayerSpec | None = None,
    similarity: Similarity = "spearman",
    seed: int = 0,
    keep_maps: int = 0,
) -> RandomizationResult:
    """Explain ``images`` after each randomisation step; compare with the original maps.

    The caller's model is never modified: everything runs on ``copy.deepcopy(model)``
    (the original maps too), and the explainer receives that copy.

    Args:
        model: the model to test.
        images: ``(N, C, H, W)`` inputs.
        explainer: ``(model, images) -> (N, H, W)`` maps; it must find layers by name.
        mode: ``"cascading"`` (cumulative, from the top) or ``"independent"``.
        layers: which layers to randomise (any layer spec of
            :func:`modelaudit.resolve_layers`; a block randomises all its parameters as one
            step). Default: every module owning parameters.
        similarity: ``"spearman"`` (rank correlation, ties averaged) or ``"ssim"``.
        seed: seed of the random weights.
        keep_maps: keep the maps of this many steps (:attr:`RandomizationResult.kept`).

    Returns:
        a :class:`RandomizationResult`; low similarity means the map depends on the weights.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> fixed = lambda m, x: x[:, 0]                  # ignores the model entirely
        >>> randomization_similarity(net, torch.rand(1, 1, 4, 4), fixed).similarity
        tensor([[1.]])
    """
    if mode not in ("cascading", "independent"):
        raise InvalidInputError(f"mode must be 'cascading' or 'independent'; got {mode!r}")
    if similarity not in ("spearman", "ssim"):
        raise InvalidInputError(f"similarity must be 'spearman' or 'ssim'; got {similarity!r}")
    images = check_images(images)
    _layer_params(model, layers)  # validate against the caller's model (error messages)
    work = copy.deepcopy(model)
    plan = list(reversed(_layer_params(work, layers)))  # top layer first
    original = run_explainer(explainer, work, images)
    gen = torch.Generator().manual_seed(int(seed))
    rows, kept = [], []
    keep = _spread(len(plan), keep_maps)
    for step, (name, params) in enumerate(plan):
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.copy_(_redraw(p, gen))
        maps = run_explainer(explainer, work, images, when=f"after randomising {name!r}")
        if maps.shape != original.shape:
            raise InvalidInputError(
                f"explainer output after randomising {name!r} has shape {tuple(maps.shape)} "
                f"but the original maps have {tuple(original.shape)}"
            )
        rows.append(map_similarity(original, maps, similarity))
        if step in keep:
            kept.append((name, maps.detach()))
        if mode == "independent":
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
    return RandomizationResult(
        mode=mode,
        steps=[name for name, _ in plan],
        similarity=torch.stack(rows),
        original=original,
        measure=similarity,
        kept=tuple(kept),
    )


def _spread(steps: int, count: int) -> set[int]:
    """Up to ``count`` step indices spread evenly over ``steps``, the last one included.

    Example:
        >>> sorted(_spread(10, 3)), sorted(_spread(2, 5)), _spread(4, 0)
        ([2, 6, 9], [0, 1], set())
    """
    if count <= 0 or steps <= 0:
        return set()
    if count >= steps:
        return set(range(steps))
    return {round((k + 1) * steps / count) - 1 for k in range(count)}
