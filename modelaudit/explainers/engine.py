"""The lean forward/backward every explanation method runs on.

The rules (DESIGN section 3):

- the trunk below the (earliest) target layer runs under ``torch.no_grad()``: no graph;
- a forward hook on the target layer switches grad on and hands the rest of the model a
  ``clone()`` of a detached leaf that requires grad, so an in-place op after the layer
  (``ReLU(inplace=True)``) neither fails nor changes what was recorded;
- gradients come from ``torch.autograd.grad`` to that leaf only: no parameter ``.grad`` is
  touched, parameters do not even require grad during the call;
- K targets per sample are differentiated in one batched backward (``is_grads_batched``);
- the batch may go through in parts (:func:`batch_parts`), so that the autograd graph
  never holds more than a measured budget of samples;
- the model runs in eval mode and comes back exactly as it was; every hook is removed in a
  ``finally``; results are detached, so no graph outlives the call.

The engine works inside ``torch.no_grad()`` (it enables grad only where it needs it) and
inside ``torch.inference_mode()`` (it steps out of inference mode for the call; inputs that
are inference tensors are read, never modified).

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.engine import TargetScorer, capture_layers, explaining
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> x = torch.ones(1, 1, 2, 2)
    >>> with explaining(net):
    ...     cap = capture_layers(net, x, {"1": net[1]}, target=0, gradients=True)
    >>> cap.activations[0].shape, cap.gradients[0].shape  # (N, C, h, w), (N, K, C, h, w)
    (torch.Size([1, 2, 2, 2]), torch.Size([1, 1, 2, 2, 2]))
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from modelaudit.errors import HookError, InvalidInputError
from modelaudit.hooks.state import preserved_state
from modelaudit.targets import Target, resolve_class_targets

__all__ = [
    "GRADIENT_BATCH_SIZE",
    "GRAPH_BUDGET_BYTES",
    "PROBE_SAMPLES",
    "BatchParts",
    "BatchSize",
    "GraphBytes",
    "LayerCapture",
    "Reshape",
    "TargetScorer",
    "batch_parts",
    "capture_layers",
    "check_inputs",
    "explaining",
    "gradients_of",
]

Reshape = Callable[[torch.Tensor], torch.Tensor]

#: Default ``batch_size`` of the gradient methods: run :data:`PROBE_SAMPLES` samples
#: first, measure the bytes their autograd graph saves, then take as many samples per pass
#: as keep the graph under :data:`GRAPH_BUDGET_BYTES`. Deep in a network the graph is small
#: and the rest of the batch goes in one more pass; early layers of big inputs get small
#: passes. Measured on resnet50, batch 8 of 224x224, one CPU thread (bench/): at
#: ``layer2`` the extra peak memory over a no-grad forward's process is +12.5% in one pass,
#: ~+2% in passes of 3, ~+6% in passes of 4; passes of 3 or 4 took no longer than one pass
#: (within the machine's noise), passes of 2 up to ~7% longer.
GRADIENT_BATCH_SIZE: Literal["auto"] = "auto"

#: What the autograd graph of one pass may save under ``batch_size="auto"`` (resnet50's
#: ``layer2`` saves ~22 MB per 224x224 sample: passes of 3).
GRAPH_BUDGET_BYTES = 80 * 2**20

#: Samples in the first, measured pass of ``batch_size="auto"``.
PROBE_SAMPLES = 3

BatchSize = int | Literal["auto"] | None


def check_inputs(inputs: Any) -> torch.Tensor:
    """Validate a batch of images: a finite floating tensor of shape (N, C, H, W).

    Raises:
        InvalidInputError: not a tensor, wrong rank, empty, integer dtype or NaN/Inf values
            (the message names the samples).

    Example:
        >>> import torch
        >>> check_inputs(torch.tensor([[[[float("nan")]]]]))
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: inputs contain NaN or Inf in sample(s) [0]; ...
    """
    if not isinstance(inputs, torch.Tensor):
        raise InvalidInputError(f"inputs must be a torch.Tensor (N, C, H, W); got {type(inputs)}")
    if inputs.dim() != 4:
        hint = " Add the batch dimension with x[None]." if inputs.dim() == 3 else ""
        raise InvalidInputError(
            f"inputs must have shape (N, C, H, W); got {tuple(inputs.shape)}.{hint}"
        )
    if inputs.shape[0] == 0 or inputs.numel() == 0:
        raise InvalidInputError(f"inputs are empty: shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise InvalidInputError(
            f"inputs must be floating point; got {inputs.dtype}. Convert with x.float()."
        )
    finite = torch.isfinite(inputs.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise InvalidInputError(
            f"inputs contain NaN or Inf in sample(s) {bad}; explanations of such inputs are "
            "meaningless. Clean the inputs first."
        )
    return inputs


@contextlib.contextmanager
def explaining(model: nn.Module) -> Iterator[None]:
    """Run a block with ``model`` in eval mode and parameters not requiring grad.

    Outside inference mode for the block; the caller's train/eval flags, ``requires_grad``
    flags and ``.grad`` come back afterwards, always (:func:`preserved_state`).

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> with explaining(net):
        ...     net.training, net[0].weight.requires_grad
        (False, False)
        >>> net.training, net[0].weight.requires_grad
        (True, True)
    """
    with torch.inference_mode(False), preserved_state(model, eval_mode=True):
        for p in model.parameters():
            p.requires_grad_(False)
        yield


def _as_leaf(t: torch.Tensor) -> torch.Tensor:
    """A leaf that requires grad and shares ``t``'s values (copied only for inference tensors)."""
    base = t.detach()
    if base.is_inference():
        base = base.clone()
    return base.requires_grad_(True)


