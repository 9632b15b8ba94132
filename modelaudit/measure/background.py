"""Background counterfactuals (Xiao et al., 2020, "Noise or Signal"): what does the model use?

From per-sample object masks (or boxes) each image gets four counterfactual versions:

- **Only-BG**: the object's pixels (the mask's, or the box's when only boxes are given)
  replaced by the fill: can the model still classify from the background alone?
- **Only-FG**: every pixel outside the object replaced by the fill: the object alone.
- **Mixed-Rand**: the object of image ``i`` pasted (its own pixels) onto the Only-BG
  version of image ``partner_rand[i]``, which has a *different* label wherever the label
  counts allow it (a seeded random permutation; without labels, any other image).
- **Mixed-Same**: the same with ``partner_same[i]``, another image of the *same* label
  (a random cycle within each class); an image alone in its class is paired with itself
  (``same_is_self``).

**Fill** (what replaces removed pixels): ``"mean"`` (default), each image's own mean colour
over its background pixels (outside the mask/box), per channel: a flat patch of the scene's
average colour, so the hole brings no colour the scene lacks and Only-FG keeps each image's
overall brightness (Xiao et al. use black, which on bright scenes adds strong edges and a
colour the model may never have seen). ``"black"`` (zeros), or a constant: a float for
every channel or a sequence of one value per channel. In a Mixed image the partner's hole
(where the partner's object was and the pasted object is not) keeps the partner's fill
(Xiao et al. paste onto a background whose hole is tiled from the background instead).

:func:`background_reliance` runs a classifier on the images and the four versions; the
accuracy gap ``mixed_same - mixed_rand`` is Xiao's *BG-gap*: how much a background of the
wrong class costs.

Example:
    >>> import torch
    >>> from modelaudit.measure import background_counterfactuals
    >>> images = torch.arange(8.0).view(2, 1, 2, 2)
    >>> masks = torch.tensor([[[True, False], [False, False]]] * 2)
    >>> cf = background_counterfactuals(images, masks=masks, fill="black")
    >>> cf.only_bg[0, 0]
    tensor([[0., 1.],
            [2., 3.]])
    >>> cf.mixed_rand[0, 0]               # object of image 0 on the background of image 1
    tensor([[0., 5.],
            [6., 7.]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.batching import Batches
from modelaudit.hooks.state import preserved_state
from modelaudit.measure._validate import as_region, check_images

__all__ = [
    "BackgroundFill",
    "BackgroundReliance",
    "Counterfactuals",
    "background_counterfactuals",
    "background_reliance",
]

BackgroundFill: TypeAlias = Literal["mean", "black"] | float | Sequence[float]
"""``"mean"`` (each image's background colour), ``"black"`` or a constant per channel."""

MIX_ROUNDS = 8
"""Random swap proposals per image that shuffle the Mixed-Rand pairing (see ``_mixed``)."""

VARIANTS = ("original", "only_bg", "only_fg", "mixed_rand", "mixed_same")
"""The images :func:`background_reliance` scores, in order."""


@dataclasses.dataclass(frozen=True, eq=False)
class Counterfactuals:
    """The four background counterfactuals of a batch, and how they were made.

    Attributes:
        only_bg: ``(N, C, H, W)`` the object replaced by the fill.
        only_fg: ``(N, C, H, W)`` everything but the object replaced by the fill.
        mixed_rand: ``(N, C, H, W)`` object ``i`` on ``only_bg[partner_rand[i]]``.
        mixed_same: ``(N, C, H, W)`` object ``i`` on ``only_bg[partner_same[i]]``; None
            without labels.
        partner_rand: ``(N,)`` long, whose background each Mixed-Rand image uses (never
            ``i`` itself).
        partner_same: ``(N,)`` long, the same-label partner; None without labels.
        rand_same_label: ``(N,)`` bool, Mixed-Rand pairs that share a label because one
            class holds more than half of the images (all False without labels).
        same_is_self: ``(N,)`` bool, images alone in their class, paired with themselves
            in Mixed-Same (so Mixed-Same equals the original); None without labels.
        masks: ``(N, H, W)`` bool, the object pixels used (the boxes' pixels for boxes).
        fills: ``(N, C)`` the fill colour of each image.
    """

    only_bg: torch.Tensor
    only_fg: torch.Tensor
    mixed_rand: torch.Tensor
    mixed_same: torch.Tensor | None
    partner_rand: torch.Tensor
    partner_same: torch.Tensor | None
    rand_same_label: torch.Tensor
    same_is_self: torch.Tensor | None
    masks: torch.Tensor
    fills: torch.Tensor


@dataclasses.dataclass(frozen=True, eq=False)
class BackgroundReliance:
    """Accuracy of a classifier on the images and on their background counterfactuals.

    Attributes:
        original: accuracy on the images.
        only_bg: accuracy with the object removed (high: the background gives the class).
        only_fg: accuracy with the background neutralised.
        mixed_rand: accuracy with the object on another class's background.
        mixed_same: accuracy with the object on another same-class background.
        bg_gap: ``mixed_same - mixed_rand`` (Xiao's BG-gap; 0 for a model that ignores
            backgrounds).
        chance: share of the most frequent label, what a constant predictor scores.
        correct_original: ``(N,)`` bool, per-sample correctness on the images.
        correct_only_bg: ``(N,)`` bool, likewise on Only-BG.
        correct_only_fg: ``(N,)`` bool, likewise on Only-FG.
        correct_mixed_rand: ``(N,)`` bool, likewise on Mixed-Rand.
        correct_mixed_same: ``(N,)`` bool, likewise on Mixed-Same.
        counterfactuals: the images scored.
    """

    original: float
    only_bg: float
    only_fg: float
    mixed_rand: float
    mixed_same: float
    bg_gap: float
    chance: float
    correct_original: torch.Tensor
    correct_only_bg: torch.Tensor
    correct_only_fg: torch.Tensor
    correct_mixed_rand: torch.Tensor
    correct_mixed_same: torch.Tensor
    counterfactuals: Counterfactuals = dataclasses.field(repr=False)

    def accuracies(self) -> dict[str, float]:
        """The five accuracies by variant name, in :data:`VARIANTS` order."""
        return {name: float(getattr(self, name)) for name in VARIANTS}


# -- inputs -----------------------------------------------------------------------------------

_NO_REGION = (
    "give the objects as masks= (bool (N, H, W)) or boxes= ((N, 4) XYXY, exclusive x2, y2); "
    "neither was given. With the zoo: masks=shapes.masks (or boxes=shapes.boxes)."
)


def _check_masks(masks: Any, n: int, size: tuple[int, int]) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        raise InvalidInputError(
            f"masks must be a bool torch.Tensor of shape (N, H, W); got {type(masks).__name__}"
        )
    if masks.dim() == 2 and masks.shape[-1] == 4 and masks.dtype != torch.bool:
        raise InvalidInputError(
            f"masks has shape {tuple(masks.shape)}, which looks like boxes; pass them as boxes="
        )
    want = (n, *size)
    if tuple(masks.shape) != want:
        hint = " Drop the channel dimension with masks.squeeze(1)." if masks.dim() == 4 else ""
        raise InvalidInputError(
            f"masks must have shape (N, H, W) = {want} to match the images; got "
            f"{tuple(masks.shape)}.{hint}"
        )
    if masks.dtype != torch.bool:
        raise InvalidInputError(
            f"masks must be bool; got dtype {masks.dtype}: pass masks.bool() (or masks > 0.5)."
        )
    return masks.detach()


def _check_boxes(boxes: Any, n: int, size: tuple[int, int]) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        raise InvalidInputError(
            f"boxes must be an (N, 4) torch.Tensor of XYXY pixel boxes; got {type(boxes).__name__}"
        )
    if boxes.dtype == torch.bool:
        raise InvalidInputError(
            f"boxes is a bool tensor of shape {tuple(boxes.shape)}: pass object masks as masks="
        )
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.is_complex():
        raise InvalidInputError(
            f"boxes must have shape (N, 4) in XYXY order (x2, y2 exclusive); got "
            f"{tuple(boxes.shape)}"
        )
    if boxes.shape[0] != n:
        raise InvalidInputError(
            f"boxes has {boxes.shape[0]} rows but images has {n} samples; give one box per image."
        )
    return as_region(boxes, size, n).masks


def _object_masks(masks: Any, boxes: Any, n: int, size: tuple[int, int]) -> torch.Tensor:
    """The validated ``(N, H, W)`` object pixels of ``masks`` or ``boxes`` (exactly one)."""
    if masks is None and boxes is None:
        raise InvalidInputError(_NO_REGION)
    if masks is not None and boxes is not None:
        raise InvalidInputError(
            "give either masks= or boxes=, not both: masks are used as they are, boxes cover "
            "their whole rectangle; pass the one that outlines the object best (masks)."
        )
    name = "masks" if masks is not None else "boxes"
    obj = _check_masks(masks, n, size) if masks is not None else _check_boxes(boxes, n, size)
    area = obj.flatten(1).sum(dim=1)
    empty = (area == 0).nonzero().flatten().tolist()
    if empty:
        raise InvalidInputError(
            f"{name}[{empty[0]}] covers no pixel (an empty mask or a box thinner than one pixel "
            f"centre, e.g. after resizing); {len(empty)} such sample(s): drop them or give an "
            "object of at least one pixel."
        )
    full = (area == size[0] * size[1]).nonzero().flatten().tolist()
    if full:
        raise InvalidInputError(
            f"{name}[{full[0]}] covers the whole {size[0]}x{size[1]} image: no background pixel "
            f"is left to keep or to fill from ({len(full)} such sample(s)); drop them or give "
            "the object's own outline."
        )
    return obj


def _check_labels(labels: Any, n: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(
            f"labels must be an (N,) tensor of class indices; got {type(labels).__name__}"
        ) from exc
    if t.dim() != 1 or t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise InvalidInputError(
            f"labels must be an (N,) integer tensor of class indices; got shape "
            f"{tuple(t.shape)}, dtype {t.dtype} (use labels.long())."
        )
    if t.shape[0] != n:
        raise InvalidInputError(
            f"labels has {t.shape[0]} entries but images has {n} samples; give one label per image."
        )
    if bool((t < 0).any()):
        raise InvalidInputError(f"labels must be class indices >= 0; got {int(t.min())}")
    return t.detach().to("cpu", torch.long)


def _fills(images: torch.Tensor, objects: torch.Tensor, fill: Any) -> torch.Tensor:
    """``(N, C)`` fill colour of each image."""
    n, c = images.shape[:2]
    if isinstance(fill, str):
        if fill == "mean":
            bg = (~objects)[:, None].to(images.dtype)
            return (images * bg).sum(dim=(2, 3)) / bg.sum(dim=(2, 3))
        if fill == "black":
            return images.new_zeros(n, c)
    elif not isinstance(fill, bool):
        try:
            value = torch.as_tensor(fill, dtype=images.dtype).flatten()
        except (TypeError, ValueError, RuntimeError):
            value = None
        if value is not None and value.numel() in (1, c) and bool(torch.isfinite(value).all()):
            return value.to(images.device).expand(n, c).clone()
    raise InvalidInputError(
        f"fill must be 'mean', 'black', a finite float or a sequence of {c} finite floats (one "
        f"per channel); got {fill!r}"
    )


# -- pairing ----------------------------------------------------------------------------------


def _mixed(ids: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A permutation pairing each image with one of another class wherever counts allow.

    Images are ordered class by class (classes and members in random order) and each is
    paired with the image ``m`` places further round the cycle, ``m`` the largest class
    size: every pair crosses classes when ``m <= N / 2``, and otherwise ``2 (N - m)`` do,
    the most possible. Random swaps that keep those counts and create no fixed point then
    shuffle the pairing, so a class's partners are not one neighbouring class.
    """
    n = ids.shape[0]
    classes = int(ids.max()) + 1
    class_rank = torch.randperm(classes, generator=g)
    order = torch.randperm(n, generator=g)
    order = order[torch.sort(class_rank[ids[order]], stable=True).indices]
    m = int(torch.bincount(ids).max())
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-(m if m < n else 1))
    p, c = perm.tolist(), ids.tolist()
    for i, j in torch.randint(n, (MIX_ROUNDS * n, 2), generator=g).tolist():
        a, b = p[i], p[j]
        if i == j or a == j or b == i:
            continue
        if (c[i] == c[b]) + (c[j] == c[a]) <= (c[i] == c[a]) + (c[j] == c[b]):
            p[i], p[j] = b, a
    return torch.tensor(p, dtype=torch.long)


def _same(ids: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A permutation pairing each image with another of its class: one random cycle per class."""
    order = torch.randperm(ids.shape[0], generator=g)
    order = order[torch.sort(ids[order], stable=True).indices]
    perm = torch.empty_like(order)
    for k in ids.unique().tolist():
        members = order[ids[order] == k]
        perm[members] = members.roll(-1)
    return perm


# -- building ---------------------------------------------------------------------------------


def _build(
    images: Any, masks: Any, boxes: Any, labels: Any, fill: Any, seed: int
) -> tuple[torch.Tensor, Counterfactuals]:
    """The checked images and their counterfactuals."""
    images = check_images(images)
    n, _, h, w = images.shape
    objects = _object_masks(masks, boxes, n, (h, w)).to(images.device)
    ids = None if labels is None else _check_labels(labels, n)
    if n < 2:
        raise InvalidInputError(
            "images has 1 sample; Mixed-Rand pastes each object onto another image's "
            "background, so give at least 2 images."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an int; got {seed!r}")
    fills = _fills(images, objects, fill)
    g = torch.Generator().manual_seed(seed)
    keys = torch.arange(n) if ids is None else torch.unique(ids, return_inverse=True)[1]
    rand = _mixed(keys, g)
    same = None if ids is None else _same(keys, g)
    inside = objects[:, None]
    only_bg = torch.where(inside, fills[:, :, None, None], images)
    only_fg = torch.where(inside, images, fills[:, :, None, None])

    def paste(partner: torch.Tensor) -> torch.Tensor:
        return torch.where(inside, images, only_bg[partner.to(images.device)])

    cf = Counterfactuals(
        only_bg=only_bg,
        only_fg=only_fg,
        mixed_rand=paste(rand),
        mixed_same=None if same is None else paste(same),
        partner_rand=rand,
        partner_same=same,
        rand_same_label=keys[rand] == keys,
        same_is_self=None if same is None else same == torch.arange(n),
        masks=objects,
        fills=fills,
    )
    return images, cf


def background_counterfactuals(
    images: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    labels: torch.Tensor | Sequence[int] | None = None,
    fill: BackgroundFill = "mean",
    seed: int = 0,
) -> Counterfactuals:
    """Only-BG, Only-FG, Mixed-Rand and Mixed-Same versions of ``images`` (see the module doc).

    Args:
        images: ``(N, C, H, W)`` images, N >= 2.
        masks: ``(N, H, W)`` bool object masks (exactly one of ``masks`` / ``boxes``).
        boxes: ``(N, 4)`` XYXY object boxes, exclusive ``x2, y2``; the object is the box.
        labels: ``(N,)`` class indices; without them Mixed-Rand takes any other image's
            background and there is no Mixed-Same.
        fill: ``"mean"`` (each image's background colour), ``"black"``, or a constant.
        seed: seed of the pairings (the global RNG is not touched).

    Returns:
        a :class:`Counterfactuals`.

    Raises:
        InvalidInputError: no region or two, bad shapes or dtypes, an object with no pixel
            or with no background pixel left, labels not one per image, fewer than 2 images,
            or a bad fill.

    Example:
        >>> import torch
        >>> images = torch.rand(4, 3, 8, 8)
        >>> boxes = torch.tensor([[2, 2, 6, 6]] * 4)
        >>> cf = background_counterfactuals(images, boxes=boxes, labels=[0, 0, 1, 1])
        >>> cf.partner_rand.tolist(), cf.partner_same.tolist()
        ([2, 3, 1, 0], [1, 0, 3, 2])
        >>> bool((cf.only_fg[:, :, 2:6, 2:6] == images[:, :, 2:6, 2:6]).all())
        True
    """
    return _build(images, masks, boxes, labels, fill, seed)[1]


# -- scoring ----------------------------------------------------------------------------------


def _predict(
    model: nn.Module, images: torch.Tensor, batch_size: int, classes: list[int]
) -> torch.Tensor:
    """``(N,)`` predicted classes (argmax), on the CPU; inputs go to the model's device."""
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    batches = Batches(images.shape[0], batch_size)
    for part in batches:
        x = images[part]
        if ref is not None:
            x = x.to(device=ref.device, dtype=ref.dtype)
        out = model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(
                f"the model must return (N, classes) logits for classification; got {got}"
            )
        classes.append(int(out.shape[1]))
        batches.put(part, [out.argmax(dim=1).cpu()])
    return batches.results()[0]


def background_reliance(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    *,
    masks: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    fill: BackgroundFill = "mean",
    seed: int = 0,
    batch_size: int = 64,
) -> BackgroundReliance:
    """Accuracy of ``model`` on the images and their four background counterfactuals.

    The model runs under ``torch.no_grad()`` in eval mode (its modes are restored
    afterwards, also on error), ``batch_size`` images per forward, on the device and dtype
    of its first floating parameter; a prediction is the argmax of its ``(N, classes)``
    output. Arguments as in :func:`background_counterfactuals`; ``labels`` are required.

    Raises:
        InvalidInputError: as :func:`background_counterfactuals`, a bad ``batch_size``, an
            output that is not ``(N, classes)``, or a label the output has no class for.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Corner(nn.Module):       # reads the top-left pixel: a background reader
        ...     def forward(self, x):
        ...         v = x[:, 0, 0, 0]
        ...         return torch.stack([-v, v], 1)
        >>> images = torch.zeros(4, 1, 4, 4)
        >>> images[2:, :, 0, 0] = 1.0              # class 1 has a bright corner
        >>> masks = torch.zeros(4, 4, 4, dtype=torch.bool)
        >>> masks[:, 1:3, 1:3] = True
        >>> res = background_reliance(Corner(), images, [0, 0, 1, 1], masks=masks, fill="black")
        >>> res.original, res.only_bg, res.only_fg, res.mixed_rand, res.bg_gap
        (1.0, 1.0, 0.5, 0.0, 1.0)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int; got {batch_size!r}")
    if labels is None:
        raise InvalidInputError("labels are required: pass the (N,) true class of each image")
    images, cf = _build(images, masks, boxes, labels, fill, seed)
    truth = _check_labels(labels, images.shape[0])
    shown = (images, cf.only_bg, cf.only_fg, cf.mixed_rand, cf.mixed_same)
    classes: list[int] = []
    with preserved_state(model, eval_mode=True), torch.no_grad():
        correct = [_predict(model, x, batch_size, classes) == truth for x in shown if x is not None]
    if int(truth.max()) >= min(classes):
        raise InvalidInputError(
            f"labels go up to {int(truth.max())} but the model outputs {min(classes)} classes; "
            "give labels in 0..classes-1 in the model's class order."
        )
    acc = [float(c.double().mean()) for c in correct]
    return BackgroundReliance(
        original=acc[0],
        only_bg=acc[1],
        only_fg=acc[2],
        mixed_rand=acc[3],
        mixed_same=acc[4],
        bg_gap=acc[4] - acc[3],
        chance=float(torch.bincount(truth).max()) / truth.shape[0],
        correct_original=correct[0],
        correct_only_bg=correct[1],
        correct_only_fg=correct[2],
        correct_mixed_rand=correct[3],
        correct_mixed_same=correct[4],
        counterfactuals=cf,
    )
