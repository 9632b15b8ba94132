"""What to explain: turn a ``target=`` argument into one score per sample (or K per sample).

A target is one of:

- ``None``: the predicted class (argmax of the output) of each sample;
- an ``int``: that class for every sample;
- a sequence or 1-D tensor of N ints: one class per sample (its length must be N);
- a 2-D (N, K) sequence or tensor of ints: K classes per sample;
- a callable ``output -> scores`` returning (N,) or (N, K) scores, for outputs that are not
  (N, classes) logits: :func:`segmentation_target` (a class's logits summed over a mask)
  and :func:`detection_target` (the class score of the predicted box matching a given one)
  are ready-made ones;
- :func:`~modelaudit.outputs.from_output` ``(select, target)``: ``target`` scored on one part
  of an output that is not a tensor.

Class targets are scored on the model output's logits: the output itself, or its ``logits``
found automatically in a dict, dataclass or one-tensor tuple (:mod:`modelaudit.outputs`).

Everything in the package that scores targets (the explainers, the faithfulness metrics,
the hook checks) goes through :func:`score_targets`.

Example:
    >>> import torch
    >>> from modelaudit.targets import target_scores
    >>> logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    >>> target_scores(logits, None)
    tensor([2., 3.])
    >>> target_scores(logits, [2, 2])
    tensor([1., 1.])
    >>> target_scores(logits, [[0, 1], [1, 2]])
    tensor([[0., 2.],
            [0., 1.]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import torch

from modelaudit.errors import InvalidInputError
from modelaudit.outputs import FromOutput, OutputSelector, select_output

__all__ = [
    "Target",
    "TargetScorer",
    "detection_target",
    "reject_bool_targets",
    "resolve_class_targets",
    "score_targets",
    "segmentation_target",
    "target_scores",
]

Target: TypeAlias = (
    int
    | Sequence[int]
    | Sequence[Sequence[int]]
    | torch.Tensor
    | Callable[[Any], torch.Tensor]
    | FromOutput
    | None
)


def _holds_bool(target: Any) -> bool:
    if isinstance(target, bool) or type(target).__name__ == "bool_":  # numpy.bool_ too
        return True
    if isinstance(target, torch.Tensor):
        return target.dtype == torch.bool
    if isinstance(target, list | tuple):
        return any(_holds_bool(t) for t in target)
    return False


def reject_bool_targets(target: Any) -> None:
    """Raise if ``target`` is or holds a bool: ``True`` would silently mean class 1.

    Raises:
        InvalidInputError: a bool (or bool tensor) as the target or inside a target list.

    Example:
        >>> reject_bool_targets([False, 0])
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: target [False, 0] holds a bool; ...
    """
    if _holds_bool(target):
        raise InvalidInputError(
            f"target {target!r} holds a bool; class targets are ints (True/False would "
            "silently mean class 1/0). Pass class indices, e.g. [0, 1], or int(flag)."
        )


def resolve_class_targets(
    output: torch.Tensor, target: Target, *, first_sample: int = 0
) -> torch.Tensor:
    """Return class indices as a long tensor of shape (N,) or (N, K) on ``output``'s device.

    ``first_sample`` is the batch position of ``output``'s first row (for messages only,
    when a batch is processed in parts).

    Raises:
        InvalidInputError: the output is not (N, classes), the target has the wrong length
            or shape, or a class index is out of range (the message names the sample).
    """
    if callable(target):
        raise TypeError("a callable target gives scores, not class indices; use target_scores")
    if output.dim() != 2:
        raise InvalidInputError(
            f"class targets need a model output of shape (N, classes); got {tuple(output.shape)}. "
            "Pass target=callable(output) -> (N,) scores for other outputs."
        )
    n, classes = output.shape
    if target is None:
        return output.detach().argmax(dim=1)
    reject_bool_targets(target)
    if isinstance(target, int):
        idx = torch.full((n,), target, dtype=torch.long, device=output.device)
    else:
        try:
            idx = torch.as_tensor(target, device=output.device)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"target must be an int, N ints or (N, K) ints; got {target!r}"
            ) from exc
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise InvalidInputError(
                f"target must hold integer class indices; got dtype {idx.dtype}"
            )
        idx = idx.long()
        if idx.dim() == 0:
            idx = idx.expand(n).clone()
        if idx.dim() not in (1, 2) or idx.shape[0] != n:
            raise InvalidInputError(
                f"target has shape {tuple(idx.shape)} but the batch has {n} samples; "
                f"give one class per sample ({n},) or K per sample ({n}, K)."
            )
    bad = (idx < 0) | (idx >= classes)
    if bad.any():
        where = bad.nonzero()[0].tolist()
        raise InvalidInputError(
            f"target class {idx[tuple(where)].item()} for sample {where[0] + first_sample} is "
            f"out of range: the model has {classes} classes (valid: 0..{classes - 1})."
        )
    return idx


class TargetScorer:
    """The explained targets, fixed on a first output, and their scores on later outputs.

    Made by :func:`score_targets`. Class targets are resolved once: ``target=None`` means
    the class predicted on the *first* output, also when later outputs are those of masked,
    noisy or perturbed inputs. A callable target is called on outputs of exactly N rows,
    ordered like the batch.

    Attributes:
        n: the batch size.
        single: one target per sample (scores (N,)) rather than K (scores (N, K)).
        k: targets per sample.
        indices: (N, K) class indices on the first output's device; None for a callable.
        softmax: class targets are scored by their softmax probability, not the raw output.
        select_key: the part of the output scored (:func:`~modelaudit.outputs.from_output`);
            None: automatic for class targets, the whole output for a callable.
    """

    def __init__(
        self,
        n: int,
        *,
        single: bool,
        indices: torch.Tensor | None = None,
        fn: Callable[[Any], torch.Tensor] | None = None,
        k: int = 1,
        softmax: bool = False,
        select: OutputSelector | None = None,
    ) -> None:
        self.n, self.single, self.indices, self.softmax = n, single, indices, softmax
        self.select_key = select
        self._fn = fn
        self.k = indices.shape[1] if indices is not None else k

    @property
    def is_callable(self) -> bool:
        """Whether the target is a callable on the model output."""
        return self._fn is not None

    def fixed_target(self) -> Target:
        """The target as resolved: passing it on explains the same classes again."""
        if self._fn is not None:
            fixed: Target = self._fn
        else:
            assert self.indices is not None
            fixed = self.indices[:, 0] if self.single else self.indices
        return fixed if self.select_key is None else FromOutput(self.select_key, fixed)

    def select(self, output: Any) -> Any:
        """The part of a model ``output`` this scorer scores (idempotent).

        Class targets: the logits (:func:`~modelaudit.outputs.select_output`); a callable
        target: the part chosen by ``from_output``, else the output as it is.
        """
        if self._fn is not None and self.select_key is None:
            return output
        return select_output(output, self.select_key)

    def class_indices(self, method: str) -> torch.Tensor:
        """(N, K) class indices; a callable target is an error for ``method``."""
        if self.indices is None:
            raise InvalidInputError(
                f"{method} needs class indices as target; a callable target is not supported."
            )
        return self.indices

    def classes(self) -> torch.Tensor | None:
        """The class indices as given back to users: (N,) or (N, K) long on the CPU."""
        if self.indices is None:
            return None
        return (self.indices[:, 0] if self.single else self.indices).cpu()

    def probabilities(self) -> TargetScorer:
        """The same class targets, scored by their softmax probability."""
        self.class_indices("scoring by probability")
        return TargetScorer(
            self.n, single=self.single, indices=self.indices, softmax=True, select=self.select_key
        )

    def rows(self, output: Any, samples: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K) scores of ``output``, whose row ``i`` is a variant of sample ``samples[i]``.

        ``samples=None`` means the rows are the batch itself. For a callable target the rows
        must be whole groups ``0..N-1`` in order (one call per group).
        """
        output = self.select(output)
        if self._fn is None:
            assert self.indices is not None
            idx = self.indices.to(output.device)
            if samples is not None:
                idx = idx[samples.to(output.device)]
            return (output.softmax(dim=1) if self.softmax else output).gather(1, idx)
        groups = 1 if samples is None else samples.numel() // self.n
        if samples is not None and (
            samples.numel() % self.n
            or not torch.equal(samples.cpu(), torch.arange(self.n).repeat(groups))
        ):
            raise AssertionError("callable targets need whole groups of N rows")  # internal
        parts = []
        for g in range(groups):
            s = _called(self._fn, output[g * self.n : (g + 1) * self.n], self.n)
            parts.append(s[:, None] if s.dim() == 1 else s)
        return parts[0] if groups == 1 else torch.cat(parts)


