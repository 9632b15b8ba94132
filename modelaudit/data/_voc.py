"""Pascal VOC on a local folder: torchvision's readers, targets as tv_tensors.

torchvision's own v2 wrapper for VOCDetection keeps VOC's 1-based inclusive pixel boxes and
only knows VOC's 20 names (with a background at 0), so the targets are built here from the
parsed XML instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, tv_tensors

from modelaudit.errors import InvalidInputError

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
"""Pascal VOC's 20 class names, in label order (label 0 is ``aeroplane``: no background)."""

Loader = Callable[[int], tuple[Image.Image, dict[str, Any]]]


def open_voc(
    root: str | Path, image_set: str, year: str, *, segmentation: bool
) -> datasets.VOCDetection | datasets.VOCSegmentation:
    """torchvision's VOC reader over ``root``, or a clear error naming what is missing."""
    cls = datasets.VOCSegmentation if segmentation else datasets.VOCDetection
    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    split = folder / "ImageSets" / ("Segmentation" if segmentation else "Main")
    try:
        return cls(str(root), year=year, image_set=image_set, download=False)
    except ValueError as err:  # torchvision's verify_str_arg: year or image_set
        raise InvalidInputError(f"VOC: {err}") from err
    except RuntimeError as err:
        raise InvalidInputError(
            f"VOC: no folder {folder}; a VOC layout is root/VOCdevkit/VOC{year}/ with "
            "JPEGImages/, Annotations/ (or SegmentationClass/) and ImageSets/."
        ) from err
    except OSError as err:
        raise InvalidInputError(
            f"VOC: the split file {split / (image_set + '.txt')} is missing or unreadable "
            f"({err}); it lists the image ids of image_set={image_set!r}."
        ) from err


def detection_loader(base: datasets.VOCDetection, classes: tuple[str, ...]) -> Loader:
    """Read sample ``i`` as a PIL image and a target dict of tv_tensors."""
    lookup = {name: k for k, name in enumerate(classes)}

    def load(index: int) -> tuple[Image.Image, dict[str, Any]]:
        xml = base.annotations[index]
        image = Image.open(base.images[index]).convert("RGB")
        try:
            parsed = base.parse_voc_xml(ET.parse(xml).getroot())
        except FileNotFoundError:
            raise
        except ET.ParseError as err:
            raise InvalidInputError(f"the annotation {xml} is not valid XML ({err}).") from err
        objects = parsed.get("annotation", {}).get("object", [])
        boxes, labels = [], []
        for k, obj in enumerate(objects if isinstance(objects, list) else [objects]):
            name = obj.get("name")
            if name not in lookup:
                raise InvalidInputError(
                    f"the annotation {xml}, object {k}, is of class {name!r}, not one of "
                    f"{len(classes)} classes ({', '.join(classes[:5])}...); pass classes=[...] "
                    "with the dataset's class names."
                )
            labels.append(lookup[name])
            boxes.append(_voc_box(obj.get("bndbox"), xml, k))
        return image, {
            "boxes": tv_tensors.BoundingBoxes(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                format="XYXY",
                canvas_size=(image.height, image.width),
            ),
            "labels": torch.tensor(labels, dtype=torch.long),
        }

    return load


def _voc_box(bndbox: Any, xml: str, k: int) -> list[float]:
    """VOC's 1-based inclusive ``bndbox`` as 0-based XYXY with exclusive ``x2, y2``."""
    try:
        x1, y1, x2, y2 = (float(bndbox[part]) for part in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInputError(
            f"the annotation {xml}, object {k}, has no valid <bndbox> with xmin, ymin, xmax, "
            f"ymax ({err!r})."
        ) from err
    return [x1 - 1, y1 - 1, x2, y2]


def segmentation_loader(base: datasets.VOCSegmentation, classes: tuple[str, ...]) -> Loader:
    """Read sample ``i``: one mask (and the box around it) per class present."""

    def load(index: int) -> tuple[Image.Image, dict[str, Any]]:
        png = base.masks[index]
        image = Image.open(base.images[index]).convert("RGB")
        values = np.asarray(Image.open(png))
        if values.shape != (image.height, image.width):
            raise InvalidInputError(
                f"the mask {png} is {values.shape[::-1]} (W, H), its image "
                f"{(image.width, image.height)}; a mask is a one-channel palette PNG of the "
                "image's size."
            )
        present = sorted(set(np.unique(values).tolist()) - {0, 255})
        bad = [v for v in present if v > len(classes)]
        if bad:
            raise InvalidInputError(
                f"the mask {png} holds pixel values {bad}, outside 1..{len(classes)} (the "
                "classes; 0 is background, 255 void); pass classes=[...] with the names."
            )
        masks = torch.from_numpy(np.stack([values == v for v in present])) if present else None
        if masks is None:
            masks = torch.zeros((0, image.height, image.width), dtype=torch.bool)
        return image, {
            "boxes": tv_tensors.BoundingBoxes(
                _boxes_of(masks), format="XYXY", canvas_size=(image.height, image.width)
            ),
            "masks": tv_tensors.Mask(masks),
            "labels": torch.tensor([v - 1 for v in present], dtype=torch.long),
        }

    return load


def _boxes_of(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes (exclusive ``x2, y2``) of non-empty ``(K, H, W)`` masks."""
    rows, cols = masks.any(2), masks.any(1)
    out = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    for k in range(masks.shape[0]):
        ys, xs = torch.nonzero(rows[k]).flatten(), torch.nonzero(cols[k]).flatten()
        out[k] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1])
    return out