class TargetScorer:
    """Scores of the explained targets for the first forward and for any later batch.

    Class targets are fixed on the first output (``target=None`` means the class predicted
    for the *original* input, also when a method later scores masked or noisy inputs).
    A callable target is called on outputs of exactly N rows, ordered like the batch.

    Attributes:
        n: batch size. single: one target per sample (maps (N, H, W)) or K (maps (N, K, H, W)).
        k: number of targets per sample.
    """

    def __init__(self, output: Any, target: Target, n: int, *, first_sample: int = 0) -> None:
        self.n = n
        self._fn: Callable[[Any], torch.Tensor] | None = None
        self._idx: torch.Tensor | None = None
        self._first: torch.Tensor | None = None
        if callable(target):
            self._fn = target
            first = self._call(output)
            self.single = first.dim() == 1
            self.k = 1 if self.single else first.shape[1]
            self._first = first[:, None] if self.single else first  # reused by scores()
        else:
            if not isinstance(output, torch.Tensor):
                raise InvalidInputError(
                    f"the model returned a {type(output).__name__}; class targets need (N, "
                    "classes) logits. Pass target=callable(output) -> (N,) scores."
                )
            idx = resolve_class_targets(output.detach(), target, first_sample=first_sample)
            self.single = idx.dim() == 1
            self._idx = idx[:, None] if self.single else idx
            self.k = self._idx.shape[1]

    @property
    def is_callable(self) -> bool:
        """Whether the target is a callable on the model output."""
        return self._fn is not None

    def fixed_target(self) -> Target:
        """The target as resolved on the first output: later passes explain the same classes."""
        if self._fn is not None:
            return self._fn
        assert self._idx is not None
        return self._idx[:, 0] if self.single else self._idx

    def class_indices(self, method: str) -> torch.Tensor:
        """(N, K) class indices; a callable target is an error for ``method``."""
        if self._idx is None:
            raise InvalidInputError(
                f"{method} needs class indices as target; a callable target is not supported."
            )
        return self._idx

    def _call(self, output: Any) -> torch.Tensor:
        assert self._fn is not None
        scores = self._fn(output)
        if not isinstance(scores, torch.Tensor) or scores.dim() not in (1, 2):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
            raise InvalidInputError(
                f"a callable target must return (N,) or (N, K) scores; got {got}"
            )
        if scores.shape[0] != self.n:
            raise InvalidInputError(
                f"a callable target returned {scores.shape[0]} scores for a batch of {self.n}"
            )
        return scores

    def scores(self, output: Any) -> torch.Tensor:
        """(N, K) scores of ``output`` (differentiable); call first on the first output."""
        if self._first is not None:  # the callable already ran on the first output
            first, self._first = self._first, None
            return first
        return self.rows(output, torch.arange(self.n))

    def rows(self, output: Any, samples: torch.Tensor) -> torch.Tensor:
        """(B, K) scores of a batch whose row ``i`` is a variant of sample ``samples[i]``.

        For a callable target, ``samples`` must be whole groups ``0..N-1`` in order.
        """
        if self._fn is None:
            assert self._idx is not None
            idx = self._idx.to(output.device)[samples.to(output.device)]
            return output.gather(1, idx)
        groups = samples.numel() // self.n
        if samples.numel() % self.n or not torch.equal(
            samples.cpu(), torch.arange(self.n).repeat(groups)
        ):
            raise AssertionError("callable targets need whole groups of N rows")  # internal
        parts = []
        for g in range(groups):
            chunk = output[g * self.n : (g + 1) * self.n]
            s = self._call(chunk)
            parts.append(s[:, None] if s.dim() == 1 else s)
        return torch.cat(parts)


