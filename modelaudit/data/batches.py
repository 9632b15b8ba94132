"""Batches of labelled images with one region each, streamed from any source.

:func:`iter_batches` turns a map-style :class:`~torch.utils.data.Dataset` of ``(image,
target)`` items, a :class:`~torch.utils.data.DataLoader`, or any iterable of ready
``(images, targets)`` batches into :class:`Batch` objects: images ``(N, C, H, W)`` float,
labels ``(N,)``, the labelled object's box as :class:`~torchvision.tv_tensors.BoundingBoxes`
(XYXY, pixels, ``x2``/``y2`` exclusive) and its mask as a :class:`~torchvision.tv_tensors.Mask`,
and the samples' positions (``indices``) for error messages and per-sample results.

A target is an int label or a torchvision detection-style dict (``"labels"``, ``"boxes"``,
``"masks"``; several objects per image allowed). One region per image, by this rule: the
label is the class of the largest object (mask area if the target has masks, else box
area; the first on a tie), the box is that object's box (from its mask when there are no
boxes) and the mask is the union of the masks of every object of that class.

Boxes in another format (XYWH, CXCYWH) are converted with torchvision; a plain tensor is
read as XYXY. PIL and uint8 images are scaled to ``[0, 1]`` floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from modelaudit.data._samples import Region, as_label, region
from modelaudit.errors import InvalidInputError

__all__ = ["Batch", "collate", "count", "iter_batches"]

_NEEDS = ("boxes", "masks")


@dataclass(frozen=True)
class Batch:
    """Labelled images with one region each.

    Attributes:
        images: ``(N, C, H, W)`` float.
        labels: ``(N,)`` long.
        boxes: ``(N, 4)`` XYXY :class:`~torchvision.tv_tensors.BoundingBoxes` (pixels,
            ``x2``/``y2`` exclusive) of the labelled object, or ``None``.
        masks: ``(N, H, W)`` bool :class:`~torchvision.tv_tensors.Mask`, or ``None``.
        indices: ``(N,)`` long: the samples' positions in the dataset (for a DataLoader or
            an iterable of batches, their positions in the stream, which are the dataset's
            positions when the loader does not shuffle).

    Example:
        >>> import torch
        >>> b = Batch(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))
        >>> len(b), b.indices.tolist(), b.boxes is None
        (2, [0, 1], True)
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: tv_tensors.BoundingBoxes | None = None
    masks: tv_tensors.Mask | None = None
    indices: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    def __post_init__(self) -> None:
        if self.indices.numel() == 0 and len(self.labels):
            object.__setattr__(self, "indices", torch.arange(len(self.labels)))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str | None) -> Batch:
        """The same batch on ``device`` (``None``: unchanged).

        Example:
            >>> import torch
            >>> Batch(torch.zeros(1, 3, 4, 4), torch.tensor([2])).to("cpu").labels.tolist()
            [2]
        """
        if device is None:
            return self
        return Batch(
            images=self.images.to(device),
            labels=self.labels.to(device),
            boxes=None if self.boxes is None else self.boxes.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            indices=self.indices.to(device),
        )


def collate(
    samples: Sequence[tuple[Any, Any]],
    *,
    indices: Sequence[int] | None = None,
    num_classes: int | None = None,
    names: Sequence[str | None] | None = None,
) -> Batch:
    """Stack ``(image, target)`` samples into a :class:`Batch` (one region per image).

    Also a ``collate_fn`` for a :class:`~torch.utils.data.DataLoader` whose images carry
    different numbers of objects: ``DataLoader(ds, batch_size=32, collate_fn=collate)``.

    Args:
        samples: ``(image, target)`` pairs; target an int or a detection-style dict.
        indices: the samples' dataset positions (default ``0..N-1``).
        num_classes: if given, every label must lie in ``[0, num_classes)``.
        names: a description per sample for error messages (e.g. its file).

    Raises:
        InvalidInputError: a bad image, label, box or mask, or images of different sizes;
            the message names the sample.

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> box = tv_tensors.BoundingBoxes([[1, 1, 3, 4]], format="XYXY", canvas_size=(8, 8))
        >>> b = collate([(torch.zeros(3, 8, 8), {"labels": torch.tensor([2]), "boxes": box})])
        >>> b.labels.tolist(), b.boxes.tolist()
        ([2], [[1.0, 1.0, 3.0, 4.0]])
    """
    if not len(samples):
        raise InvalidInputError("collate got no samples; a batch needs at least one.")
    positions = list(range(len(samples))) if indices is None else [int(i) for i in indices]
    where = [_where(p, None if names is None else names[k]) for k, p in enumerate(positions)]
    regions = []
    for k, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise InvalidInputError(
                f"{where[k]}: an item must be an (image, target) pair; got {type(sample).__name__}."
            )
        regions.append(region(sample[0], sample[1], where[k], num_classes))
    return _stack(regions, positions, where)


def _where(index: int, name: str | None) -> str:
    return f"sample {index}" + (f" ({name})" if name else "")


