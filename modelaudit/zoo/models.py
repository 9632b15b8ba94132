"""The model zoo: two trained shape classifiers and randomly initialised torchvision networks.

========================  ===============================================================
name                      what it is
========================  ===============================================================
``shapes-cnn``            :class:`ShapesCNN` trained on shapes with *random* watermarks:
                          high accuracy, Grad-CAM on the object
``shapes-cnn-shortcut``   the same architecture trained where the watermark gives the
                          label: high accuracy on watermarked data by looking at the
                          watermark corner (the Clever-Hans case)
``resnet18``, ``vgg11``,  torchvision architectures with 4 outputs and random weights
``alexnet``,              drawn from a fixed seed (the same weights on every call with
``mobilenet_v3_small``    the same torch version): for structural audits
``vit-tiny``              a torchvision ``VisionTransformer`` for 64x64 inputs (8x8
                          patches, 4 layers, 3 heads, width 192), random weights
========================  ===============================================================

All models take ``(N, 3, H, W)`` float images in ``[0, 1]`` (no normalisation) and return
``(N, 4)`` logits over :data:`~modelaudit.zoo.CLASS_NAMES`. Trained weights are shipped in
``modelaudit/zoo/weights/<name>.pt`` (a plain ``state_dict``, loaded with
``torch.load(..., weights_only=True)``, so loading never runs code) next to
``<name>.json`` metadata written by ``scripts/train_zoo.py``.

Example:
    >>> from modelaudit import zoo
    >>> model = zoo.load_model("shapes-cnn")
    >>> model.training, zoo.model_info("shapes-cnn")["gradcam_layer"]
    (False, 'features.13')
"""

from __future__ import annotations

import difflib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from modelaudit.errors import InvalidInputError, ModelAuditError
from modelaudit.zoo.data import CLASS_NAMES

__all__ = [
    "WEIGHTS_DIR",
    "ShapesCNN",
    "available_models",
    "load_model",
    "model_info",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""Folder of the shipped weights (``<name>.pt``) and metadata (``<name>.json``)."""

TRAINED = ("shapes-cnn", "shapes-cnn-shortcut")
RANDOM_INIT_SEED = 0


class ShapesCNN(nn.Module):
    """A small CNN: four 3x3 conv-BatchNorm-ReLU blocks, global average pool, linear head.

    Layer names (stable; pass them as ``layer=``)::

        features.0   Conv2d(3, 16, 3, padding=1)    H x W
        features.1   BatchNorm2d(16)
        features.2   ReLU
        features.3   MaxPool2d(2)                   H/2 x W/2
        features.4   Conv2d(16, 32, 3, padding=1)
        features.5   BatchNorm2d(32)
        features.6   ReLU
        features.7   MaxPool2d(2)                   H/4 x W/4
        features.8   Conv2d(32, 64, 3, padding=1)
        features.9   BatchNorm2d(64)
        features.10  ReLU
        features.11  Conv2d(64, 64, 3, padding=1)   <- last conv
        features.12  BatchNorm2d(64)
        features.13  ReLU                           <- the Grad-CAM / CAM layer (64 x H/4 x W/4)
        pool         AdaptiveAvgPool2d(1)
        fc           Linear(64, num_classes)

    Convolutions have no bias (BatchNorm follows). About 61k parameters (250 KB). Any input
    of at least 4x4 pixels works; the zoo's weights were trained on 64x64 images in [0, 1].

    Example:
        >>> import torch
        >>> from modelaudit.zoo import ShapesCNN
        >>> ShapesCNN()(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 4])
    """

    def __init__(self, num_classes: int = len(CLASS_NAMES)) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]

        self.features = nn.Sequential(
            *block(3, 16),
            nn.MaxPool2d(2),
            *block(16, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            *block(64, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(N, num_classes)`` for images ``(N, 3, H, W)``."""
        return self.fc(self.pool(self.features(x)).flatten(1))


def _vit_tiny() -> nn.Module:
    return torchvision.models.VisionTransformer(
        image_size=64,
        patch_size=8,
        num_layers=4,
        num_heads=3,
        hidden_dim=192,
        mlp_dim=768,
        num_classes=len(CLASS_NAMES),
    )


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        ctor: Callable[..., nn.Module] = getattr(torchvision.models, name)
        return ctor(weights=None, num_classes=len(CLASS_NAMES))

    return build


def _any_size(layer: str, smallest: int) -> dict[str, Any]:
    return {"gradcam_layer": layer, "input_size": None, "min_input_size": smallest}