@dataclasses.dataclass
class LayerCapture:
    """What one pass recorded, all detached.

    Attributes:
        names: the target layers' qualified names, in the order given.
        activations: per layer, (N, C, h, w) after ``reshape``.
        gradients: per layer, (N, K, C, h, w) d score / d activation after ``reshape``
            (None when gradients were not requested).
        output: the model output of the original inputs (detached).
        scorer: the resolved targets.
        raw_shapes: per layer, the shape the layer returned (before ``reshape``).
    """

    names: list[str]
    activations: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    output: Any
    scorer: TargetScorer
    raw_shapes: list[torch.Size]


def _apply_reshape(t: torch.Tensor, reshape: Reshape | None, name: str, n: int) -> torch.Tensor:
    """(B, ...) layer tensor -> (B, C, h, w) through ``reshape``, with a clear error."""
    out = reshape(t) if reshape is not None else t
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != t.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if reshape is None and t.dim() == 3:
            hint = " Token outputs need reshape=vit_reshape (or your own tokens -> grid)."
        else:
            hint = " Pass reshape= returning (N, C, h, w)."
        raise InvalidInputError(
            f"layer {name!r} gives a tensor of shape {got}; CAM methods need a (N, C, h, w) "
            f"feature map for the batch of {n}.{hint}"
        )
    return out


