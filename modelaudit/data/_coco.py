"""COCO detection through torchvision's CocoDetection and its transforms-v2 wrapper."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import datasets, tv_tensors

from modelaudit.errors import InvalidInputError

Loader = Callable[[int], tuple[Image.Image, dict[str, Any]]]


def open_coco(
    images_dir: str | Path, annotation_file: str | Path
) -> tuple[list[str], tuple[str, ...], Loader]:
    """The image files, class names and sample loader of a COCO annotation file."""
    path = Path(annotation_file)
    if not path.is_file():
        raise InvalidInputError(f"COCO: the annotation file {path} does not exist.")
    if not Path(images_dir).is_dir():
        raise InvalidInputError(f"COCO: the image folder {images_dir} does not exist.")
    try:
        import pycocotools  # noqa: F401
    except ImportError as err:
        raise InvalidInputError(
            "COCO files are read with pycocotools: pip install 'modelaudit[coco]'."
        ) from err
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            base = datasets.CocoDetection(str(images_dir), str(path))
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f"COCO: the annotation file {path} is not valid JSON ({err})."
        ) from err
    except (KeyError, TypeError, AttributeError, AssertionError) as err:
        raise InvalidInputError(
            f"COCO: the annotation file {path} is not a COCO instances file ({err!r}); it needs "
            "'images', 'annotations' and 'categories'."
        ) from err
    categories = _check(base.coco.dataset, path)
    with_masks = all(a.get("segmentation") for a in base.coco.dataset["annotations"])
    keys = {"image_id", "boxes", "labels"} | ({"masks"} if with_masks else set())
    wrapped = datasets.wrap_dataset_for_transforms_v2(base, target_keys=keys)
    ids = sorted(categories)
    lookup = torch.full((max(ids) + 1,), -1, dtype=torch.long)
    lookup[torch.tensor(ids)] = torch.arange(len(ids))
    # images without any annotation (COCO val2017 has some) hold no object to audit
    annotated = [k for k, i in enumerate(base.ids) if base.coco.getAnnIds(imgIds=i)]
    files = [str(Path(images_dir) / base.coco.imgs[base.ids[k]]["file_name"]) for k in annotated]

    def load(index: int) -> tuple[Image.Image, dict[str, Any]]:
        with warnings.catch_warnings():  # pycocotools' decode under numpy 2: not ours to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
            image, target = wrapped[annotated[index]]
        target["labels"] = lookup[target["labels"]]
        # integer JSON boxes arrive as int64: float, so a resize does not round them
        target["boxes"] = tv_tensors.wrap(target["boxes"].float(), like=target["boxes"])
        if "masks" in target:
            target["masks"] = tv_tensors.Mask(target["masks"].bool())
        return image, target

    return files, tuple(categories[i] for i in ids), load


def _check(data: Any, path: Path) -> dict[int, str]:
    """Validate the parts of a COCO file the reader uses; return ``{category id: name}``."""

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError(f"COCO: the annotation file {path}: {what}.")

    if not isinstance(data, dict):
        raise bad("the top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise bad(f"no list {key!r}")
    try:
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {int(i["id"]) for i in data["images"] if isinstance(i["file_name"], str)}
    except (KeyError, TypeError, ValueError) as err:
        raise bad(f"a category or image entry lacks {err}") from err
    if not categories:
        raise bad("'categories' is empty")
    if min(categories) < 0:
        raise bad("a category id is negative")
    for k, ann in enumerate(data["annotations"]):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if not (isinstance(box, list) and len(box) == 4):
            raise bad(f"annotation {k} has no 'bbox' [x, y, width, height]")
        if ann.get("category_id") not in categories:
            raise bad(f"annotation {k} has category_id {ann.get('category_id')!r}, not a category")
        if ann.get("image_id") not in images:
            raise bad(f"annotation {k} has image_id {ann.get('image_id')!r}, not an image")
    return categories