def _called(fn: Callable[[Any], torch.Tensor], output: Any, n: int | None) -> torch.Tensor:
    """``fn(output)``, checked to be (N,) or (N, K) scores."""
    scores = fn(output)
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (1, 2):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
        raise InvalidInputError(f"a callable target must return (N,) or (N, K) scores; got {got}")
    if n is not None and scores.shape[0] != n:
        raise InvalidInputError(
            f"a callable target returned {scores.shape[0]} scores for a batch of {n}"
        )
    return scores


def score_targets(
    output: Any,
    target: Target,
    n: int | None = None,
    *,
    first_sample: int = 0,
    softmax: bool = False,
) -> tuple[TargetScorer, torch.Tensor]:
    """Fix ``target`` on a first ``output`` and score it: the scorer and (N, K) scores.

    The one way the package scores targets: explainers, faithfulness metrics and
    :func:`target_scores` all go through it. Scores stay differentiable with respect to
    ``output``; the scorer scores later outputs (:meth:`TargetScorer.rows`) for the same
    classes.

    Args:
        output: the model output for the batch: (N, classes) for class targets, anything
            the callable accepts otherwise.
        target: see the module docstring.
        n: the batch size (default: ``output``'s first dimension).
        first_sample: batch position of ``output``'s first row (for messages only).
        softmax: score class targets by their softmax probability (callables: as they are).

    Raises:
        InvalidInputError: as :func:`resolve_class_targets`; a callable returning anything
            but (N,) or (N, K) scores; class targets for an output without logits (the
            message lists its parts, :func:`~modelaudit.outputs.select_output`).

    Example:
        >>> import torch
        >>> scorer, scores = score_targets(torch.tensor([[0.0, 3.0], [5.0, 1.0]]), None)
        >>> scores.T, scorer.classes()
        (tensor([[3., 5.]]), tensor([1, 0]))
        >>> later = torch.tensor([[9.0, 0.0], [0.0, 9.0]])  # the same classes are scored
        >>> scorer.rows(later).T
        tensor([[0., 0.]])
    """
    select = None
    if isinstance(target, FromOutput):
        select, target = target.select, target.target
        output = select_output(output, select)
    if callable(target):
        if n is None and isinstance(output, torch.Tensor):
            n = output.shape[0]
        scores = _called(target, output, n)
        single = scores.dim() == 1
        k = 1 if single else scores.shape[1]
        scorer = TargetScorer(
            scores.shape[0], single=single, fn=target, k=k, softmax=softmax, select=select
        )
        return scorer, scores[:, None] if single else scores
    logits = select_output(output)
    idx = resolve_class_targets(logits.detach(), target, first_sample=first_sample)
    single = idx.dim() == 1
    indices = idx[:, None] if single else idx
    scorer = TargetScorer(
        logits.shape[0], single=single, indices=indices, softmax=softmax, select=select
    )
    return scorer, scorer.rows(logits)


