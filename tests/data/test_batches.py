"""iter_batches: the same batches from every kind of source, the one-region rule, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision import tv_tensors

from modelaudit.data import (
    Batch,
    coco_detection,
    collate,
    count,
    iter_batches,
    voc_detection,
    voc_segmentation,
)
from modelaudit.errors import InvalidInputError
from modelaudit.zoo import CLASS_NAMES, ShapesData, shapes_data

from .conftest import N


def _same(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
        assert torch.equal(x.indices, y.indices)
        for key in ("boxes", "masks"):
            u, v = getattr(x, key), getattr(y, key)
            assert (u is None) == (v is None)
            if u is not None:
                assert type(u) is type(v) and torch.equal(u, v)


def _truth_batches(truth: ShapesData, size: int) -> list[Batch]:
    out = []
    for s in range(0, len(truth), size):
        part = truth[s : s + size]
        out.append(
            Batch(
                images=part.images,
                labels=part.labels,
                boxes=tv_tensors.BoundingBoxes(
                    part.boxes.float(), format="XYXY", canvas_size=(64, 64)
                ),
                masks=tv_tensors.Mask(part.masks),
                indices=torch.arange(s, s + len(part)),
            )
        )
    return out


def test_dataset_loader_and_ready_batches_give_the_truths_batches(
    coco: tuple[Path, ShapesData],
) -> None:
    root, truth = coco
    ds = coco_detection(root / "images", root / "annotations.json")
    expected = _truth_batches(truth, 5)
    for got in (
        list(iter_batches(ds, batch_size=5, num_classes=4, need=("boxes", "masks"))),
        list(iter_batches(DataLoader(ds, batch_size=5, collate_fn=collate))),
        list(iter_batches(DataLoader(ds, batch_size=5))),  # default collate: one object each
        list(iter_batches([(b.images, list(_targets(b))) for b in expected])),
        list(iter_batches([(b.images, _batched(b)) for b in expected])),
    ):
        assert [len(b) for b in got] == [5, 5, 2]
        torch.testing.assert_close(
            torch.cat([b.images for b in got]), truth.images, atol=1e-6, rtol=0
        )
        _same([_rounded(b) for b in got], [_rounded(b) for b in expected])


def _rounded(b: Batch) -> Batch:
    """The batch with images on the 8-bit grid (the PNG read and the truth differ by 6e-8)."""
    return Batch((b.images * 255).round(), b.labels, b.boxes, b.masks, b.indices)


def _targets(b: Batch) -> Any:
    assert b.boxes is not None and b.masks is not None
    for k in range(len(b)):
        yield {
            "labels": b.labels[k : k + 1],
            "boxes": b.boxes[k : k + 1],
            "masks": b.masks[k : k + 1],
        }


def _batched(b: Batch) -> dict[str, Any]:
    return {"labels": b.labels, "boxes": b.boxes, "masks": b.masks}


def test_labels_only_sources_agree() -> None:
    images, labels = torch.rand(7, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    ds = TensorDataset(images, labels)
    sources = (
        ds,
        DataLoader(ds, batch_size=3),
        [(images[:3], labels[:3]), (images[3:6], labels[3:6]), (images[6:], labels[6:])],
    )
    for source in sources:
        got = list(iter_batches(source, batch_size=3, num_classes=4))
        assert [b.indices.tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6]]
        assert torch.equal(torch.cat([b.labels for b in got]), labels)
        assert torch.equal(torch.cat([b.images for b in got]), images)
        assert all(b.boxes is None and b.masks is None for b in got)


def test_largest_object_gives_label_and_box_and_its_class_gives_the_mask() -> None:
    image = torch.zeros(3, 10, 10)
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # class 1, 4 px
    masks[1, 4:10, 4:9] = True  # class 2, 30 px: the largest
    masks[2, 0:3, 6:9] = True  # class 2, 9 px
    target = {"labels": torch.tensor([1, 2, 2]), "masks": tv_tensors.Mask(masks)}
    b = collate([(image, target)])
    assert b.labels.tolist() == [2]
    assert b.boxes is not None and b.boxes.tolist() == [[4.0, 4.0, 9.0, 10.0]]  # from mask 1
    assert b.masks is not None and torch.equal(b.masks[0], masks[1] | masks[2])
    boxes = tv_tensors.BoundingBoxes(
        [[0, 0, 2, 2], [1, 1, 9, 9], [0, 0, 3, 3]], format="XYXY", canvas_size=(10, 10)
    )
    b = collate([(image, {"labels": torch.tensor([0, 3, 1]), "boxes": boxes})])
    assert (
        b.labels.tolist() == [3]
        and b.boxes is not None
        and b.boxes.tolist() == [[1.0, 1.0, 9.0, 9.0]]
    )
    assert b.masks is None


def test_other_box_formats_are_converted_to_xyxy() -> None:
    image = torch.zeros(3, 20, 20)
    xywh = tv_tensors.BoundingBoxes([[2, 3, 5, 7]], format="XYWH", canvas_size=(20, 20))
    cxcywh = tv_tensors.BoundingBoxes([[4.5, 6.5, 5, 7]], format="CXCYWH", canvas_size=(20, 20))
    for boxes in (xywh, cxcywh):
        b = collate([(image, {"labels": torch.tensor([0]), "boxes": boxes})])
        assert b.boxes is not None and b.boxes.tolist() == [[2.0, 3.0, 7.0, 10.0]]
        assert b.boxes.format == tv_tensors.BoundingBoxFormat.XYXY


def test_pil_and_uint8_images_are_scaled_to_floats() -> None:
    from PIL import Image

    pixels = torch.randint(0, 256, (4, 5, 3), dtype=torch.uint8)
    pil = Image.fromarray(pixels.numpy())
    b = collate([(pil, 1), (pixels.permute(2, 0, 1), 2)])
    expected = pixels.permute(2, 0, 1).float() / 255
    assert torch.equal(b.images[0], expected) and torch.equal(b.images[1], expected)


def test_count_tells_the_number_of_images() -> None:
    ds = TensorDataset(torch.zeros(10, 3, 4, 4), torch.zeros(10, dtype=torch.long))
    assert count(ds) == 10
    assert count(DataLoader(ds, batch_size=4)) == 10
    assert count(DataLoader(ds, batch_size=4, drop_last=True)) == 8
    assert (
        count(
            [(torch.zeros(3, 3, 4, 4), torch.zeros(3)), (torch.zeros(2, 3, 4, 4), torch.zeros(2))]
        )
        == 5
    )
    assert count(iter([])) is None


def test_reader_batches_carry_dataset_positions(voc: tuple[Path, ShapesData]) -> None:
    root, truth = voc
    got = list(iter_batches(voc_detection(root, classes=CLASS_NAMES), batch_size=5, device="cpu"))
    assert torch.equal(torch.cat([b.indices for b in got]), torch.arange(N))
    assert torch.equal(torch.cat([b.labels for b in got]), truth.labels)
    assert got[0].masks is None


# --- bad input ---------------------------------------------------------------------------


def _one(target: Any, image: torch.Tensor | None = None) -> list[tuple[torch.Tensor, Any]]:
    good = (torch.zeros(3, 8, 8), 0)
    return [good, good, (torch.zeros(3, 8, 8) if image is None else image, target)]


def _box(*xyxy: float) -> dict[str, Any]:
    return {
        "labels": torch.tensor([1]),
        "boxes": tv_tensors.BoundingBoxes([list(xyxy)], format="XYXY", canvas_size=(8, 8)),
    }


@pytest.mark.parametrize(
    ("items", "phrase"),
    [
        (
            _one(_box(1, 1, 9, 5)),
            r"sample 2, object 0: the box \[1.0, 1.0, 9.0, 5.0\] is outside the 8x8 image",
        ),
        (_one(_box(-1, 1, 4, 5)), r"sample 2, object 0: .* is outside"),
        (_one(_box(4, 1, 4, 5)), r"sample 2, object 0: the box .* is degenerate"),
        (_one(7), r"sample 2: label 7 is outside \[0, 4\)"),
        (_one(-1), r"sample 2: label -1 is outside"),
        (
            _one({"labels": torch.tensor([5]), "boxes": _box(1, 1, 4, 4)["boxes"]}),
            r"sample 2, object 0: label 5",
        ),
        (_one({"labels": torch.zeros(0, dtype=torch.long)}), r"sample 2: the target has no object"),
        (_one({"boxes": _box(1, 1, 4, 4)["boxes"]}), r"sample 2: the target dict has no 'labels'"),
        (
            _one(0, torch.zeros(8, 8)),
            r"sample 2: the image has shape \(8, 8\), expected \(C, H, W\)",
        ),
        (
            _one(0, torch.zeros(3, 8, 8, dtype=torch.int32)),
            r"sample 2: the image has dtype torch.int32",
        ),
        (_one(0, torch.full((3, 8, 8), float("nan"))), r"sample 2: the image contains NaN"),
        (
            _one(0, torch.zeros(3, 6, 8)),
            r"sample 2: the image is \(3, 6, 8\) but sample 0 is \(3, 8, 8\)",
        ),
        (_one("cat"), r"sample 2: the label 'cat' is not an integer"),
    ],
)
def test_bad_samples_name_their_index(items: list[Any], phrase: str) -> None:
    with pytest.raises(InvalidInputError, match=phrase):
        list(iter_batches(ItemsDataset(items), batch_size=8, num_classes=4))


class ItemsDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


def test_bad_box_in_a_file_names_the_file(tmp_path: Path, voc: tuple[Path, ShapesData]) -> None:
    import shutil

    root = tmp_path / "voc"
    shutil.copytree(voc[0], root)
    xml = root / "VOCdevkit/VOC2012/Annotations/000006.xml"
    text = xml.read_text()
    start, end = text.index("<xmax>") + 6, text.index("</xmax>")
    xml.write_text(text[:start] + "70" + text[end:])
    with pytest.raises(
        InvalidInputError,
        match=r"sample 6 \(.*000006\.jpg\), object 0: the box .* is outside the 64x64",
    ):
        list(iter_batches(voc_detection(root, classes=CLASS_NAMES), batch_size=4))


def test_masks_needed_but_none(voc: tuple[Path, ShapesData]) -> None:
    ds = voc_detection(voc[0], classes=CLASS_NAMES)
    with pytest.raises(
        InvalidInputError,
        match=r"a check needs masks, but the AnnotatedDataset yields none .*voc_segmentation",
    ):
        next(iter_batches(ds, need=("masks",)))
    with pytest.raises(
        InvalidInputError, match=r"a check needs boxes, but the TensorDataset yields none"
    ):
        next(
            iter_batches(
                TensorDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long)),
                need="boxes",
            )
        )


def test_empty_sources(tmp_path: Path) -> None:
    from modelaudit.zoo.on_disk import write_voc_segmentation

    write_voc_segmentation(tmp_path, n=0, seed=0)
    with pytest.raises(InvalidInputError, match="the AnnotatedDataset yielded no images"):
        list(iter_batches(voc_segmentation(tmp_path, classes=CLASS_NAMES)))
    with pytest.raises(InvalidInputError, match="the list yielded no images"):
        list(iter_batches([]))


def test_default_collate_failure_says_use_collate(coco: tuple[Path, ShapesData]) -> None:
    data = shapes_data(4, seed=0)
    items = [
        (
            data.images[i],
            {
                "labels": data.labels[i : i + 1].repeat(i + 1),
                "boxes": data.boxes[i : i + 1].repeat(i + 1, 1),
            },
        )
        for i in range(4)
    ]
    with pytest.raises(InvalidInputError, match=r"collate_fn=modelaudit\.data\.collate"):
        list(iter_batches(DataLoader(ItemsDataset(items), batch_size=4)))


def test_bad_arguments() -> None:
    ds = TensorDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="batch_size must be a positive int; got 0"):
        iter_batches(ds, batch_size=0)  # raised at the call, before any batch is read
    with pytest.raises(
        InvalidInputError, match=r"need may hold 'boxes' and 'masks'; got \['mask'\]"
    ):
        iter_batches(ds, need=("mask",))
    with pytest.raises(InvalidInputError, match="iter_batches needs a Dataset"):
        iter_batches(3)  # type: ignore[arg-type]
    singles = iter([(torch.zeros(3, 4, 4), 0)])
    with pytest.raises(InvalidInputError, match=r"images are \(3, 4, 4\), .*collate_fn="):
        next(iter_batches(singles))
