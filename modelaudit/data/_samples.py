"""One sample ``(image, target)`` to one labelled region: the checks behind ``iter_batches``.

A target is an int label or a torchvision detection-style dict (``"labels"``, and
``"boxes"`` as :class:`~torchvision.tv_tensors.BoundingBoxes` and/or ``"masks"`` as
:class:`~torchvision.tv_tensors.Mask`, one row per object). An audit asks about one class
per image, so a dict with several objects is reduced by one rule:

- the image's label is the class of its **largest object** (mask area when the target has
  masks, else box area; the first one on a tie);
- its box is that object's box (from its mask, exclusive ``x2, y2``, when the target has
  no boxes);
- its mask is the **union of the masks of every object of that class**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from modelaudit.errors import InvalidInputError


@dataclass(frozen=True)
class Region:
    """One sample after the rule: a float image, its label, and its box and mask if any."""

    image: torch.Tensor
    label: int
    box: torch.Tensor | None
    mask: torch.Tensor | None


def as_image(image: Any, where: str) -> torch.Tensor:
    """``image`` as a plain ``(C, H, W)`` float tensor (PIL and uint8 are scaled to [0, 1])."""
    if isinstance(image, Image.Image):
        image = F.to_image(image)
    if not isinstance(image, torch.Tensor):
        raise InvalidInputError(
            f"{where}: the image is a {type(image).__name__}, expected a (C, H, W) tensor or a "
            "PIL image (add torchvision.transforms.v2.ToImage() to the dataset's transforms)."
        )
    image = image.as_subclass(torch.Tensor)
    if image.ndim != 3:
        raise InvalidInputError(
            f"{where}: the image has shape {tuple(image.shape)}, expected (C, H, W)."
        )
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise InvalidInputError(
            f"{where}: the image has dtype {image.dtype}, expected a float tensor (or uint8, "
            "scaled to [0, 1]); add ToDtype(torch.float32, scale=True) to the transforms."
        )
    if not bool(torch.isfinite(image).all()):
        raise InvalidInputError(f"{where}: the image contains NaN or Inf values.")
    return image


def as_label(value: Any, where: str, num_classes: int | None) -> int:
    """An int label in ``[0, num_classes)``."""
    integral = isinstance(value, torch.Tensor) and not value.is_floating_point()
    if integral and value.numel() == 1 and value.dtype != torch.bool:
        value = int(value.item())
    if isinstance(value, np.integer):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{where}: the label {value!r} is not an integer class index.")
    if value < 0 or (num_classes is not None and value >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else "[0, inf)"
        raise InvalidInputError(
            f"{where}: label {value} is outside {bound}; the model has {num_classes} classes "
            "(check the class list the dataset was read with)."
        )
    return value


def region(image: Any, target: Any, where: str, num_classes: int | None = None) -> Region:
    """Reduce one ``(image, target)`` sample to a :class:`Region` (rule in the module doc)."""
    pixels = as_image(image, where)
    if not isinstance(target, dict):
        return Region(pixels, as_label(target, where, num_classes), None, None)
    if "labels" not in target:
        raise InvalidInputError(
            f"{where}: the target dict has no 'labels' (keys: {sorted(target)}); a detection-"
            "style target needs 'labels' and 'boxes' and/or 'masks'."
        )
    labels = torch.as_tensor(target["labels"]).reshape(-1)
    if labels.numel() == 0:
        raise InvalidInputError(f"{where}: the target has no object (empty 'labels').")
    height, width = pixels.shape[-2:]
    boxes = _boxes(target.get("boxes"), len(labels), (height, width), where)
    masks = _masks(target.get("masks"), len(labels), (height, width), where)
    if masks is not None:
        areas = masks.flatten(1).sum(1).double()
    elif boxes is not None:
        areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double()
    else:
        areas = torch.zeros(len(labels), dtype=torch.float64)
    j = int(torch.argmax(areas))  # the first maximum
    label = as_label(labels[j], f"{where}, object {j}", num_classes)
    box = boxes[j] if boxes is not None else None
    mask = None
    if masks is not None:
        mask = masks[labels == labels[j]].any(0)
        if box is None:
            box = _box_of(masks[j], f"{where}, object {j}")
    return Region(pixels, label, box, mask)


def _boxes(value: Any, k: int, size: tuple[int, int], where: str) -> torch.Tensor | None:
    """The boxes as a plain ``(k, 4)`` float XYXY tensor, each inside the image and not empty."""
    if value is None:
        return None
    if isinstance(value, tv_tensors.BoundingBoxes):
        if value.format != tv_tensors.BoundingBoxFormat.XYXY:
            value = F.convert_bounding_box_format(
                value, new_format=tv_tensors.BoundingBoxFormat.XYXY
            )
        value = value.as_subclass(torch.Tensor)
    boxes = torch.as_tensor(value, dtype=torch.float32)
    if boxes.numel() == 4 * k:  # (4,) for one object, or (1, k, 4) from a default collate
        boxes = boxes.reshape(k, 4)
    if tuple(boxes.shape) != (k, 4):
        raise InvalidInputError(
            f"{where}: the boxes have shape {tuple(boxes.shape)}, expected ({k}, 4): one XYXY "
            "box per label."
        )
    height, width = size
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        if not (x2 > x1 and y2 > y1):
            raise InvalidInputError(
                f"{where}, object {i}: the box {[x1, y1, x2, y2]} is degenerate (x2 <= x1 or "
                "y2 <= y1); boxes are XYXY in pixels, x2 and y2 exclusive."
            )
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise InvalidInputError(
                f"{where}, object {i}: the box {[x1, y1, x2, y2]} is outside the {width}x"
                f"{height} image (XYXY in pixels, x2 <= width, y2 <= height)."
            )
    return boxes


def _masks(value: Any, k: int, size: tuple[int, int], where: str) -> torch.Tensor | None:
    """The masks as a plain ``(k, H, W)`` bool tensor of the image's size."""
    if value is None:
        return None
    masks = torch.as_tensor(value).as_subclass(torch.Tensor)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[0] != k or tuple(masks.shape[1:]) != size:
        raise InvalidInputError(
            f"{where}: the masks have shape {tuple(masks.shape)}, expected ({k}, {size[0]}, "
            f"{size[1]}): one mask per label, of the image's size."
        )
    return masks.bool() if masks.dtype != torch.bool else masks


def _box_of(mask: torch.Tensor, where: str) -> torch.Tensor:
    """The tight XYXY box (exclusive ``x2, y2``) of a non-empty mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if ys.numel() == 0:
        raise InvalidInputError(f"{where}: the object's mask is empty, so it has no box.")
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