# name -> (constructor, static facts); trained models add their JSON metadata.
_REGISTRY: dict[str, tuple[Callable[[], nn.Module], dict[str, Any]]] = {
    "shapes-cnn": (
        ShapesCNN,
        {
            "description": "ShapesCNN trained on shapes with random watermarks (looks at the object)",
            "gradcam_layer": "features.13",
            "input_size": [64, 64],
            "min_input_size": 4,
        },
    ),
    "shapes-cnn-shortcut": (
        ShapesCNN,
        {
            "description": "ShapesCNN trained where the watermark gives the label (looks at it)",
            "gradcam_layer": "features.13",
            "input_size": [64, 64],
            "min_input_size": 4,
        },
    ),
    "resnet18": (_tv("resnet18"), _any_size("layer4", 1)),
    "vgg11": (_tv("vgg11"), _any_size("features.18", 32)),
    "alexnet": (_tv("alexnet"), _any_size("features.10", 63)),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small"), _any_size("features.12", 1)),
    "vit-tiny": (
        _vit_tiny,
        {
            "gradcam_layer": "encoder.layers.encoder_layer_3.ln_1",
            "input_size": [64, 64],
            "min_input_size": 64,
            "tokens": "1 class token then an 8x8 grid of patch tokens: (N, 65, 192)",
        },
    ),
}


def available_models() -> list[str]:
    """Names accepted by :func:`load_model`, trained models first.

    Example:
        >>> from modelaudit.zoo import available_models
        >>> available_models()[:2]
        ['shapes-cnn', 'shapes-cnn-shortcut']
    """
    return list(_REGISTRY)


def _check_name(name: object) -> str:
    if isinstance(name, str) and name in _REGISTRY:
        return name
    names = available_models()
    close = difflib.get_close_matches(str(name), names, n=len(names), cutoff=0.0)
    listing = ", ".join(repr(c) for c in close)
    raise InvalidInputError(f"unknown model {name!r}; available models (closest first): {listing}.")


def model_info(name: str) -> dict[str, Any]:
    """Facts about a zoo model: kind, layer for Grad-CAM, input size, classes, metrics.

    For trained models this adds the metadata JSON written by ``scripts/train_zoo.py``
    (held-out accuracies, Grad-CAM mass in box, seeds, data settings, training time).
    ``input_size`` is the size the model needs or was trained on (``None``: any size from
    ``min_input_size``, the smallest square input the forward pass accepts, in eval mode).

    Raises:
        InvalidInputError: ``name`` is not a zoo model (the message lists them, closest first).

    Example:
        >>> from modelaudit.zoo import model_info
        >>> info = model_info("resnet18")
        >>> info["kind"], info["gradcam_layer"], info["seed"]
        ('random-init', 'layer4', 0)
    """
    name = _check_name(name)
    _, facts = _REGISTRY[name]
    info: dict[str, Any] = {"name": name, "class_names": list(CLASS_NAMES), **facts}
    if name in TRAINED:
        info["kind"] = "trained"
        info["weights"] = str(WEIGHTS_DIR / f"{name}.pt")
        meta_path = WEIGHTS_DIR / f"{name}.json"
        if meta_path.is_file():
            info.update(json.loads(meta_path.read_text()))
    else:
        info["kind"] = "random-init"
        info["weights"] = None
        info["seed"] = RANDOM_INIT_SEED
    return info


def load_model(name: str, *, device: str | torch.device = "cpu") -> nn.Module:
    """Build a zoo model, load its weights and return it in eval mode on ``device``.

    The model's ``class_names`` attribute lists the zoo's classes (explanations carry them).

    Trained weights are read with ``torch.load(..., weights_only=True)``. Random-init models
    draw their weights from ``torch.manual_seed(0)`` inside a forked RNG, so the global random
    state is untouched and the weights are the same on every call.

    Args:
        name: one of :func:`available_models`.
        device: where to put the model.

    Raises:
        InvalidInputError: unknown ``name`` (the message lists the names, closest first) or
            a ``device`` torch does not know.
        ModelAuditError: the weights file of a trained model is missing, is not a plain
            state_dict (it is refused, never executed) or does not fit the architecture.

    Example:
        >>> import torch
        >>> from modelaudit.zoo import load_model
        >>> a, b = load_model("vit-tiny"), load_model("vit-tiny")
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    name = _check_name(name)
    try:
        target_device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"device {device!r} is not a torch device ({exc}).") from None
    build, _ = _REGISTRY[name]
    if name in TRAINED:
        model = build()
        path = WEIGHTS_DIR / f"{name}.pt"
        if not path.is_file():
            raise ModelAuditError(
                f"the weights of {name!r} are missing ({path}); recreate them with "
                "`python scripts/train_zoo.py`."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ModelAuditError(
                f"refusing to load {path}: it is not a plain tensor state_dict and loading it "
                f"would run code ({str(exc).splitlines()[0]}). Recreate it with "
                "`python scripts/train_zoo.py`."
            ) from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelAuditError(
                f"the weights file {path} does not fit {name!r} ({exc}); recreate it with "
                "`python scripts/train_zoo.py`."
            ) from None
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = build()
    object.__setattr__(model, "class_names", tuple(CLASS_NAMES))  # tiles name the classes
    return model.eval().to(target_device)