def gradients_of(scores: torch.Tensor, wrt: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d scores / d each of ``wrt``: (N, K) scores -> per tensor (N, K, *tensor.shape[1:]).

    Samples are assumed independent (true for a model in eval mode), so one backward of the
    summed scores gives every sample's gradient; K targets share one batched backward.

    Example:
        >>> import torch
        >>> a = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> gradients_of(torch.stack([a.sum(1), (a * a).sum(1)], dim=1), [a])[0]
        tensor([[[1., 1.],
                 [2., 4.]]])
    """
    if not scores.requires_grad:
        raise HookError(
            "the target score does not depend on the hooked layer(s) through autograd (does "
            "the model's forward disable gradients after the layer, or detach?)."
        )
    k = scores.shape[1]
    if k == 1:
        grads = torch.autograd.grad(scores.sum(), list(wrt), allow_unused=True)
        return [
            (torch.zeros_like(w) if g is None else g.detach()).unsqueeze(1)
            for g, w in zip(grads, wrt)
        ]
    eye = torch.eye(k, dtype=scores.dtype, device=scores.device)
    seeds = eye[:, None, :].expand(k, scores.shape[0], k)
    try:
        batched = torch.autograd.grad(
            scores, list(wrt), seeds, is_grads_batched=True, allow_unused=True, retain_graph=True
        )
        out = [
            torch.zeros(k, *w.shape, dtype=w.dtype, device=w.device) if g is None else g.detach()
            for g, w in zip(batched, wrt)
        ]
    except (RuntimeError, NotImplementedError):  # no vmap rule: one backward per target
        per_k = [
            torch.autograd.grad(scores[:, j].sum(), list(wrt), allow_unused=True, retain_graph=True)
            for j in range(k)
        ]
        out = [
            torch.stack([torch.zeros_like(w) if g[i] is None else g[i].detach() for g in per_k])
            for i, w in enumerate(wrt)
        ]
    return [g.movedim(0, 1) for g in out]


def _layer_hooks(
    layers: Mapping[str, nn.Module], grad: bool
) -> tuple[dict[str, tuple[torch.Tensor, int]], dict[str, int], list[Callable[..., Any]]]:
    """Forward hooks that record each layer's output (and its version) once."""
    records: dict[str, tuple[torch.Tensor, int]] = {}
    counts = dict.fromkeys(layers, 0)
    hooks = []
    for name in layers:

        def hook(_m: nn.Module, _a: Any, out: Any, name: str = name) -> torch.Tensor:
            counts[name] += 1
            if counts[name] > 1:
                raise HookError(
                    f"layer {name!r} ran {counts[name]} times in one forward pass (a module "
                    "reused in the model); explain a layer that runs exactly once."
                )
            if not isinstance(out, torch.Tensor):
                raise HookError(
                    f"layer {name!r} returned a {type(out).__name__}, not a tensor; choose a "
                    "layer whose output is one feature tensor."
                )
            if grad and not out.requires_grad:
                torch.set_grad_enabled(True)
                recorded = _as_leaf(out)
            else:  # already in the graph (a later layer), or no gradient wanted
                recorded = out if grad else out.detach()
            records[name] = (recorded, recorded._version)
            return recorded.clone()

        hooks.append(hook)
    return records, counts, hooks


def capture_layers(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Mapping[str, nn.Module],
    target: Target,
    *,
    gradients: bool,
    reshape: Reshape | None = None,
    batch_size: BatchSize = None,
    first_sample: int = 0,
    graph: GraphBytes | None = None,
) -> LayerCapture:
    """A forward through ``model`` recording ``layers`` (and d target / d layer).

    Call inside :func:`explaining`. The trunk below the earliest layer runs without a graph.
    With ``gradients`` and a ``batch_size`` (see :func:`batch_parts`), the samples go
    through in parts, a forward and a backward each, so that the autograd graph holds only
    a part; the results do not depend on it. ``first_sample`` (the batch position of
    ``inputs[0]``, for messages) and ``graph`` (counts what the graph saves) serve callers
    that split the batch themselves.

    Raises:
        HookError: a layer ran twice or never, returned a non-tensor, was modified in place
            through another reference, or the score does not depend on it.
        InvalidInputError: bad target, a layer output that is not (N, C, h, w) after
            reshape, or a ``batch_size`` that is not a positive int, "auto" or None.
    """
    parts = batch_parts(model, inputs.shape[0], target, batch_size if gradients else None)
    if parts.one_pass:
        return _capture_once(
            model,
            inputs,
            layers,
            target,
            gradients=gradients,
            reshape=reshape,
            first_sample=first_sample,
            graph=graph,
        )
    n = inputs.shape[0]
    first: LayerCapture | None = None
    acts: list[torch.Tensor] = []
    grads: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    for part, part_target, part_graph in parts:
        cap = _capture_once(
            model,
            inputs[part],
            layers,
            part_target,
            gradients=True,
            reshape=reshape,
            first_sample=first_sample + part.start,
            graph=part_graph,
        )
        assert cap.gradients is not None and isinstance(cap.output, torch.Tensor)
        if first is None:  # full-size results, filled part by part (no concatenation copy)
            first = cap
            acts = [a.new_empty((n, *a.shape[1:])) for a in cap.activations]
            grads = [g.new_empty((n, *g.shape[1:])) for g in cap.gradients]
        for full, got in zip(acts + grads, cap.activations + cap.gradients):
            full[part] = got
        outputs.append(cap.output)
    assert first is not None
    output = torch.cat(outputs)
    return LayerCapture(
        first.names,
        acts,
        grads,
        output,
        TargetScorer(output, target, n, first_sample=first_sample),
        [torch.Size((n, *s[1:])) for s in first.raw_shapes],
    )


class BatchParts:
    """The parts a batch of ``n`` samples goes through in: ``(slice, target, graph)`` each.

    ``graph`` is a :class:`GraphBytes` for the first part under ``"auto"`` (None otherwise):
    the pass that runs it must count what its graph saves; the following parts are sized
    from that count.
    """

    def __init__(
        self,
        model: nn.Module,
        n: int,
        target: Target,
        batch_size: BatchSize,
        cut: Callable[[slice], Target] | None,
    ) -> None:
        self.model, self.n, self.target, self.cut = model, n, target, cut
        self.auto = batch_size == "auto"
        first = PROBE_SAMPLES if self.auto else batch_size
        self.first = n if cut is None or not isinstance(first, int) else min(n, first)

    @property
    def one_pass(self) -> bool:
        """Whether the whole batch goes in one pass."""
        return self.first >= self.n

    def __iter__(self) -> Iterator[tuple[slice, Target, GraphBytes | None]]:
        if self.one_pass or self.cut is None:
            yield slice(0, self.n), self.target, None
            return
        size, start = self.first, 0
        while start < self.n:
            part = slice(start, min(self.n, start + size))
            graph = GraphBytes(self.model) if self.auto and start == 0 else None
            yield part, self.cut(part), graph
            if graph is not None:  # size the next parts from what the first one saved
                per_sample = max(1, graph.bytes // (part.stop - part.start))
                size = max(1, GRAPH_BUDGET_BYTES // per_sample)
            start = part.stop


def batch_parts(model: nn.Module, n: int, target: Target, batch_size: BatchSize) -> BatchParts:
    """Plan the gradient passes over a batch of ``n``: ``batch_size`` samples per pass,
    ``"auto"`` (:data:`PROBE_SAMPLES` first, then as many as keep the saved graph under
    :data:`GRAPH_BUDGET_BYTES`), or ``None`` (one pass). A target that cannot be cut per
    sample (a callable, or one malformed for the batch, which the pass then reports)
    means one pass.

    Raises:
        InvalidInputError: ``batch_size`` is not a positive int, "auto" or None.

    Example:
        >>> import torch.nn as nn
        >>> [p for p, _, _ in batch_parts(nn.Identity(), 5, [0, 1, 2, 0, 1], 2)]
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
        >>> batch_parts(nn.Identity(), 5, lambda out: out[:, 0], 2).one_pass  # a callable
        True
    """
    if (
        batch_size is not None
        and batch_size != "auto"
        and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1)
    ):
        raise InvalidInputError(
            "batch_size must be a positive int (samples per pass), 'auto' or None; got "
            f"{batch_size!r}"
        )
    return BatchParts(model, n, target, batch_size, _per_sample_target(target, n))


def _per_sample_target(target: Target, n: int) -> Callable[[slice], Target] | None:
    """How to cut ``target`` for a slice of the batch; None if it cannot be cut.

    Targets that are malformed for the batch are not cut: the single pass reports them.
    """
    if callable(target):
        return None
    if target is None or isinstance(target, int):
        return lambda _part: target
    try:
        idx = torch.as_tensor(target)
    except (TypeError, ValueError):
        return None
    if idx.dim() == 0:  # one class for every sample
        return lambda _part: target
    if idx.dim() not in (1, 2) or idx.shape[0] != n:
        return None
    return lambda part: idx[part]


class GraphBytes:
    """Counts the bytes an autograd graph saves (distinct storages, parameters excluded)."""

    def __init__(self, model: nn.Module) -> None:
        self._skip = {t.untyped_storage().data_ptr() for t in model.parameters()}
        self._skip |= {t.untyped_storage().data_ptr() for t in model.buffers()}
        self._seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # no plain storage (sparse, nested...)
            self.bytes += t.numel() * t.element_size()
            return t
        ptr = storage.data_ptr()
        if ptr not in self._skip and ptr not in self._seen:
            self._seen.add(ptr)
            self.bytes += storage.nbytes()
        return t

    def hooks(self) -> contextlib.AbstractContextManager[None]:
        """The context in which the counted pass runs."""
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def _capture_once(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Mapping[str, nn.Module],
    target: Target,
    *,
    gradients: bool,
    reshape: Reshape | None,
    first_sample: int = 0,
    graph: GraphBytes | None = None,
) -> LayerCapture:
    """One forward (and backward) of the whole of ``inputs``; ``graph`` counts its graph."""
    n = inputs.shape[0]
    records, counts, hooks = _layer_hooks(layers, gradients)
    handles = [m.register_forward_hook(h) for m, h in zip(layers.values(), hooks)]
    counting = graph.hooks() if graph is not None else contextlib.nullcontext()
    try:
        with torch.no_grad(), counting:
            output = model(inputs)
            scorer = TargetScorer(output, target, n, first_sample=first_sample)
            scores: torch.Tensor | None = scorer.scores(output)  # with grad if switched on
    finally:
        for handle in handles:
            handle.remove()
    if not gradients:
        scores = None
    missing = [name for name, c in counts.items() if c == 0]
    if missing:
        raise HookError(
            f"layer(s) {missing} did not run during the forward pass; explain a layer on the "
            "path from the input to the output."
        )
    names = list(layers)
    acts = [records[name][0] for name in names]
    grads: list[torch.Tensor] | None = None
    if scores is not None:
        grads = gradients_of(scores, acts)
    for name, (t, version) in records.items():
        if t._version != version:
            raise HookError(
                f"the output of layer {name!r} was modified in place after the layer ran "
                "(through another reference); explain a different layer."
            )
    out_acts = [_apply_reshape(a.detach(), reshape, nm, n) for a, nm in zip(acts, names)]
    out_grads = None
    if grads is not None:
        out_grads = []
        for g, nm in zip(grads, names):
            flat = _apply_reshape(g.flatten(0, 1), reshape, nm, n * scorer.k)
            out_grads.append(flat.unflatten(0, (n, scorer.k)))
    detached = output.detach() if isinstance(output, torch.Tensor) else output
    return LayerCapture(names, out_acts, out_grads, detached, scorer, [a.shape for a in acts])
