"""Readers of VOC, COCO and ImageFolder+boxes: what they read back equals the generated truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from modelaudit.data import (
    VOC_CLASSES,
    coco_detection,
    image_folder_with_boxes,
    voc_detection,
    voc_segmentation,
)
from modelaudit.errors import InvalidInputError
from modelaudit.zoo import CLASS_NAMES, ShapesData

from .conftest import N


def _stack(ds):  # type: ignore[no-untyped-def]
    items = [ds[i] for i in range(len(ds))]
    images = torch.stack([image for image, _ in items])
    return images, [target for _, target in items]


def _order(ds) -> list[int]:  # type: ignore[no-untyped-def]
    """Generation index of each sample: file i is named 00000i.<ext>."""
    return [int(Path(f).stem) for f in ds.files]


def test_voc_detection_reads_back_labels_boxes_and_images(voc: tuple[Path, ShapesData]) -> None:
    root, truth = voc
    ds = voc_detection(root, classes=CLASS_NAMES)
    assert len(ds) == N and ds.classes == CLASS_NAMES and _order(ds) == list(range(N))
    images, targets = _stack(ds)
    torch.testing.assert_close(images, truth.images, atol=1e-6, rtol=0)
    for i, target in enumerate(targets):
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
        assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
        assert target["labels"].tolist() == [int(truth.labels[i])]
        assert target["boxes"].tolist() == [truth.boxes[i].float().tolist()]  # exact


def test_voc_default_classes_are_vocs_twenty(voc: tuple[Path, ShapesData]) -> None:
    ds = voc_detection(voc[0], classes=VOC_CLASSES)
    assert len(ds.classes) == 20 and ds.classes[0] == "aeroplane" and ds.classes[-1] == "tvmonitor"
    with pytest.raises(InvalidInputError, match=r"000000\.xml, object 0, is of class '\w+'"):
        ds[0]


def test_voc_segmentation_reads_back_masks_and_their_boxes(
    voc_seg: tuple[Path, ShapesData],
) -> None:
    root, truth = voc_seg
    ds = voc_segmentation(root, classes=CLASS_NAMES)
    images, targets = _stack(ds)
    torch.testing.assert_close(images, truth.images, atol=1e-6, rtol=0)
    for i, target in enumerate(targets):
        assert isinstance(target["masks"], tv_tensors.Mask)
        assert target["labels"].tolist() == [int(truth.labels[i])]
        assert torch.equal(target["masks"][0], truth.masks[i])
        assert target["boxes"].tolist() == [truth.boxes[i].float().tolist()]


def test_coco_reads_back_labels_boxes_masks_and_images(coco: tuple[Path, ShapesData]) -> None:
    root, truth = coco
    ds = coco_detection(root / "images", root / "annotations.json")
    assert ds.classes == CLASS_NAMES and _order(ds) == list(range(N))
    images, targets = _stack(ds)
    torch.testing.assert_close(images, truth.images, atol=1e-6, rtol=0)  # PNG: lossless
    for i, target in enumerate(targets):
        assert target["labels"].tolist() == [int(truth.labels[i])]  # category id - 1
        assert target["boxes"].tolist() == [truth.boxes[i].float().tolist()]
        assert torch.equal(target["masks"][0], truth.masks[i])


def test_coco_polygons_become_masks(tmp_path: Path, coco: tuple[Path, ShapesData]) -> None:
    """A rectangle polygon (2, 3)-(7, 9) covers rows 3..8 and columns 2..6, as its box says."""
    root, _ = coco
    data = json.loads((root / "annotations.json").read_text())
    data["images"], data["annotations"] = data["images"][:1], data["annotations"][:1]
    data["annotations"][0].update(
        segmentation=[[2, 3, 7, 3, 7, 9, 2, 9]], bbox=[2, 3, 5, 6], category_id=3
    )
    (tmp_path / "a.json").write_text(json.dumps(data))
    _, target = coco_detection(root / "images", tmp_path / "a.json")[0]
    expected = torch.zeros(64, 64, dtype=torch.bool)
    expected[3:9, 2:7] = True
    assert torch.equal(target["masks"][0], expected)
    assert target["boxes"].tolist() == [[2.0, 3.0, 7.0, 9.0]] and target["labels"].tolist() == [2]


def test_image_folder_reads_boxes_from_csv_and_json(folder: tuple[Path, ShapesData]) -> None:
    root, truth = folder
    for boxes_file in ("boxes.csv", "boxes.json"):
        ds = image_folder_with_boxes(root, root / boxes_file, classes=CLASS_NAMES)
        order = _order(ds)
        assert sorted(order) == list(range(N))
        images, targets = _stack(ds)
        torch.testing.assert_close(images, truth.images[order], atol=1e-6, rtol=0)
        for k, target in enumerate(targets):
            assert target["labels"].tolist() == [int(truth.labels[order[k]])]
            assert target["boxes"].tolist() == [truth.boxes[order[k]].float().tolist()]


def test_image_folder_default_classes_are_sorted_folders(folder: tuple[Path, ShapesData]) -> None:
    root, truth = folder
    ds = image_folder_with_boxes(root, root / "boxes.csv")
    assert ds.classes == tuple(sorted(CLASS_NAMES))
    for k, i in enumerate(_order(ds)):
        assert ds.classes[int(ds[k][1]["labels"][0])] == truth.class_names[int(truth.labels[i])]


def test_transforms_move_boxes_and_masks_with_the_image(voc_seg: tuple[Path, ShapesData]) -> None:
    root, truth = voc_seg
    flip = voc_segmentation(root, classes=CLASS_NAMES, transforms=v2.RandomHorizontalFlip(p=1.0))
    half = voc_segmentation(root, classes=CLASS_NAMES, transforms=v2.Resize(32))
    for i in range(N):
        x1, y1, x2, y2 = truth.boxes[i].float().tolist()
        image, target = flip[i]
        torch.testing.assert_close(image, truth.images[i].flip(-1), atol=1e-6, rtol=0)
        assert target["boxes"].tolist() == [[64 - x2, y1, 64 - x1, y2]]  # x -> W - x
        assert torch.equal(target["masks"][0], truth.masks[i].flip(-1))
        image, target = half[i]
        assert image.shape == (3, 32, 32)
        assert target["boxes"].tolist() == [[x1 / 2, y1 / 2, x2 / 2, y2 / 2]]  # scale 1/2
        nearest = truth.masks[i][None, None].float()
        expected = torch.nn.functional.interpolate(nearest, size=(32, 32), mode="nearest")
        assert torch.equal(target["masks"][0], expected[0, 0].bool())


def test_coco_transforms_resize_boxes(coco: tuple[Path, ShapesData]) -> None:
    root, truth = coco
    for size in (128, 32):  # 32: odd coordinates become half pixels, not rounded ones
        ds = coco_detection(root / "images", root / "annotations.json", transforms=v2.Resize(size))
        for i in range(N):
            image, target = ds[i]
            assert image.shape == (3, size, size) and target["boxes"].dtype == torch.float32
            assert target["boxes"].tolist() == [(truth.boxes[i].float() * size / 64).tolist()]


# --- bad input: each error names the file and says what is wrong -------------------------


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(src, dst)
    return dst


def test_voc_missing_folder_and_split_file(tmp_path: Path, voc: tuple[Path, ShapesData]) -> None:
    with pytest.raises(InvalidInputError, match=r"no folder .*VOCdevkit/VOC2012"):
        voc_detection(tmp_path)
    with pytest.raises(InvalidInputError, match=r"split file .*ImageSets/Main/train\.txt"):
        voc_detection(voc[0], image_set="train")
    with pytest.raises(InvalidInputError, match=r"VOC: .*year"):
        voc_detection(voc[0], year="1999")


def test_voc_corrupt_missing_xml_and_missing_image(
    tmp_path: Path, voc: tuple[Path, ShapesData]
) -> None:
    root = _copy(voc[0], tmp_path)
    ann = root / "VOCdevkit/VOC2012/Annotations"
    (ann / "000002.xml").write_text("<annotation><object>")
    (ann / "000003.xml").unlink()
    (root / "VOCdevkit/VOC2012/JPEGImages/000004.jpg").unlink()
    (ann / "000005.xml").write_text(
        "<annotation><object><name>circle</name><bndbox><xmin>a</xmin></bndbox></object>"
        "</annotation>"
    )
    ds = voc_detection(root, classes=CLASS_NAMES)
    with pytest.raises(InvalidInputError, match=r"sample 2 .*000002\.xml is not valid XML"):
        ds[2]
    with pytest.raises(InvalidInputError, match=r"sample 3 .*000003\.xml is missing"):
        ds[3]
    with pytest.raises(InvalidInputError, match=r"sample 4 .*000004\.jpg is missing"):
        ds[4]
    with pytest.raises(InvalidInputError, match=r"000005\.xml, object 0, has no valid <bndbox>"):
        ds[5]


def test_voc_segmentation_bad_masks(tmp_path: Path, voc_seg: tuple[Path, ShapesData]) -> None:
    root = _copy(voc_seg[0], tmp_path)
    seg = root / "VOCdevkit/VOC2012/SegmentationClass"
    values = np.zeros((64, 64), dtype=np.uint8)
    values[10:20, 10:20] = 9
    grey = [c for v in range(256) for c in (v, v, v)]  # distinct colours: indices kept
    for name, part in (("000001.png", values), ("000002.png", values[:32])):
        png = Image.fromarray(part, mode="P")
        png.putpalette(grey)
        png.save(seg / name)
    ds = voc_segmentation(root, classes=CLASS_NAMES)
    with pytest.raises(
        InvalidInputError, match=r"000001\.png holds pixel values \[9\], outside 1\.\.4"
    ):
        ds[1]
    with pytest.raises(InvalidInputError, match=r"sample 2 .*000002\.png is \(64, 32\) \(W, H\)"):
        ds[2]


def test_coco_missing_corrupt_and_malformed_files(
    tmp_path: Path, coco: tuple[Path, ShapesData]
) -> None:
    images = coco[0] / "images"
    with pytest.raises(InvalidInputError, match=r"annotation file .*nope\.json does not exist"):
        coco_detection(images, tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match=r"bad\.json is not valid JSON"):
        coco_detection(images, tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(InvalidInputError, match=r"list\.json"):
        coco_detection(images, tmp_path / "list.json")
    data = json.loads((coco[0] / "annotations.json").read_text())
    data["annotations"][4]["category_id"] = 99
    (tmp_path / "cat.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"cat\.json: annotation 4 has category_id 99"):
        coco_detection(images, tmp_path / "cat.json")
    del data["categories"]
    (tmp_path / "nocat.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"nocat\.json: no list 'categories'"):
        coco_detection(images, tmp_path / "nocat.json")


def test_coco_image_listed_but_missing(tmp_path: Path, coco: tuple[Path, ShapesData]) -> None:
    root = _copy(coco[0], tmp_path)
    (root / "images/000007.png").unlink()
    ds = coco_detection(root / "images", root / "annotations.json")
    with pytest.raises(InvalidInputError, match=r"coco sample 7 .*000007\.png is missing"):
        ds[7]


def test_folder_bad_boxes_files(tmp_path: Path, folder: tuple[Path, ShapesData]) -> None:
    root = _copy(folder[0], tmp_path)
    lines = (root / "boxes.csv").read_text().splitlines()
    (root / "cols.csv").write_text("file,x,y\n")
    with pytest.raises(InvalidInputError, match=r"cols\.csv lacks the columns \['x1'"):
        image_folder_with_boxes(root, root / "cols.csv")
    (root / "num.csv").write_text("\n".join([*lines[:3], lines[3].rsplit(",", 1)[0] + ",oops"]))
    with pytest.raises(InvalidInputError, match=r"num\.csv:4: the box is not four numbers"):
        image_folder_with_boxes(root, root / "num.csv")
    (root / "short.csv").write_text("\n".join(lines[:-1]))
    missing = lines[-1].split(",")[0]
    with pytest.raises(InvalidInputError, match=rf"1 images have no box .*'{missing}'"):
        image_folder_with_boxes(root, root / "short.csv")
    (root / "extra.csv").write_text("\n".join([*lines, "circle/999.png,1,1,5,5"]))
    with pytest.raises(
        InvalidInputError, match=r"extra\.csv:\d+ gives boxes for 'circle/999\.png'"
    ):
        image_folder_with_boxes(root, root / "extra.csv")
    (root / "bad.json").write_text('{"circle/000001.png": [1, 2]}')
    with pytest.raises(InvalidInputError, match=r"bad\.json entry 'circle/000001\.png'"):
        image_folder_with_boxes(root, root / "bad.json")
    with pytest.raises(InvalidInputError, match=r"boxes file .*none\.csv does not exist"):
        image_folder_with_boxes(root, root / "none.csv")
    with pytest.raises(InvalidInputError, match="no class folder hexagon"):
        image_folder_with_boxes(root, root / "boxes.csv", classes=("circle", "hexagon"))


def test_coco_images_without_annotations_are_left_out(tmp_path):
    from modelaudit.zoo.on_disk import write_coco

    truth = write_coco(tmp_path, n=3, seed=4)
    path = tmp_path / "annotations.json"
    doc = json.loads(path.read_text())
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != doc["images"][1]["id"]]
    path.write_text(json.dumps(doc))
    ds = coco_detection(tmp_path / "images", path)
    assert len(ds) == 2  # image 1 holds no object to audit
    assert [ds[k][1]["labels"].tolist() for k in (0, 1)] == [
        truth.labels[0:1].tolist(),
        truth.labels[2:3].tolist(),
    ]
    assert ds.files[1].endswith(doc["images"][2]["file_name"])
