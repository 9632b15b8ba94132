"""The on-disk writers: files checked with independent parsers (ElementTree, PIL, pycocotools, csv)."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from modelaudit.errors import InvalidInputError
from modelaudit.zoo import CLASS_NAMES, shapes_data
from modelaudit.zoo.on_disk import (
    write_coco,
    write_image_folder,
    write_voc,
    write_voc_segmentation,
)

N = 8


def _same_truth(got, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Labels, boxes and masks are the generator's, bit for bit."""
    want = shapes_data(N, seed=seed)
    for key in ("labels", "boxes", "masks"):
        assert torch.equal(getattr(got, key), getattr(want, key))
    return want


def test_voc_xml_boxes_are_one_based_inclusive(tmp_path: Path) -> None:
    truth = write_voc(tmp_path, n=N, seed=5)
    want = _same_truth(truth, 5)
    voc = tmp_path / "VOCdevkit/VOC2012"
    assert (voc / "ImageSets/Main/val.txt").read_text().split() == [f"{i:06d}" for i in range(N)]
    for i in range(N):
        root = ET.parse(voc / f"Annotations/{i:06d}.xml").getroot()
        (obj,) = root.findall("object")
        assert obj.findtext("name") == CLASS_NAMES[int(want.labels[i])]
        x1, y1, x2, y2 = want.boxes[i].tolist()
        got = [int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
        assert got == [x1 + 1, y1 + 1, x2, y2]
        assert root.findtext("size/width") == "64"
        with Image.open(voc / f"JPEGImages/{i:06d}.jpg") as im:
            assert im.format == "JPEG"
            stored = torch.from_numpy(np.asarray(im.convert("RGB")).astype(np.float32) / 255)
        assert torch.equal(stored.permute(2, 0, 1), truth.images[i])  # returned = as stored
    # JPEG changes pixels: by 3 of 255 on average at quality 95 without chroma subsampling
    assert float((truth.images - want.images).abs().mean()) < 0.02


def test_voc_segmentation_palette_pngs_hold_label_plus_one(tmp_path: Path) -> None:
    truth = write_voc_segmentation(tmp_path, n=N, seed=6)
    want = _same_truth(truth, 6)
    seg = tmp_path / "VOCdevkit/VOC2012/SegmentationClass"
    for i in range(N):
        with Image.open(seg / f"{i:06d}.png") as png:
            assert png.mode == "P"
            values = torch.from_numpy(np.asarray(png).astype(np.int64))
            palette = png.getpalette()
        expected = want.masks[i].long() * (int(want.labels[i]) + 1)
        assert torch.equal(values, expected)
    assert palette is not None and palette[3:6] == [128, 0, 0]  # VOC's colour of class 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")  # numpy 2 vs pycocotools
def test_coco_json_decodes_to_the_truth(tmp_path: Path) -> None:
    truth = write_coco(tmp_path, n=N, seed=7)
    want = _same_truth(truth, 7)
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])] == list(
        CLASS_NAMES
    )
    for i, ann in enumerate(data["annotations"]):
        x1, y1, x2, y2 = want.boxes[i].tolist()
        assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert ann["category_id"] == int(want.labels[i]) + 1
        rle = coco_mask.frPyObjects(ann["segmentation"], 64, 64)
        assert np.array_equal(coco_mask.decode(rle).astype(bool), want.masks[i].numpy())
        assert ann["area"] == int(want.masks[i].sum())
    pixels = np.asarray(Image.open(tmp_path / "images/000003.png"))
    expected = np.rint(want.images[3].permute(1, 2, 0).numpy() * 255)
    assert np.array_equal(pixels, expected)  # PNG: 8-bit, lossless
    assert torch.equal(
        truth.images, torch.from_numpy(np.rint(want.images.numpy() * 255) / 255).float()
    )


def test_image_folder_layout_and_boxes_files(tmp_path: Path) -> None:
    truth = write_image_folder(tmp_path, n=N, seed=8)
    want = _same_truth(truth, 8)
    with (tmp_path / "boxes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    boxes_json = json.loads((tmp_path / "boxes.json").read_text())
    assert len(rows) == N == len(boxes_json)
    for row in rows:
        i = int(Path(row["file"]).stem)
        assert row["file"].split("/")[0] == CLASS_NAMES[int(want.labels[i])]
        assert (tmp_path / row["file"]).is_file()
        box = want.boxes[i].tolist()
        assert [int(row[c]) for c in ("x1", "y1", "x2", "y2")] == box
        assert boxes_json[row["file"]] == box


def test_jpeg_option_and_bad_format(tmp_path: Path) -> None:
    truth = write_coco(tmp_path, n=2, seed=0, image_format="jpeg", masks=False)
    assert (tmp_path / "images/000001.jpg").is_file()
    assert (
        "segmentation"
        not in json.loads((tmp_path / "annotations.json").read_text())["annotations"][0]
    )
    assert len(truth) == 2
    with pytest.raises(InvalidInputError, match="image_format must be 'png' or 'jpeg'; got 'gif'"):
        write_image_folder(tmp_path / "f", n=2, seed=0, image_format="gif")  # type: ignore[arg-type]
