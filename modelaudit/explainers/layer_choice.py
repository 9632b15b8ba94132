"""Which layer(s) to explain: the user's choice, or a documented default.

``layer=`` takes anything :func:`modelaudit.hooks.layers.resolve_layers` accepts (a name
with suggestions on typos, a glob, a module, a class, a predicate, or a list of them).

``layer=None`` picks **the last module (in execution order) whose output is a 4-D
(N, C, h, w) feature map with h * w > 1 and that runs once per forward**, found by a probe
forward of the first sample. For torchvision models this is the conventional CAM layer:
``layer4`` of a ResNet, ``features`` of DenseNet / MobileNet / VGG / EfficientNet. A model
without any convolution gets a clear error: pass ``layer=`` (and ``reshape=`` for
transformers; the default never picks a token layer). Pass ``layer=`` explicitly to skip
the probe forward.

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers.layer_choice import select_layers
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> list(select_layers(net, torch.zeros(1, 3, 8, 8), None))
    ['1']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modelaudit.errors import LayerNotFoundError
from modelaudit.hooks.layers import LayerSpec, resolve_layers

__all__ = ["default_layer", "select_layers"]


def default_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """The qualified name of the default layer (see the module docstring).

    Raises:
        LayerNotFoundError: the model has no convolution, or no module returns a 4-D map.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        >>> default_layer(net, torch.zeros(1, 3, 8, 8))
        '1'
    """
    if not any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        raise LayerNotFoundError(
            f"{type(model).__name__} has no convolution layer, so there is no default layer "
            "to explain; pass layer= (a name from modelaudit.layer_names(model)) and, for "
            "transformers, reshape= (e.g. vit_reshape)."
        )
    finished: list[tuple[str, bool]] = []
    calls: dict[str, int] = {}

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, _a: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                finished.append((name, out.shape[-1] * out.shape[-2] > 1))

        return hook

    handles = [
        m.register_forward_hook(hook_for(n))
        for n, m in model.named_modules()
        if n and not isinstance(m, torch.jit.ScriptModule)  # no hooks on TorchScript
    ]
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for h in handles:
            h.remove()
    once = [(n, spatial) for n, spatial in finished if calls[n] == 1]
    for wanted in (True, False):
        for name, spatial in reversed(once):
            if spatial == wanted:
                return name
    raise LayerNotFoundError(
        f"no module of {type(model).__name__} returns a (N, C, H, W) feature map; pass layer= "
        "and, for token outputs, reshape=."
    )


def select_layers(
    model: nn.Module, inputs: torch.Tensor, layer: LayerSpec | None
) -> dict[str, nn.Module]:
    """Resolve ``layer`` (or the default) to ``{qualified name: module}`` in model order.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        >>> list(select_layers(net, torch.zeros(1, 3, 8, 8), nn.Conv2d))
        ['0', '2']
    """
    if layer is None:
        name = default_layer(model, inputs)
        return {name: dict(model.named_modules())[name]}
    return resolve_layers(model, layer)
