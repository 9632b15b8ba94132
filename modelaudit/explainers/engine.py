"""The lean forward/backward every explanation method runs on.

The rules (DESIGN section 3):

- the trunk below the (earliest) target layer runs under ``torch.no_grad()``: no graph;
- a forward hook on the target layer switches grad on and hands the rest of the model a
  ``clone()`` of a detached leaf that requires grad, so an in-place op after the layer
  (``ReLU(inplace=True)``) neither fails nor changes what was recorded;
- gradients come from ``torch.autograd.grad`` to that leaf only: no parameter ``.grad`` is
  touched, parameters do not even require grad during the call;
- K targets per sample are differentiated in one batched backward (``is_grads_batched``);
- the batch may go through in passes of ``pass_size`` samples (:func:`run_in_passes`), so
  that the autograd graph never holds more than a measured budget of samples;
- the model runs in eval mode and comes back exactly as it was; every hook is removed in a
  ``finally``; results are detached, so no graph outlives the call;
- every explained layer must reach the target score (a side branch or an unused output is a
  :class:`~modelaudit.errors.HookError` for every method): the gradient methods see it in
  their graph; the gradient-free ones record the same graph above the layer without saving
  any tensor (no extra forward pass, no graph memory).

Targets are resolved and scored by :func:`modelaudit.targets.score_targets`. The engine
works inside ``torch.no_grad()`` (it enables grad only where it needs it) and inside
``torch.inference_mode()`` (it steps out of inference mode for the call; inputs that are
inference tensors are read, never modified).

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.engine import capture_layers, explaining
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
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from modelaudit.errors import HookError, InvalidInputError, ModelAuditError
from modelaudit.explainers.batching import Batches
from modelaudit.explainers.reshape import infer_layout, model_prefix_tokens
from modelaudit.hooks.state import preserved_state
from modelaudit.outputs import FromOutput
from modelaudit.targets import Target, TargetScorer, reject_bool_targets, score_targets

__all__ = [
    "DEFAULT_PASS_SIZE",
    "GRAPH_BUDGET_BYTES",
    "PROBE_SAMPLES",
    "GraphBytes",
    "LayerCapture",
    "PassSize",
    "Reshape",
    "capture_layers",
    "check_inputs",
    "check_layers",
    "check_model",
    "clear_model_errors",
    "explaining",
    "gradients_of",
    "run_in_passes",
]

Reshape = Callable[[torch.Tensor], torch.Tensor]

#: Default ``pass_size`` of the gradient methods: run :data:`PROBE_SAMPLES` samples
#: first, measure the bytes their autograd graph saves, then take as many samples per pass
#: as keep the graph under :data:`GRAPH_BUDGET_BYTES`. Deep in a network the graph is small
#: and the rest of the batch goes in one more pass; early layers of big inputs get small
#: passes. Measured on resnet50, batch 8 of 224x224, one CPU thread (bench/): at
#: ``layer2`` the extra peak memory over a no-grad forward's process is +12.5% in one pass,
#: ~+2% in passes of 3, ~+6% in passes of 4; passes of 3 or 4 took no longer than one pass
#: (within the machine's noise), passes of 2 up to ~7% longer.
DEFAULT_PASS_SIZE: Literal["auto"] = "auto"

#: What the autograd graph of one pass may save under ``pass_size="auto"`` (resnet50's
#: ``layer2`` saves ~22 MB per 224x224 sample: passes of 3).
GRAPH_BUDGET_BYTES = 80 * 2**20

#: Samples in the first, measured pass of ``pass_size="auto"``.
PROBE_SAMPLES = 3

#: Samples per forward and backward pass: a positive int, ``"auto"`` or ``None`` (all).
PassSize = int | Literal["auto"] | None


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


def _floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter (else buffer); None if it has none."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def _first_conv_channels(model: nn.Module) -> int | None:
    """``in_channels`` of the model's first Conv2d (in module order), if it has one."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def check_model(model: Any, inputs: torch.Tensor) -> torch.Tensor:
    """Check that ``model`` can be explained, and return ``inputs`` in its floating dtype.

    Inputs of another floating dtype than the model's (float32 images for a half model,
    float64 for a float32 one) are cast to the dtype of its first floating parameter;
    inputs of the right dtype are returned as they are.

    Raises:
        InvalidInputError: a TorchScript model (hooks are not supported on it), an object
            that is not an ``nn.Module``, or a model whose parameters or buffers are
            inference tensors (built or loaded under ``torch.inference_mode()``).

    Example:
        >>> import torch, torch.nn as nn
        >>> check_model(nn.Conv2d(3, 1, 1).double(), torch.zeros(1, 3, 2, 2)).dtype
        torch.float64
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidInputError(
            f"the model is a TorchScript module ({type(model).__name__}); torch does not "
            "support forward hooks on it, so it cannot be explained. Pass the eager "
            "nn.Module (the model before torch.jit.script / torch.jit.trace)."
        )
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"the model must be a torch.nn.Module; got {type(model).__name__}")
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    frozen = [name for name, t in named if t.is_inference()]
    if frozen:
        shown = ", ".join(frozen[:3]) + (", ..." if len(frozen) > 3 else "")
        raise InvalidInputError(
            f"the model's tensors ({shown}) are inference tensors: the model was built or "
            "loaded under torch.inference_mode(), and autograd and hooks cannot use them "
            "outside it. Build or load the model under torch.no_grad() instead (calling the "
            "explainer inside inference_mode is fine)."
        )
    dtype = _floating_dtype(model)
    if dtype is not None and inputs.dtype != dtype:
        inputs = inputs.to(dtype)
    return inputs


def check_layers(layers: Mapping[str, nn.Module]) -> None:
    """Reject layers that cannot take a forward hook (TorchScript submodules).

    Raises:
        InvalidInputError: a layer is a TorchScript module.
    """
    scripted = [name for name, m in layers.items() if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise InvalidInputError(
            f"layer(s) {scripted} are TorchScript modules; torch does not support forward "
            "hooks on them. Use the eager nn.Module there (before torch.jit.script)."
        )


_CHANNELS = re.compile(r"to have (\d+) channels, but got (\d+) channels")


@contextlib.contextmanager
def clear_model_errors(model: nn.Module, inputs: torch.Tensor) -> Iterator[None]:
    """Turn the model's error on inputs with the wrong channel count into a clear one.

    Applies to torch's convolution error ("expected input ... to have 3 channels, but got
    1") for a convolution fed as many channels as the inputs have, when the model's first
    Conv2d (or, without one, that convolution) expects another count; any other error
    goes through unchanged.

    Raises:
        InvalidInputError: the model failed and the inputs' channels are not the expected.
    """
    try:
        yield
    except RuntimeError as exc:
        if isinstance(exc, ModelAuditError):
            raise
        given = inputs.shape[1]
        found = _CHANNELS.search(str(exc))
        if found is None or int(found[2]) != given:  # not a conv fed the input's channels
            raise
        expected = _first_conv_channels(model)
        if expected is None:
            expected = int(found[1])
        if expected == given:  # the inputs suit the first convolution: a deeper problem
            raise
        raise InvalidInputError(
            f"the model expects {expected} input channels but the inputs have {given} "
            f"(shape {tuple(inputs.shape)}). Convert the images first, e.g. "
            "x.expand(-1, 3, -1, -1) for grayscale into an RGB model, x[:, :3] to drop an "
            "alpha channel."
        ) from exc


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


@dataclasses.dataclass
class LayerCapture:
    """What one pass recorded, all detached.

    Attributes:
        names: the target layers' qualified names, in the order given.
        activations: per layer, (N, C, h, w) after ``reshape`` (without one: channels-last
            maps permuted and tokens put on their grid, :func:`_layer_reshape`).
        gradients: per layer, (N, K, C, h, w) d score / d activation after ``reshape``
            (None when gradients were not requested).
        output: the model output of the original inputs (detached): the part the targets
            score (the logits of a dict, dataclass or tuple output; the whole output for a
            callable target; :meth:`~modelaudit.targets.TargetScorer.select`).
        scorer: the resolved targets.
        raw_shapes: per layer, the shape the layer returned (before ``reshape``).
    """

    names: list[str]
    activations: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    output: Any
    scorer: TargetScorer
    raw_shapes: list[torch.Size]


def _layer_reshape(
    model: nn.Module, module: nn.Module, t: torch.Tensor, size: tuple[int, int]
) -> Reshape | None:
    """The reshape a layer output needs without ``reshape=``: none for (N, C, h, w) maps,
    a permute for channels-last ones, the grid for tokens
    (:func:`~modelaudit.explainers.reshape.infer_layout`)."""
    if t.dim() not in (3, 4):
        return None
    layout = infer_layout(t.shape, size, prefix_tokens=model_prefix_tokens(model), module=module)
    return None if layout is None else layout.reshape()


def _apply_reshape(t: torch.Tensor, reshape: Reshape | None, name: str, n: int) -> torch.Tensor:
    """(B, ...) layer tensor -> (B, C, h, w) through ``reshape``, with a clear error."""
    if t.shape[0] != n:
        raise InvalidInputError(
            f"layer {name!r} returns {t.shape[0]} rows for a batch of {n} (shape "
            f"{tuple(t.shape)}): per-box or per-window features, as in a detection head or "
            "a Swin block's window attention. Explain a layer with one map per image (a "
            "backbone layer, a Swin stage)."
        )
    out = reshape(t) if reshape is not None else t
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != t.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if reshape is None and t.dim() == 3:
            hint = (
                " Its tokens form no grid of the input's aspect: pass reshape=vit_reshape with "
                "height=, width=, prefix_tokens= (functools.partial), or your own function."
            )
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
    layers: Mapping[str, nn.Module], grad: bool, nodes: dict[str, Any] | None = None
) -> tuple[dict[str, tuple[torch.Tensor, int]], dict[str, int], list[Callable[..., Any]]]:
    """Forward hooks that record each layer's output (and its version) once.

    With ``grad``, the rest of the model is recorded by autograd from the first layer on;
    ``nodes`` then receives, per layer, the autograd node of the tensor handed on.
    """
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
            handed = recorded.clone()
            if nodes is not None:
                nodes[name] = handed.grad_fn
            return handed

        hooks.append(hook)
    return records, counts, hooks


def run_in_passes(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Mapping[str, nn.Module],
    target: Target,
    use: Callable[[slice, LayerCapture], Sequence[torch.Tensor]],
    *,
    gradients: bool,
    reshape: Reshape | None = None,
    pass_size: PassSize = None,
    first_sample: int = 0,
) -> list[torch.Tensor]:
    """Capture ``layers`` pass by pass and stitch what ``use(part, capture)`` returns.

    Call inside :func:`explaining`. With ``gradients``, each pass takes ``pass_size``
    samples: an int, ``"auto"`` (:data:`PROBE_SAMPLES` first, then as many as keep the
    graph that pass saves under :data:`GRAPH_BUDGET_BYTES`) or ``None`` (all at once).
    The probe is paid once per model, layers and sample shape, dtype and device: its bytes
    per sample are remembered (:mod:`~modelaudit.explainers._probe_cache`, a weak
    reference to the model), and later calls start with passes of the budgeted size.
    Without gradients there is no graph to bound, and a target that cannot be cut per
    sample (a callable, or one malformed for the batch, which the pass then reports) sees
    the whole batch: one pass. The tensors ``use`` returns for a pass are its samples'
    rows of full-size results (:class:`~modelaudit.explainers.batching.Batches`).

    Raises:
        InvalidInputError: ``pass_size`` is not a positive int, "auto" or None (checked
            whenever ``gradients``); and as :func:`capture_layers`.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten())
        >>> sizes = []
        >>> with explaining(net):
        ...     _ = run_in_passes(net, torch.rand(5, 1, 2, 2), {"1": net[1]}, [0, 1, 2, 3, 4],
        ...                       lambda part, cap: sizes.append(part.stop - part.start) or [],
        ...                       gradients=True, pass_size=2)
        >>> sizes
        [2, 2, 1]
    """
    from modelaudit.explainers import _probe_cache  # here: this function alone uses it

    n = inputs.shape[0]
    size = _first_pass_size(pass_size, n) if gradients else n
    cut = _per_sample_target(target, n) if gradients else None
    auto = gradients and pass_size == "auto" and cut is not None
    key = _probe_cache.probe_key(inputs, layers) if auto else None
    known = _probe_cache.get(model, key) if key is not None else None
    if known is not None:  # measured before: no probe, passes of the budgeted size
        size = _first_pass_size(pass_size, n, known)
    batches = Batches(n, n if cut is None else size)
    whole = batches.whole
    for part in batches:
        measure = auto and known is None and part.start == 0 and not whole
        graph = GraphBytes(model) if measure else None
        cap = _capture_once(
            model,
            inputs[part],
            layers,
            target if whole or cut is None else cut(part),
            gradients=gradients,
            reshape=reshape,
            first_sample=first_sample + part.start,
            graph=graph,
        )
        batches.put(part, use(part, cap))
        if graph is not None:  # size the next passes from what the first one saved
            per_sample = max(1, graph.bytes // (part.stop - part.start))
            _probe_cache.put(model, key, per_sample)
            batches.size = _first_pass_size(pass_size, n, per_sample)
    return batches.results()


def _first_pass_size(pass_size: PassSize, n: int, per_sample: int | None = None) -> int:
    """Samples in the first pass; validates ``pass_size``.

    Under "auto", ``per_sample`` is the graph bytes a sample is known to save (measured
    by an earlier pass or call): the pass then takes as many as fit the budget, else
    the :data:`PROBE_SAMPLES` of a measured probe.
    """
    if pass_size is None:
        return n
    if pass_size == "auto":
        if per_sample is None:
            return min(n, PROBE_SAMPLES)
        return min(n, max(1, GRAPH_BUDGET_BYTES // max(1, per_sample)))
    if isinstance(pass_size, bool) or not isinstance(pass_size, int) or pass_size < 1:
        raise InvalidInputError(
            "pass_size must be a positive int (samples per pass), 'auto' or None; got "
            f"{pass_size!r}"
        )
    return min(n, pass_size)


def _per_sample_target(target: Target, n: int) -> Callable[[slice], Target] | None:
    """How to cut ``target`` for a slice of the batch; None if it cannot be cut.

    Targets that are malformed for the batch are not cut: the single pass reports them.
    """
    if isinstance(target, FromOutput):
        inner = _per_sample_target(target.target, n)
        return None if inner is None else lambda part: FromOutput(target.select, inner(part))
    if callable(target):
        return None
    reject_bool_targets(target)  # before a cut makes [False, 0] a tensor of ints
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


def capture_layers(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Mapping[str, nn.Module],
    target: Target,
    *,
    gradients: bool,
    reshape: Reshape | None = None,
    pass_size: PassSize = None,
    first_sample: int = 0,
) -> LayerCapture:
    """A forward through ``model`` recording ``layers`` (and d target / d layer).

    Call inside :func:`explaining`. The trunk below the earliest layer runs without a graph.
    With ``gradients`` and a ``pass_size``, the samples go through in passes
    (:func:`run_in_passes`), a forward and a backward each; the results do not depend on
    it. ``first_sample`` is the batch position of ``inputs[0]`` (for messages).

    Raises:
        HookError: a layer ran twice or never, returned a non-tensor, was modified in place
            through another reference, or the score does not depend on it.
        InvalidInputError: bad target, a layer output that is not (N, C, h, w) after
            reshape, or a ``pass_size`` that is not a positive int, "auto" or None.
    """
    caps: list[LayerCapture] = []  # the first pass's capture
    passes: list[slice] = []

    def use(part: slice, cap: LayerCapture) -> list[torch.Tensor]:
        if not caps:
            caps.append(cap)
        passes.append(part)
        return [*cap.activations, *(cap.gradients or []), cap.output]

    got = run_in_passes(
        model,
        inputs,
        layers,
        target,
        use,
        gradients=gradients,
        reshape=reshape,
        pass_size=pass_size,
        first_sample=first_sample,
    )
    first = caps[0]
    if len(passes) == 1:
        return first
    n, k = inputs.shape[0], len(first.names)
    scorer, _ = score_targets(got[-1], target, n, first_sample=first_sample)
    shapes = [torch.Size((n, *s[1:])) for s in first.raw_shapes]
    return LayerCapture(first.names, got[:k], got[k:-1], got[-1], scorer, shapes)


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


def _discard(_t: torch.Tensor) -> None:
    """Saved-tensor pack hook of the reachability forward: nothing is kept."""
    return None


def _no_backward(_packed: None) -> torch.Tensor:
    raise RuntimeError("the reachability graph keeps no tensors: it cannot be differentiated")


def _unreached(scores: torch.Tensor, nodes: Mapping[str, Any]) -> list[str]:
    """The layers whose handed-on tensor (autograd node) the scores' graph does not contain."""
    wanted = {id(node): name for name, node in nodes.items() if node is not None}
    found: set[str] = set()
    seen: set[int] = set()
    stack = [scores.grad_fn] if scores.requires_grad else []
    while stack and len(found) < len(wanted):
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in wanted:
            found.add(wanted[id(node)])
        stack.extend(f for f, _ in node.next_functions)
    return [name for name in nodes if name not in found]


