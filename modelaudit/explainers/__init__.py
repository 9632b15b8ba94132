"""Explain: heat maps of what a vision model looks at, on one lean engine.

Every method has the same shape::

    maps = method(model, inputs, target=None, layer=None, *, reshape=None,
                  relu=True, normalize=True, upsample=True, **options)

and returns an :class:`Explanation`: detached float maps (N, H, W) — or (N, K, H, W) for K
targets per sample — on the inputs' device, ReLU'd and scaled to [0, 1] per map, that
remember their method, layer, targets and inputs. The shared options are declared once
(:mod:`~modelaudit.explainers.options`); a gradient method's size knob is ``pass_size``
(samples per forward and backward), a perturbation method's is ``forward_batch`` (masked
or ablated inputs per forward). Pick a method by name with :func:`explain`
(``explain("gradcam++", model, x)``) and add your own with :func:`register_method`. See
:mod:`modelaudit.explainers.engine` for what happens to the model during a call (nothing
that outlives it).

Example:
    >>> import torch, torch.nn as nn
    >>> from modelaudit.explainers import available_methods, gradcam
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    >>> maps = gradcam(net, torch.rand(4, 3, 32, 32), target=2)
    >>> maps.shape, bool(maps.min() >= 0), bool(maps.max() <= 1), maps.method, maps.layer
    (torch.Size([4, 32, 32]), True, True, 'gradcam', '1')
    >>> {"gradcam", "gradcam_pp", "scorecam", "ablationcam"} <= set(available_methods())
    True
"""

from modelaudit.explainers.ablation import ablationcam
from modelaudit.explainers.backprop import guided_backprop, guided_gradcam, input_gradients
from modelaudit.explainers.cam import cam
from modelaudit.explainers.eigen import eigencam, eigengradcam
from modelaudit.explainers.explanation import Explanation, explanation_of
from modelaudit.explainers.gradient_cams import (
    gradcam,
    gradcam_elementwise,
    gradcam_pp,
    hirescam,
    layercam,
    smooth_gradcam_pp,
    xgradcam,
)
from modelaudit.explainers.layer_choice import LayerChoice, choose_layer
from modelaudit.explainers.postprocess import normalize_maps, upsample_maps
from modelaudit.explainers.registry import (
    available_methods,
    explain,
    get_method,
    register_method,
    unregister_method,
)
from modelaudit.explainers.reshape import swin_reshape, vit_reshape
from modelaudit.explainers.score_cams import iscam, scorecam, sscam

__all__ = [
    "Explanation",
    "LayerChoice",
    "ablationcam",
    "available_methods",
    "cam",
    "choose_layer",
    "eigencam",
    "eigengradcam",
    "explain",
    "explanation_of",
    "get_method",
    "gradcam",
    "gradcam_elementwise",
    "gradcam_pp",
    "guided_backprop",
    "guided_gradcam",
    "hirescam",
    "input_gradients",
    "iscam",
    "layercam",
    "normalize_maps",
    "register_method",
    "scorecam",
    "smooth_gradcam_pp",
    "sscam",
    "swin_reshape",
    "unregister_method",
    "upsample_maps",
    "vit_reshape",
    "xgradcam",
]
