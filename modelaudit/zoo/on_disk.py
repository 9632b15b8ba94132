"""Tiny datasets on disk in standard layouts, drawn by the shape generator.

Each writer draws :func:`~modelaudit.zoo.shapes_data` images, writes them in one layout
(Pascal VOC detection or segmentation, COCO, an ImageFolder with a boxes file) and returns
the ground truth as a :class:`~modelaudit.zoo.ShapesData`, in generation order, so a test
compares what a reader gives back with the truth. The returned ``images`` are the pixels
as stored: 8-bit (``round(255 x) / 255``), and for JPEG the decoded JPEG (JPEG changes
pixels; boxes, masks and labels are exact in every layout). Class names are the zoo's
:data:`~modelaudit.zoo.CLASS_NAMES`; file ``i`` (``000007.png`` ...) is sample ``i``.

Box conventions written: VOC ``bndbox`` 1-based inclusive (``xmin = x1 + 1``, ``xmax =
x2``); COCO ``bbox = [x1, y1, x2 - x1, y2 - y1]``, category ids from 1, masks as
uncompressed RLE; the boxes CSV/JSON XYXY with exclusive ``x2, y2``, as the zoo's boxes.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> truth = write_coco(root, n=4, seed=0)
    >>> len(truth), sorted(p.name for p in __import__("pathlib").Path(root).iterdir())
    (4, ['annotations.json', 'images'])
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from modelaudit.errors import InvalidInputError
from modelaudit.zoo.data import ShapesData, WatermarkMode, shapes_data

__all__ = ["write_coco", "write_image_folder", "write_voc", "write_voc_segmentation"]

ImageFormat = Literal["png", "jpeg"]


def write_voc(
    folder: str | Path,
    *,
    n: int = 16,
    seed: int = 0,
    image_size: int = 64,
    image_set: str = "val",
    year: str = "2012",
    watermark: WatermarkMode = "none",
) -> ShapesData:
    """Write a VOC detection layout: ``VOCdevkit/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}``.

    Images are JPEG (quality 95, no chroma subsampling), as VOC's ``.jpg`` names require; one ``<object>`` per
    image, named after its class.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> truth = write_voc(root, n=2, seed=0)
        >>> xml = f"{root}/VOCdevkit/VOC2012/Annotations/000000.xml"
        >>> open(xml).read().count("<object>"), truth.images.shape[0]
        (1, 2)
    """
    data = shapes_data(n, seed=seed, image_size=image_size, watermark=watermark)
    voc = _voc_dirs(folder, year, "JPEGImages", "Annotations", "ImageSets/Main")
    stored = []
    for i in range(n):
        stored.append(_save(data.images[i], voc / "JPEGImages" / f"{i:06d}.jpg", "jpeg"))
        _voc_xml(voc / "Annotations" / f"{i:06d}.xml", data, i, year)
    _split(voc / "ImageSets" / "Main" / f"{image_set}.txt", n)
    return _with_images(data, stored)


def write_voc_segmentation(
    folder: str | Path,
    *,
    n: int = 16,
    seed: int = 0,
    image_size: int = 64,
    image_set: str = "val",
    year: str = "2012",
    watermark: WatermarkMode = "none",
) -> ShapesData:
    """Write a VOC segmentation layout: JPEG images, ``SegmentationClass`` palette PNGs.

    Mask pixel values: 0 background, ``label + 1`` on the object (VOC's colour palette).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = tempfile.mkdtemp()
        >>> truth = write_voc_segmentation(root, n=2, seed=0)
        >>> png = Image.open(f"{root}/VOCdevkit/VOC2012/SegmentationClass/000001.png")
        >>> png.mode, int(np.asarray(png).max()) == int(truth.labels[1]) + 1
        ('P', True)
    """
    data = shapes_data(n, seed=seed, image_size=image_size, watermark=watermark)
    voc = _voc_dirs(folder, year, "JPEGImages", "SegmentationClass", "ImageSets/Segmentation")
    palette = _voc_palette()
    stored = []
    for i in range(n):
        stored.append(_save(data.images[i], voc / "JPEGImages" / f"{i:06d}.jpg", "jpeg"))
        values = data.masks[i].numpy().astype(np.uint8) * (int(data.labels[i]) + 1)
        png = Image.fromarray(values, mode="P")
        png.putpalette(palette)
        png.save(voc / "SegmentationClass" / f"{i:06d}.png")
    _split(voc / "ImageSets" / "Segmentation" / f"{image_set}.txt", n)
    return _with_images(data, stored)


def write_coco(
    folder: str | Path,
    *,
    n: int = 16,
    seed: int = 0,
    image_size: int = 64,
    image_format: ImageFormat = "png",
    masks: bool = True,
    watermark: WatermarkMode = "none",
) -> ShapesData:
    """Write a COCO layout: ``images/`` and ``annotations.json`` (instances).

    One annotation per image: ``bbox``, ``area`` and, with ``masks``, the object's mask as
    an uncompressed RLE ``segmentation`` (exact). Image ids are ``1..n``, category ids
    ``1..4``.

    Example:
        >>> import json, tempfile
        >>> root = tempfile.mkdtemp()
        >>> truth = write_coco(root, n=2, seed=0, masks=False)
        >>> ann = json.load(open(f"{root}/annotations.json"))["annotations"][0]
        >>> ann["bbox"] == [*truth.boxes[0, :2].tolist(), *(truth.boxes[0, 2:] - truth.boxes[0, :2]).tolist()]
        True
    """
    data = shapes_data(n, seed=seed, image_size=image_size, watermark=watermark)
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    suffix = "png" if image_format == "png" else "jpg"
    images, annotations, stored = [], [], []
    for i in range(n):
        name = f"{i:06d}.{suffix}"
        stored.append(_save(data.images[i], root / "images" / name, image_format))
        images.append({"id": i + 1, "file_name": name, "width": image_size, "height": image_size})
        x1, y1, x2, y2 = data.boxes[i].tolist()
        ann = {
            "id": i + 1,
            "image_id": i + 1,
            "category_id": int(data.labels[i]) + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": int(data.masks[i].sum()),
            "iscrowd": 0,
        }
        if masks:
            ann["segmentation"] = _rle(data.masks[i].numpy())
        annotations.append(ann)
    categories = [
        {"id": k + 1, "name": name, "supercategory": "shape"}
        for k, name in enumerate(data.class_names)
    ]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(coco))
    return _with_images(data, stored)


def write_image_folder(
    folder: str | Path,
    *,
    n: int = 16,
    seed: int = 0,
    image_size: int = 64,
    image_format: ImageFormat = "png",
    watermark: WatermarkMode = "none",
) -> ShapesData:
    """Write an ImageFolder (``<class>/<i>.png``) with ``boxes.csv`` and ``boxes.json``.

    Both boxes files hold the same XYXY boxes (exclusive ``x2, y2``) keyed by the path
    relative to ``folder``, e.g. ``square/000003.png``.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> truth = write_image_folder(root, n=2, seed=0)
        >>> open(f"{root}/boxes.csv").readline().strip()
        'file,x1,y1,x2,y2'
    """
    data = shapes_data(n, seed=seed, image_size=image_size, watermark=watermark)
    root = Path(folder)
    for name in data.class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    suffix = "png" if image_format == "png" else "jpg"
    rows, stored = [], []
    for i in range(n):
        rel = f"{data.class_names[int(data.labels[i])]}/{i:06d}.{suffix}"
        stored.append(_save(data.images[i], root / rel, image_format))
        rows.append([rel, *data.boxes[i].tolist()])
    with (root / "boxes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "x1", "y1", "x2", "y2"])
        writer.writerows(rows)
    (root / "boxes.json").write_text(json.dumps({row[0]: row[1:] for row in rows}))
    return _with_images(data, stored)


def _save(image: torch.Tensor, path: Path, image_format: ImageFormat) -> torch.Tensor:
    """Write ``(3, H, W)`` float ``image`` as 8-bit; return the pixels as stored, as floats."""
    if image_format not in ("png", "jpeg"):
        raise InvalidInputError(f"image_format must be 'png' or 'jpeg'; got {image_format!r}.")
    pixels = np.rint(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(
        buffer, format=image_format.upper(), quality=95, subsampling=0
    )
    path.write_bytes(buffer.getvalue())
    if image_format == "jpeg":
        pixels = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)


def _with_images(data: ShapesData, stored: list[torch.Tensor]) -> ShapesData:
    images = torch.stack(stored) if stored else data.images
    return replace(data, images=images.contiguous())


def _voc_dirs(folder: str | Path, year: str, *parts: str) -> Path:
    voc = Path(folder) / "VOCdevkit" / f"VOC{year}"
    for part in parts:
        (voc / part).mkdir(parents=True, exist_ok=True)
    return voc


def _split(path: Path, n: int) -> None:
    path.write_text("".join(f"{i:06d}\n" for i in range(n)))


def _voc_xml(path: Path, data: ShapesData, i: int, year: str) -> None:
    """One VOC annotation: the image's size and its object, bndbox 1-based inclusive."""
    h, w = data.images.shape[-2:]
    x1, y1, x2, y2 = data.boxes[i].tolist()
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = f"VOC{year}"
    ET.SubElement(root, "filename").text = f"{i:06d}.jpg"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = data.class_names[int(data.labels[i])]
    for tag in ("pose", "truncated", "difficult"):
        ET.SubElement(obj, tag).text = "Unspecified" if tag == "pose" else "0"
    box = ET.SubElement(obj, "bndbox")
    for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
        ET.SubElement(box, tag).text = str(value)
    ET.ElementTree(root).write(path)


def _voc_palette() -> list[int]:
    """VOC's colour map: class ``c``'s colour from the bits of ``c`` (256 RGB triples)."""
    palette = []
    for c in range(256):
        r = g = b = 0
        code = c
        for j in range(8):
            r |= ((code >> 0) & 1) << (7 - j)
            g |= ((code >> 1) & 1) << (7 - j)
            b |= ((code >> 2) & 1) << (7 - j)
            code >>= 3
        palette += [r, g, b]
    return palette


def _rle(mask: np.ndarray) -> dict[str, object]:
    """Uncompressed COCO RLE: run lengths of the column-major mask, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}