def _replacing_changes_score(
    model: nn.Module, inputs: torch.Tensor, module: nn.Module, scorer: TargetScorer, scores: Any
) -> bool:
    """Whether replacing ``module``'s output (by zeros, then shifted values) moves the scores.

    The confirmation, for gradient-free methods only, that a layer autograd sees no path
    from really does not matter (a model may use it without gradients, e.g. under
    ``torch.no_grad()`` in its forward); it runs only when the check has found such a layer.
    """
    want = scores.detach()
    for replace in (torch.zeros_like, lambda t: t + t.detach().abs().amax() + 1):

        def hook(_m: nn.Module, _a: Any, out: Any, replace: Any = replace) -> Any:
            return replace(out) if isinstance(out, torch.Tensor) else out

        handle = module.register_forward_hook(hook)
        try:
            with torch.no_grad():
                got = scorer.rows(model(inputs))
        finally:
            handle.remove()
        if got.shape != want.shape or not torch.equal(got, want.to(got.device)):
            return True
    return False


def _unreached_error(names: Sequence[str]) -> HookError:
    return HookError(
        f"layer(s) {list(names)} ran, but the target score does not depend on their output "
        "(a side branch, an output the forward does not use, or one it detaches or computes "
        "under no_grad): no method can attribute the score to them. Explain a layer on the "
        "path from the input to the scored output (modelaudit.layer_names(model) lists them)."
    )


