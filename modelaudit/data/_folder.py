"""An ImageFolder (class per subfolder) plus a CSV or JSON file of boxes per image."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import datasets, tv_tensors

from modelaudit.errors import InvalidInputError

Loader = Callable[[int], tuple[Image.Image, dict[str, Any]]]
_COLUMNS = ("file", "x1", "y1", "x2", "y2")


class _Folder(datasets.ImageFolder):
    """ImageFolder whose class order can be given (default: sorted folder names)."""

    def __init__(self, root: str, classes: Sequence[str] | None) -> None:
        self._given = None if classes is None else list(classes)
        super().__init__(root)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        if self._given is None:
            return super().find_classes(directory)
        missing = [c for c in self._given if not (Path(directory) / c).is_dir()]
        if missing:
            raise InvalidInputError(
                f"folder: no class folder {', '.join(missing)} under {directory}; classes= "
                "names subfolders of root."
            )
        return self._given, {c: k for k, c in enumerate(self._given)}


def open_folder(
    root: str | Path, boxes_file: str | Path, classes: Sequence[str] | None
) -> tuple[list[str], tuple[str, ...], Loader]:
    """The image files, class names and loader of an ImageFolder with a boxes file."""
    if not Path(root).is_dir():
        raise InvalidInputError(f"folder: the image folder {root} does not exist.")
    try:
        base = _Folder(str(root), classes)
    except FileNotFoundError as err:  # no class folder, or no image in them
        raise InvalidInputError(f"folder: {err}") from err
    boxes = read_boxes(Path(boxes_file))
    rel = [Path(p).relative_to(root).as_posix() for p, _ in base.samples]
    known = set(rel)
    stray = [(f, where) for f, (where, _) in boxes.items() if f not in known]
    if stray:
        f, where = stray[0]
        raise InvalidInputError(
            f"folder: {where} gives boxes for {f!r}, which is not an image under {root} "
            f"({len(stray)} such entries); paths are relative to root, e.g. {rel[0]!r}."
        )
    lacking = [f for f in rel if f not in boxes]
    if lacking:
        raise InvalidInputError(
            f"folder: {len(lacking)} images have no box in {boxes_file}, the first "
            f"{lacking[0]!r}; every image needs one."
        )

    def load(index: int) -> tuple[Image.Image, dict[str, Any]]:
        path, label = base.samples[index]
        image = base.loader(path)
        own = boxes[rel[index]][1]
        return image, {
            "boxes": tv_tensors.BoundingBoxes(
                torch.tensor(own, dtype=torch.float32),
                format="XYXY",
                canvas_size=(image.height, image.width),
            ),
            "labels": torch.full((len(own),), label, dtype=torch.long),
        }

    return [p for p, _ in base.samples], tuple(base.classes), load


def read_boxes(path: Path) -> dict[str, tuple[str, list[list[float]]]]:
    """``{file: (where it was given, [[x1, y1, x2, y2], ...])}`` from a CSV or JSON file."""
    if not path.is_file():
        raise InvalidInputError(f"folder: the boxes file {path} does not exist.")
    if path.suffix.lower() == ".json":
        return _read_json(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    raise InvalidInputError(f"folder: the boxes file {path} must end in .csv or .json.")


def _read_csv(path: Path) -> dict[str, tuple[str, list[list[float]]]]:
    out: dict[str, tuple[str, list[list[float]]]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(
                f"folder: the boxes file {path} lacks the columns {missing}; its header must "
                f"be {','.join(_COLUMNS)}."
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                box = [float(row[c]) for c in _COLUMNS[1:]]
            except (TypeError, ValueError) as err:
                raise InvalidInputError(
                    f"folder: {where}: the box is not four numbers ({err})."
                ) from err
            out.setdefault(row["file"], (where, []))[1].append(box)
    return out


def _read_json(path: Path) -> dict[str, tuple[str, list[list[float]]]]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInputError(
            f"folder: the boxes file {path} is not valid JSON ({err})."
        ) from err
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"folder: the boxes file {path} must hold an object {{file: [x1, y1, x2, y2]}}."
        )
    out: dict[str, tuple[str, list[list[float]]]] = {}
    for name, value in data.items():
        where = f"{path} entry {name!r}"
        nested = isinstance(value, list) and value and isinstance(value[0], list)
        boxes = value if nested else [value]
        if not all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)
            for b in boxes
        ):
            raise InvalidInputError(
                f"folder: {where}: expected [x1, y1, x2, y2] or a list of them; got {value!r}."
            )
        out[name] = (where, [[float(v) for v in b] for b in boxes])
    return out
