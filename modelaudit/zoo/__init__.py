"""The zoo: synthetic shape images with ground-truth boxes, and models to audit.

Use it as ``from modelaudit import zoo`` (the top-level package does not re-export it).

Example:
    >>> from modelaudit import zoo
    >>> data = zoo.audit_data(4)
    >>> model = zoo.load_model("shapes-cnn")
    >>> model(data.images).shape
    torch.Size([4, 4])
"""

from modelaudit.zoo.data import (
    AUDIT_SEED,
    CLASS_NAMES,
    WATERMARK_COLORS,
    ShapesData,
    WatermarkMode,
    audit_data,
    shapes_data,
)
from modelaudit.zoo.dataset import ShapesDataset
from modelaudit.zoo.models import (
    WEIGHTS_DIR,
    ShapesCNN,
    available_models,
    load_model,
    model_info,
)
from modelaudit.zoo.on_disk import write_coco, write_image_folder, write_voc, write_voc_segmentation

__all__ = [
    "AUDIT_SEED",
    "CLASS_NAMES",
    "WATERMARK_COLORS",
    "WEIGHTS_DIR",
    "ShapesCNN",
    "ShapesData",
    "ShapesDataset",
    "WatermarkMode",
    "audit_data",
    "available_models",
    "load_model",
    "model_info",
    "shapes_data",
    "write_coco",
    "write_image_folder",
    "write_voc",
    "write_voc_segmentation",
]