def _stack(regions: list[Region], positions: list[int], where: list[str]) -> Batch:
    first = regions[0].image.shape
    for k, r in enumerate(regions):
        if r.image.shape != first:
            raise InvalidInputError(
                f"{where[k]}: the image is {tuple(r.image.shape)} but {where[0]} is "
                f"{tuple(first)}; images in one batch must share their size (add "
                "torchvision.transforms.v2.Resize to the dataset's transforms)."
            )
    images = torch.stack([r.image for r in regions])
    canvas = (int(first[-2]), int(first[-1]))
    boxes = masks = None
    if all(r.box is not None for r in regions):
        stacked = torch.stack([r.box for r in regions if r.box is not None])
        boxes = tv_tensors.BoundingBoxes(stacked, format="XYXY", canvas_size=canvas)
    if all(r.mask is not None for r in regions):
        masks = tv_tensors.Mask(torch.stack([r.mask for r in regions if r.mask is not None]))
    return Batch(
        images=images,
        labels=torch.tensor([r.label for r in regions], dtype=torch.long),
        boxes=boxes,
        masks=masks,
        indices=torch.tensor(positions, dtype=torch.long),
    )


def iter_batches(
    source: Dataset[Any] | DataLoader[Any] | Iterable[Any],
    *,
    batch_size: int = 32,
    num_classes: int | None = None,
    need: Sequence[str] = (),
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Stream :class:`Batch` objects from a dataset, a DataLoader or ready batches.

    A map-style ``Dataset`` of ``(image, target)`` items is read in order, ``batch_size``
    items at a time; a ``DataLoader`` or an iterable yields its own batches: each a
    :class:`Batch` (e.g. from ``collate_fn=collate``) or ``(images, targets)`` with
    ``targets`` a label tensor, a dict of ``(N, ...)`` tensors (``"labels"``, ``"boxes"``,
    ``"masks"``) or a sequence of per-image targets. The one-region rule is in the module doc.

    Args:
        source: the data.
        batch_size: items per batch, for a ``Dataset``.
        num_classes: if given, every label must lie in ``[0, num_classes)``.
        need: ``"boxes"`` and/or ``"masks"``: every batch must carry them.
        device: move each batch there.

    Raises:
        InvalidInputError: an empty source, a bad sample (the message names its index and,
            when known, its file), or a region in ``need`` the data does not carry.

    Example:
        >>> import torch
        >>> ds = torch.utils.data.TensorDataset(torch.zeros(5, 3, 8, 8), torch.arange(5) % 2)
        >>> [b.labels.tolist() for b in iter_batches(ds, batch_size=2)]
        [[0, 1], [0, 1], [0]]
    """
    wanted = _check_args(batch_size, need)  # checked now, not at the first next()
    if isinstance(source, Dataset) and not isinstance(source, torch.utils.data.IterableDataset):
        stream = _from_dataset(source, batch_size, num_classes)
    elif isinstance(source, Iterable):
        stream = _from_batches(source, num_classes)
    else:
        raise InvalidInputError(
            f"iter_batches needs a Dataset, a DataLoader or an iterable of batches; got "
            f"{type(source).__name__}."
        )
    return _checked(stream, wanted, source, device)


def _checked(
    stream: Iterator[Batch], wanted: tuple[str, ...], source: object, device: Any
) -> Iterator[Batch]:
    seen = 0
    for batch in stream:
        _check_needs(batch, wanted, source)
        seen += len(batch)
        yield batch.to(device)
    if seen == 0:
        raise InvalidInputError(
            f"the {type(source).__name__} yielded no images; an audit needs at least one "
            "(check the folder, the split file or the annotation file)."
        )


def _check_args(batch_size: int, need: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int; got {batch_size!r}.")
    wanted = (need,) if isinstance(need, str) else tuple(need)
    unknown = [n for n in wanted if n not in _NEEDS]
    if unknown:
        raise InvalidInputError(f"need may hold 'boxes' and 'masks'; got {unknown}.")
    return wanted


def _check_needs(batch: Batch, wanted: tuple[str, ...], source: object) -> None:
    for key in wanted:
        if getattr(batch, key) is None:
            first = int(batch.indices[0]) if len(batch) else 0
            fix = {
                "masks": "read a segmentation layout (voc_segmentation, or COCO annotations "
                "with a 'segmentation'), or run only box checks",
                "boxes": "read a detection layout (voc_detection, coco_detection, "
                "image_folder_with_boxes) or give targets with 'boxes'",
            }[key]
            raise InvalidInputError(
                f"a check needs {key}, but the {type(source).__name__} yields none (in the "
                f"batch from sample {first}); {fix}."
            )


def _from_dataset(
    dataset: Dataset[Any], batch_size: int, num_classes: int | None
) -> Iterator[Batch]:
    total = count(dataset)
    if total is None:
        raise InvalidInputError(
            f"the {type(dataset).__name__} has no len(); give iter_batches a DataLoader over it."
        )
    for start in range(0, total, batch_size):
        positions = list(range(start, min(start + batch_size, total)))
        names = [_file_of(dataset, i) for i in positions]
        items = [dataset[i] for i in positions]
        yield collate(items, indices=positions, num_classes=num_classes, names=names)


def _file_of(dataset: object, index: int) -> str | None:
    """The file a sample came from, when the dataset says (our readers, ImageFolder, VOC)."""
    for attribute in ("files", "samples", "images"):
        entries = getattr(dataset, attribute, None)
        if isinstance(entries, Sequence) and 0 <= index < len(entries):
            entry = entries[index]
            entry = entry[0] if isinstance(entry, tuple) and entry else entry
            return str(entry) if isinstance(entry, str) else None
    return None


def _from_batches(source: Iterable[Any], num_classes: int | None) -> Iterator[Batch]:
    offset = 0
    iterator = iter(source)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except RuntimeError as err:
            if isinstance(source, DataLoader) and "stack" in str(err):
                raise InvalidInputError(
                    f"the DataLoader could not collate a batch ({err}); images with different "
                    "numbers of objects cannot be stacked: pass collate_fn=modelaudit.data."
                    "collate to the DataLoader."
                ) from err
            raise
        batch = _ready_batch(item, offset, num_classes)
        offset += len(batch)
        yield batch


def _ready_batch(item: Any, offset: int, num_classes: int | None) -> Batch:
    """One yielded batch as a :class:`Batch` whose indices continue the stream."""
    if isinstance(item, Batch):
        for k, value in enumerate(item.labels.tolist()):
            as_label(value, f"sample {offset + k}", num_classes)
        return Batch(
            images=item.images,
            labels=item.labels,
            boxes=item.boxes,
            masks=item.masks,
            indices=torch.arange(offset, offset + len(item)),
        )
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InvalidInputError(
            f"batch at sample {offset}: expected a Batch or an (images, targets) pair; got "
            f"{type(item).__name__}."
        )
    images, targets = item
    if (isinstance(images, torch.Tensor) and images.ndim == 4) or isinstance(images, (tuple, list)):
        image_list = list(images)
    else:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InvalidInputError(
            f"batch at sample {offset}: images are {shape}, expected (N, C, H, W) or a list "
            "(an iterable of single samples: wrap it in DataLoader(..., batch_size=32, "
            "collate_fn=modelaudit.data.collate))."
        )
    per_image = _split_targets(targets, len(image_list), offset)
    positions = list(range(offset, offset + len(image_list)))
    return collate(list(zip(image_list, per_image)), indices=positions, num_classes=num_classes)


def _split_targets(targets: Any, n: int, offset: int) -> list[Any]:
    """Per-image targets from a label tensor, a dict of batched tensors or a sequence."""
    if isinstance(targets, torch.Tensor):
        per = list(targets.reshape(-1))
    elif isinstance(targets, dict):
        if "labels" not in targets:
            raise InvalidInputError(
                f"batch at sample {offset}: the targets dict has no 'labels' "
                f"(keys: {sorted(targets)})."
            )
        per = [
            {key: _one(value, k) for key, value in targets.items() if key in ("labels", *_NEEDS)}
            for k in range(n)
        ]
    elif isinstance(targets, (tuple, list)):
        per = list(targets)
    else:
        raise InvalidInputError(
            f"batch at sample {offset}: targets of type {type(targets).__name__}; expected a "
            "label tensor, a dict of tensors or a list of per-image targets."
        )
    if len(per) != n:
        raise InvalidInputError(f"batch at sample {offset}: {n} images but {len(per)} targets.")
    return per


def _one(value: Any, k: int) -> Any:
    """Image ``k``'s part of a batched target value (its objects, or its one object)."""
    if isinstance(value, tv_tensors.BoundingBoxes):
        return tv_tensors.wrap(value.as_subclass(torch.Tensor)[k], like=value)
    return torch.as_tensor(value)[k]


def count(source: object) -> int | None:
    """The number of images ``source`` yields, or ``None`` when it cannot be known upfront.

    For a progress bar with an ETA: a sized Dataset gives ``len``; a DataLoader over one,
    the length of its sampler (less the dropped last batch); an iterable of batches,
    ``None`` unless it is a list or tuple of them.

    Example:
        >>> import torch
        >>> ds = torch.utils.data.TensorDataset(torch.zeros(10, 3, 4, 4), torch.zeros(10))
        >>> count(ds), count(torch.utils.data.DataLoader(ds, batch_size=4, drop_last=True))
        (10, 8)
    """
    if isinstance(source, DataLoader):
        if source.batch_size is None or isinstance(
            source.dataset, torch.utils.data.IterableDataset
        ):
            return None
        try:
            n = len(source.sampler)  # type: ignore[arg-type]
        except TypeError:
            return None
        return n - n % source.batch_size if source.drop_last else n
    if isinstance(source, Dataset):
        try:
            return len(source)  # type: ignore[arg-type]
        except TypeError:
            return None
    if isinstance(source, (list, tuple)):
        total = 0
        for item in source:
            first = item.images if isinstance(item, Batch) else item[0]
            total += len(first)
        return total
    return None
