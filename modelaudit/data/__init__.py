"""Datasets on disk and streams of batches: readers for standard annotation formats.

- :mod:`~modelaudit.data.batches`: :class:`Batch` (images, labels, one box and mask per
  image as tv_tensors, dataset indices) and :func:`iter_batches`, which streams them from a
  Dataset, a DataLoader or ready batches; :func:`collate` as a DataLoader ``collate_fn``;
  :func:`count` for a progress bar.
- :mod:`~modelaudit.data.formats`: readers for Pascal VOC (detection, segmentation), COCO
  and an ImageFolder plus a boxes file, returning :class:`AnnotatedDataset`.

Example:
    >>> import tempfile
    >>> from modelaudit.data import iter_batches, voc_detection
    >>> from modelaudit.zoo.on_disk import write_voc
    >>> root = tempfile.mkdtemp()
    >>> truth = write_voc(root, n=6, seed=0)
    >>> ds = voc_detection(root, classes=truth.class_names)
    >>> [len(b) for b in iter_batches(ds, batch_size=4, num_classes=4, need=("boxes",))]
    [4, 2]
"""

from modelaudit.data.batches import Batch, collate, count, iter_batches
from modelaudit.data.formats import (
    LAYOUTS,
    VOC_CLASSES,
    AnnotatedDataset,
    coco_detection,
    image_folder_with_boxes,
    parse_layout,
    read_dataset,
    voc_detection,
    voc_segmentation,
)

__all__ = [
    "LAYOUTS",
    "VOC_CLASSES",
    "AnnotatedDataset",
    "Batch",
    "coco_detection",
    "collate",
    "count",
    "image_folder_with_boxes",
    "iter_batches",
    "parse_layout",
    "read_dataset",
    "voc_detection",
    "voc_segmentation",
]