def _check_reached(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Mapping[str, nn.Module],
    counts: Mapping[str, int],
    nodes: dict[str, Any] | None,
    scorer: TargetScorer,
    scores: Any,
    *,
    gradients: bool,
) -> None:
    """Raise :class:`HookError` if a layer did not run or does not reach the target score."""
    missing = [name for name, c in counts.items() if c == 0]
    if missing:
        raise HookError(
            f"layer(s) {missing} did not run during the forward pass; explain a layer on the "
            "path from the input to the output."
        )
    if nodes is not None:
        unreached = _unreached(scores, nodes)
        if not gradients:
            unreached = [
                name
                for name in unreached
                if not _replacing_changes_score(model, inputs, layers[name], scorer, scores)
            ]
        if unreached:
            raise _unreached_error(unreached)


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
    check_reach: bool = True,
) -> LayerCapture:
    """One forward (and backward) of the whole of ``inputs``; ``graph`` counts its graph.

    Every layer must reach the target score. With ``gradients`` the autograd graph from
    the layers on shows it. Without, the part of the model above the first layer still
    runs with autograd recording but no tensor saved (no extra forward, no graph memory);
    a layer with no autograd path is then confirmed by replacing its output, and a model
    whose forward fails under autograd is run again without the check.
    """
    n = inputs.shape[0]
    nodes: dict[str, Any] | None = {} if gradients or check_reach else None
    records, counts, hooks = _layer_hooks(layers, gradients or check_reach, nodes)
    handles = [m.register_forward_hook(h) for m, h in zip(layers.values(), hooks)]
    if graph is not None:
        counting: contextlib.AbstractContextManager[None] = graph.hooks()
    elif not gradients and check_reach:
        counting = torch.autograd.graph.saved_tensors_hooks(_discard, _no_backward)
    else:
        counting = contextlib.nullcontext()
    try:
        with torch.no_grad(), counting:
            output = model(inputs)
            scorer, scores = score_targets(output, target, n, first_sample=first_sample)
    except RuntimeError as exc:
        if gradients or not check_reach or isinstance(exc, ModelAuditError):
            raise
        retry = True  # the forward fails under autograd: run it as before, unchecked
    else:
        retry = False
    finally:
        for handle in handles:
            handle.remove()
    if retry:
        return _capture_once(
            model, inputs, layers, target, gradients=False, reshape=reshape,
            first_sample=first_sample, check_reach=False,
        )  # fmt: skip
    _check_reached(model, inputs, layers, counts, nodes, scorer, scores, gradients=gradients)
    names = list(layers)
    acts = [records[name][0] for name in names]
    grads = gradients_of(scores, acts) if gradients else None  # scores have grad if on
    for name, (t, version) in records.items():
        if t._version != version:
            raise HookError(
                f"the output of layer {name!r} was modified in place after the layer ran "
                "(through another reference); explain a different layer."
            )
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    shapers = [
        reshape if reshape is not None else _layer_reshape(model, layers[nm], a, size)
        for a, nm in zip(acts, names)
    ]
    out_acts = [_apply_reshape(a.detach(), f, nm, n) for a, f, nm in zip(acts, shapers, names)]
    out_grads = None
    if grads is not None:
        out_grads = []
        for g, f, nm in zip(grads, shapers, names):
            flat = _apply_reshape(g.flatten(0, 1), f, nm, n * scorer.k)
            out_grads.append(flat.unflatten(0, (n, scorer.k)))
    scored = scorer.select(output)
    detached = scored.detach() if isinstance(scored, torch.Tensor) else scored
    return LayerCapture(names, out_acts, out_grads, detached, scorer, [a.shape for a in acts])
