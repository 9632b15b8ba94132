"""Readers for annotated images on disk: Pascal VOC, COCO, and an ImageFolder plus boxes.

Every reader returns an :class:`AnnotatedDataset`: a map-style dataset of ``(image,
target)`` where ``image`` is a ``(3, H, W)`` float :class:`~torchvision.tv_tensors.Image` in
``[0, 1]`` and ``target`` a dict with ``"labels"`` (``(K,)`` long, indices into
``dataset.classes``), ``"boxes"`` (``(K, 4)`` XYXY
:class:`~torchvision.tv_tensors.BoundingBoxes` in pixels, ``x2``/``y2`` exclusive) and, where
the format has them, ``"masks"`` (``(K, H, W)`` bool :class:`~torchvision.tv_tensors.Mask`),
one row per object. The user's torchvision transforms v2 ``transforms(image, target)`` run
last, so a resize or a flip moves the boxes and masks with the image.

Conventions. Labels start at 0 and carry no background class. VOC's 1-based inclusive
pixel boxes become ``(xmin - 1, ymin - 1, xmax, ymax)``, the box of exactly the annotated
pixels; COCO's ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)`` and category ids map to
``0..C-1`` in id order. Files are read lazily: a missing image or a corrupt annotation is
reported, with its path, when its sample is read (the split file, the COCO JSON and the
boxes file are checked when the dataset is built).

Example:
    >>> import tempfile
    >>> from modelaudit.zoo.on_disk import write_voc
    >>> root = tempfile.mkdtemp()
    >>> truth = write_voc(root, n=4, seed=0)
    >>> ds = voc_detection(root, classes=truth.class_names)
    >>> image, target = ds[0]
    >>> tuple(image.shape), target["labels"].tolist() == truth.labels[:1].tolist()
    ((3, 64, 64), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from modelaudit.data import _coco, _folder, _voc
from modelaudit.data._voc import VOC_CLASSES
from modelaudit.errors import InvalidInputError

__all__ = [
    "LAYOUTS",
    "VOC_CLASSES",
    "AnnotatedDataset",
    "coco_detection",
    "image_folder_with_boxes",
    "parse_layout",
    "read_dataset",
    "voc_detection",
    "voc_segmentation",
]

Transforms = Callable[..., Any]
Loader = Callable[[int], tuple[Image.Image, dict[str, Any]]]


class AnnotatedDataset(Dataset[tuple[tv_tensors.Image, dict[str, Any]]]):
    """Images on disk with their annotations, as ``(image, target)`` (see the module doc).

    Attributes:
        classes: the class names, in label order.
        files: the image file of each sample.
        layout: the format's name (``"voc"``, ``"voc-segmentation"``, ``"coco"``, ``"folder"``).

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_image_folder
        >>> root = tempfile.mkdtemp()
        >>> _ = write_image_folder(root, n=4, seed=0)
        >>> ds = image_folder_with_boxes(root, f"{root}/boxes.csv")
        >>> len(ds), ds.classes, ds.layout
        (4, ('circle', 'cross', 'square', 'triangle'), 'folder')
    """

    def __init__(
        self,
        load: Loader,
        *,
        files: Sequence[str],
        classes: Sequence[str],
        layout: str,
        transforms: Transforms | None = None,
    ) -> None:
        self._load = load
        self.files = list(files)
        self.classes = tuple(classes)
        self.layout = layout
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} samples")
        index %= len(self)
        image, target = self._read(index)
        pixels = F.to_dtype(F.to_image(image), torch.float32, scale=True)
        if self.transforms is not None:
            return self.transforms(pixels, target)
        return pixels, target

    def _read(self, index: int) -> tuple[Image.Image, dict[str, Any]]:
        where = f"{self.layout} sample {index} ({self.files[index]})"
        try:
            return self._load(index)
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}: {err}") from err
        except FileNotFoundError as err:
            raise InvalidInputError(
                f"{where}: the file {err.filename or err} is missing; the dataset lists it."
            ) from err
        except OSError as err:
            raise InvalidInputError(f"{where}: cannot read the image: {err}") from err

    def __repr__(self) -> str:
        return f"AnnotatedDataset({self.layout}, {len(self)} images, classes={self.classes})"


def voc_detection(
    root: str | Path,
    *,
    image_set: str = "val",
    year: str = "2012",
    classes: Sequence[str] | None = None,
    transforms: Transforms | None = None,
) -> AnnotatedDataset:
    """Pascal VOC detection from a local folder (``root/VOCdevkit/VOC<year>/...``).

    Read with :class:`torchvision.datasets.VOCDetection` (``download=False``); every
    ``<object>`` of an image's XML becomes a row of its target (``difficult`` ones included).

    Args:
        root: the folder holding ``VOCdevkit``.
        image_set: the split file ``ImageSets/Main/<image_set>.txt``.
        year: ``"2007"`` to ``"2012"``.
        classes: the class names in label order (None: VOC's 20, :data:`VOC_CLASSES`); an
            object named otherwise is an error naming its XML file.
        transforms: torchvision transforms v2 applied to ``(image, target)``.

    Raises:
        InvalidInputError: no VOC folder or split file; later, when a sample is read, a
            missing image, a missing or corrupt XML, or an unknown class name.

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_voc
        >>> root = tempfile.mkdtemp()
        >>> truth = write_voc(root, n=3, seed=1)
        >>> ds = voc_detection(root, classes=truth.class_names)
        >>> ds[1][1]["boxes"].tolist() == truth.boxes[1:2].float().tolist()
        True
    """
    base = _voc.open_voc(root, image_set, year, segmentation=False)
    names = VOC_CLASSES if classes is None else tuple(classes)
    load = _voc.detection_loader(base, names)
    return AnnotatedDataset(
        load, files=base.images, classes=names, layout="voc", transforms=transforms
    )


def voc_segmentation(
    root: str | Path,
    *,
    image_set: str = "val",
    year: str = "2012",
    classes: Sequence[str] | None = None,
    transforms: Transforms | None = None,
) -> AnnotatedDataset:
    """Pascal VOC segmentation (``SegmentationClass`` palette PNGs) from a local folder.

    Read with :class:`torchvision.datasets.VOCSegmentation` (``download=False``). Pixel value
    ``v`` in ``1..len(classes)`` is class ``v - 1``; 0 (background) and 255 (VOC's
    uncertain border) belong to no class. Each class present becomes one row of the
    target: its mask (all its pixels) and the box around them.

    Args:
        root: the folder holding ``VOCdevkit``.
        image_set: the split file ``ImageSets/Segmentation/<image_set>.txt``.
        year: ``"2007"`` to ``"2012"``.
        classes: the class names in label order (None: VOC's 20, :data:`VOC_CLASSES`).
        transforms: torchvision transforms v2 applied to ``(image, target)``.

    Raises:
        InvalidInputError: as :func:`voc_detection`; a mask of another size than its image or
            with a value outside the classes names the PNG.

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_voc_segmentation
        >>> root = tempfile.mkdtemp()
        >>> truth = write_voc_segmentation(root, n=3, seed=1)
        >>> ds = voc_segmentation(root, classes=truth.class_names)
        >>> bool((ds[2][1]["masks"][0] == truth.masks[2]).all())
        True
    """
    base = _voc.open_voc(root, image_set, year, segmentation=True)
    names = VOC_CLASSES if classes is None else tuple(classes)
    load = _voc.segmentation_loader(base, names)
    return AnnotatedDataset(
        load, files=base.images, classes=names, layout="voc-segmentation", transforms=transforms
    )


def coco_detection(
    images_dir: str | Path,
    annotation_file: str | Path,
    *,
    transforms: Transforms | None = None,
) -> AnnotatedDataset:
    """COCO-style detection: an image folder and an instances JSON (needs pycocotools).

    Read with :class:`torchvision.datasets.CocoDetection` wrapped by
    :func:`torchvision.datasets.wrap_dataset_for_transforms_v2`. Targets carry masks
    (from polygons or RLE) when every annotation has a ``"segmentation"``; labels index
    ``dataset.classes``, the categories in id order. Images without any annotation are
    left out (there is no object to audit): ``len(dataset)`` counts the annotated ones.

    Args:
        images_dir: the folder the ``file_name`` entries are relative to.
        annotation_file: the COCO JSON (``images``, ``annotations``, ``categories``).
        transforms: torchvision transforms v2 applied to ``(image, target)``.

    Raises:
        InvalidInputError: a missing, non-JSON or non-COCO annotation file (named); later,
            an image listed but missing.

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_coco
        >>> root = tempfile.mkdtemp()
        >>> truth = write_coco(root, n=3, seed=2)
        >>> ds = coco_detection(f"{root}/images", f"{root}/annotations.json")
        >>> ds.classes, ds[0][1]["labels"].tolist() == truth.labels[:1].tolist()
        (('circle', 'square', 'triangle', 'cross'), True)
    """
    base, classes, load = _coco.open_coco(images_dir, annotation_file)
    return AnnotatedDataset(load, files=base, classes=classes, layout="coco", transforms=transforms)


def image_folder_with_boxes(
    root: str | Path,
    boxes_file: str | Path,
    *,
    classes: Sequence[str] | None = None,
    transforms: Transforms | None = None,
) -> AnnotatedDataset:
    """An ImageFolder (one subfolder per class) plus a CSV or JSON of boxes.

    The boxes file gives XYXY pixel boxes (``x2``/``y2`` exclusive) per image path
    relative to ``root``: a CSV with the header ``file,x1,y1,x2,y2`` (several rows for
    several objects), or a JSON object ``{"circle/0.png": [x1, y1, x2, y2], ...}`` (or a
    list of such boxes per file). Every object has the class of its folder.

    Args:
        root: the folder of class subfolders.
        boxes_file: ``.csv`` or ``.json``.
        classes: the class folders in label order (default: sorted, as ImageFolder does).
        transforms: torchvision transforms v2 applied to ``(image, target)``.

    Raises:
        InvalidInputError: no class folders or images, a class folder missing, a missing or
            malformed boxes file (named, with the line), an image without boxes or boxes for
            a file that is not an image under ``root``.

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_image_folder
        >>> root = tempfile.mkdtemp()
        >>> truth = write_image_folder(root, n=4, seed=0)
        >>> ds = image_folder_with_boxes(root, f"{root}/boxes.json", classes=truth.class_names)
        >>> ds.classes
        ('circle', 'square', 'triangle', 'cross')
    """
    files, names, load = _folder.open_folder(root, boxes_file, classes)
    return AnnotatedDataset(
        load, files=files, classes=names, layout="folder", transforms=transforms
    )


LAYOUTS: dict[str, tuple[str, ...]] = {
    "voc": ("ROOT",),
    "voc-segmentation": ("ROOT",),
    "coco": ("IMAGES", "ANNOTATIONS"),
    "folder": ("ROOT", "BOXES"),
}
"""The layouts :func:`read_dataset` knows and the paths each takes (comma-separated)."""


def parse_layout(spec: str) -> tuple[str, list[str]]:
    """``"coco:IMAGES,ANNOTATIONS"`` as ``("coco", ["IMAGES", "ANNOTATIONS"])``, checked.

    Example:
        >>> parse_layout("folder:data/train,data/boxes.csv")
        ('folder', ['data/train', 'data/boxes.csv'])
    """
    layout, _, rest = spec.partition(":")
    forms = ", ".join(f"{k}:{','.join(v)}" for k, v in LAYOUTS.items())
    if layout not in LAYOUTS or not rest:
        raise InvalidInputError(f"data {spec!r}: expected one of {forms}.")
    paths = rest.split(",")
    if len(paths) != len(LAYOUTS[layout]) or not all(paths):
        raise InvalidInputError(
            f"data {spec!r}: {layout} takes {layout}:{','.join(LAYOUTS[layout])} "
            f"({len(LAYOUTS[layout])} path(s), comma-separated); got {len(paths)}."
        )
    return layout, paths


def read_dataset(
    spec: str,
    *,
    classes: Sequence[str] | None = None,
    transforms: Transforms | None = None,
) -> AnnotatedDataset:
    """Open a dataset described as ``LAYOUT:PATHS`` (see :data:`LAYOUTS`) with its reader.

    ``voc:ROOT``, ``voc-segmentation:ROOT``, ``coco:IMAGES,ANNOTATIONS`` or
    ``folder:ROOT,BOXES``; ``classes`` goes to the readers that take one (not COCO, whose
    file names its categories).

    Example:
        >>> import tempfile
        >>> from modelaudit.zoo.on_disk import write_coco
        >>> root = tempfile.mkdtemp()
        >>> _ = write_coco(root, n=2, seed=0)
        >>> len(read_dataset(f"coco:{root}/images,{root}/annotations.json"))
        2
    """
    layout, paths = parse_layout(spec)
    if layout == "coco":
        if classes is not None:
            raise InvalidInputError("coco: the annotation file names the classes; drop classes.")
        return coco_detection(paths[0], paths[1], transforms=transforms)
    if layout == "folder":
        return image_folder_with_boxes(paths[0], paths[1], classes=classes, transforms=transforms)
    reader = voc_detection if layout == "voc" else voc_segmentation
    return reader(paths[0], classes=classes, transforms=transforms)
