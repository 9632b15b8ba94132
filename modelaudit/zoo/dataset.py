"""The zoo's shapes as a torch ``Dataset`` of ``(image, target)``, targets in ``tv_tensors``.

What :func:`modelaudit.scan` and :func:`modelaudit.iter_batches` read from a real dataset,
for tests, examples and benchmarks that stream the generator's images with their truth.

Example:
    >>> from modelaudit import zoo
    >>> ds = zoo.ShapesDataset(zoo.audit_data(4))
    >>> image, target = ds[1]
    >>> len(ds), tuple(image.shape), sorted(target), target["boxes"].format.value
    (4, (3, 64, 64), ['boxes', 'labels'], 'XYXY')
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from modelaudit.zoo.data import ShapesData

__all__ = ["ShapesDataset"]


class ShapesDataset(Dataset[tuple[torch.Tensor, dict[str, Any]]]):
    """``ShapesData`` as ``(image, {"labels", "boxes" or "masks"})`` items, one object each.

    Args:
        data: the generated images and their truth.
        masks: give each object's mask (``tv_tensors.Mask``) instead of its box
            (``tv_tensors.BoundingBoxes``, XYXY).

    Attributes:
        classes: the class names, indexed by label (what the readers of datasets on disk
            give too).
    """

    def __init__(self, data: ShapesData, *, masks: bool = False) -> None:
        self.data, self.masks = data, masks
        self.classes = list(data.class_names)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        d = self.data
        target: dict[str, Any] = {"labels": d.labels[i : i + 1]}
        if self.masks:
            target["masks"] = tv_tensors.Mask(d.masks[i : i + 1])
        else:
            size = (int(d.images.shape[-2]), int(d.images.shape[-1]))
            box = d.boxes[i : i + 1].float()
            target["boxes"] = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=size)
        return d.images[i], target