def target_scores(output: Any, target: Target) -> torch.Tensor:
    """The score(s) to explain: (N,) for one target per sample, (N, K) for K targets.

    Gradients flow from the result to ``output`` (:func:`score_targets`, flattened).

    Example:
        >>> import torch
        >>> target_scores(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), lambda out: out.sum(1))
        tensor([2., 4.])
    """
    scorer, scores = score_targets(output, target)
    return scores[:, 0] if scorer.single else scores


def _per_image_labels(label: int | Sequence[int] | torch.Tensor, n: int, what: str) -> list[int]:
    """``label`` as N ints (one int: the same for every image)."""
    reject_bool_targets(label)
    t = torch.as_tensor(label)
    if t.is_floating_point() or t.dim() > 1 or (t.dim() == 1 and t.shape[0] != n):
        raise InvalidInputError(
            f"{what}: label must be one int or {n} ints (one per image); got {label!r}"
        )
    return [int(v) for v in t.expand(n).tolist()]


def segmentation_target(
    masks: torch.Tensor, label: int | Sequence[int] | torch.Tensor
) -> Callable[[Any], torch.Tensor]:
    """A target: the sum of class ``label``'s logits over each image's mask pixels.

    For semantic segmentation models returning (N, classes, H, W) logits, or a dict with
    them under ``"out"`` (torchvision's ``fcn_*``, ``deeplabv3_*``, ``lraspp_*``) or
    ``"logits"``. Like pytorch-grad-cam's ``SemanticSegmentationTarget``, per image of the
    batch. The masks must have the logits' height and width (torchvision models upsample
    their logits to the input size).

    Args:
        masks: (N, H, W) bool (or 0/1) masks, one per image.
        label: the class, one int or N ints.

    Raises:
        InvalidInputError: masks not (N, H, W), a label of the wrong length, or (when
            scored) logits of another size or batch, or a class out of range.

    Example:
        >>> import torch
        >>> logits = torch.arange(8.0).reshape(1, 2, 2, 2)  # class 1: [[4, 5], [6, 7]]
        >>> mask = torch.tensor([[[True, False], [False, True]]])
        >>> segmentation_target(mask, 1)({"out": logits})
        tensor([11.])
    """
    masks = torch.as_tensor(masks)
    if masks.dim() != 3:
        raise InvalidInputError(
            f"segmentation_target: masks must be (N, H, W); got shape {tuple(masks.shape)}"
        )
    labels = _per_image_labels(label, masks.shape[0], "segmentation_target")

    def score(output: Any) -> torch.Tensor:
        logits = select_output(output)
        n, (h, w) = masks.shape[0], masks.shape[1:]
        if logits.dim() != 4 or logits.shape[0] != n or tuple(logits.shape[-2:]) != (h, w):
            raise InvalidInputError(
                f"segmentation_target: the logits have shape {tuple(logits.shape)}; the "
                f"{n} masks need (N={n}, classes, {h}, {w})"
            )
        if max(labels) >= logits.shape[1] or min(labels) < 0:
            raise InvalidInputError(
                f"segmentation_target: label(s) {labels} out of range for {logits.shape[1]} classes"
            )
        idx = torch.tensor(labels, device=logits.device)
        chosen = logits[torch.arange(n, device=logits.device), idx]  # (N, H, W)
        return (chosen * masks.to(device=logits.device, dtype=logits.dtype)).sum(dim=(1, 2))

    return score


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of one XYXY box ``a`` (4,) with boxes ``b`` (M, 4): (M,)."""
    lt = torch.maximum(a[:2], b[:, :2])
    rb = torch.minimum(a[2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area = (a[2:] - a[:2]).clamp(min=0).prod()
    areas = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area + areas - inter).clamp(min=1e-12)


def detection_target(
    boxes: torch.Tensor | Sequence[Sequence[float]],
    label: int | Sequence[int] | torch.Tensor,
    *,
    iou_threshold: float = 0.5,
) -> Callable[[Any], torch.Tensor]:
    """A target: per image, the score of the detection of ``label`` that best matches a box.

    For detection models whose output is a list of per-image dicts with ``"boxes"`` (XYXY,
    input pixels), ``"labels"`` and ``"scores"`` (torchvision's ``fasterrcnn_*``,
    ``retinanet_*``, ``ssd*``, ``fcos_*`` in eval mode). Among image ``i``'s detections
    labelled ``label[i]``, the one with the highest IoU with ``boxes[i]`` is taken; its
    class score is the target (pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` adds the
    IoU to it and scores 0 without a match; here the score is the class score alone, and a
    missing match is an error, not a silent zero map).

    What works: the gradient methods (``gradcam``, ``hirescam``, ...) on a layer with one
    map per image: the backbone (``backbone.body.<i>``) or FPN (``backbone.fpn.*``); the
    default layer is one of them. The maps are of the image the model's transform made (a
    resize, and padding to a multiple of 32): upsampled to the input they align with it
    when the transform only resizes (inputs whose sides keep the same ratio and need no
    padding). What does not: class targets (the output is a list of dicts: a clear error),
    layers of the RoI heads (one row per proposal, not per image: a clear error), and the
    gradient-free methods (each masked forward may detect other boxes; the target then
    fails for the image that lost its match).

    Args:
        boxes: (N, 4) XYXY boxes, one per image (in the model's input pixels).
        label: the detection's class, one int or N ints.
        iou_threshold: the least IoU a detection must have with the box.

    Raises:
        InvalidInputError: boxes not (N, 4), a bad label or threshold, or (when scored) an
            output that is not N detection dicts, or an image with no detection of its
            label overlapping its box by ``iou_threshold`` (the message names the image and
            the best IoU found).

    Example:
        >>> import torch
        >>> dets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
        ...          "labels": torch.tensor([1, 1]), "scores": torch.tensor([0.9, 0.6])}]
        >>> detection_target(torch.tensor([[21.0, 21, 30, 30]]), 1)(dets)
        tensor([0.6000])
    """
    ref = torch.as_tensor(boxes, dtype=torch.float32)
    if ref.dim() != 2 or ref.shape[1] != 4:
        raise InvalidInputError(
            f"detection_target: boxes must be (N, 4) XYXY, one per image; got shape "
            f"{tuple(ref.shape)}"
        )
    if not 0.0 <= iou_threshold <= 1.0:
        raise InvalidInputError(f"iou_threshold must be in [0, 1]; got {iou_threshold!r}")
    labels = _per_image_labels(label, ref.shape[0], "detection_target")

    def score(output: Any) -> torch.Tensor:
        n = ref.shape[0]
        if not isinstance(output, list | tuple) or len(output) != n:
            raise InvalidInputError(
                f"detection_target: the model output must be a list of {n} per-image dicts "
                f"with 'boxes', 'labels' and 'scores' (a detection model in eval mode); got "
                f"{type(output).__name__}"
                + (f" of {len(output)}" if isinstance(output, list | tuple) else "")
            )
        return torch.stack(
            [_match(output[i], ref[i], labels[i], iou_threshold, i) for i in range(n)]
        )

    return score


def _match(det: Any, box: torch.Tensor, label: int, threshold: float, i: int) -> torch.Tensor:
    """The score of the detection of ``label`` in ``det`` that best overlaps ``box``."""
    if not isinstance(det, dict) or not {"boxes", "labels", "scores"} <= set(det):
        raise InvalidInputError(
            f"detection_target: image {i}'s output is not a dict with 'boxes', 'labels' and "
            f"'scores'; got {type(det).__name__}"
        )
    pred = det["boxes"].detach().float()
    same = det["labels"].to(pred.device) == label
    ious = torch.where(same, _box_iou(box.to(pred.device), pred), -1.0)
    best = int(ious.argmax()) if ious.numel() else -1
    if best < 0 or float(ious[best]) < threshold:
        found = f"{float(ious[best]):.2f}" if best >= 0 and float(ious[best]) >= 0 else "none"
        raise InvalidInputError(
            f"detection_target: image {i} has no detection of label {label} with IoU >= "
            f"{threshold} with the box {box.tolist()} (best IoU of that label: {found}, "
            f"among {pred.shape[0]} detections). Lower iou_threshold, or the model's score "
            "threshold (e.g. box_score_thresh=0.0 for Faster R-CNN)."
        )
    return det["scores"][best]
