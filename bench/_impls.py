"""The implementations the benches compare: ours, the peers, and a plain reference.

Every adapter takes ``(model, x, target, layer)`` with ``target`` a ``(N,)`` long tensor
(or ``(N, K)`` for the ``*_multi`` helpers) and ``layer`` a qualified module name, and
returns final maps ``(N, H, W)`` (``(N, K, H, W)``) under the shared conventions of
:func:`_common.finish_maps` (ReLU, bilinear ``align_corners=False``, per-map min-max).
Peers' own code is called through their public API only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from _common import finish_maps
from torch import nn

METHODS = ("gradcam", "gradcam_pp", "layercam", "scorecam")
PEERS = ("pytorch-grad-cam", "torchcam", "captum")

# Which peer implements which method (Captum has only Grad-CAM in this family).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "ours": METHODS,
    "pytorch-grad-cam": METHODS,
    "torchcam": METHODS,
    "captum": ("gradcam",),
}

Adapter = Callable[[nn.Module, torch.Tensor, torch.Tensor, str], torch.Tensor]


# --------------------------------------------------------------------------- models


def resnet(name: str = "resnet50", seed: int = 0) -> nn.Module:
    """A torchvision ResNet with random weights drawn from ``seed``, in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    return model.eval()


def images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def top_classes(model: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    with torch.no_grad():
        return model(x).topk(k, dim=1).indices


def module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


# --------------------------------------------------------------------------- forward / floor


def forward_nograd(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def layer_grad(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The floor: a no-grad trunk, a graph only above ``layer``, d score / d activation.

    A forward hook turns grad mode on at the layer and hands the rest of the network a
    clone of a fresh leaf; ``torch.autograd.grad`` differentiates back to that leaf only;
    parameters stop requiring grad for the call (so autograd saves nothing for them).
    ``target`` is ``(N,)`` (one backward) or ``(N, K)`` (K backwards, batched).
    Returns the activation ``A`` and the gradient (``(N, C, h, w)`` or ``(K, N, C, h, w)``).
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> torch.Tensor:
        torch.set_grad_enabled(True)
        leaf = out.detach().requires_grad_(True)
        store["a"] = leaf
        return leaf.clone()

    params = [q for q in model.parameters() if q.requires_grad]
    for q in params:  # no weight gradient is wanted: autograd then saves no conv inputs
        q.requires_grad_(False)
    handle = module(model, layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(x)
            if target.ndim == 1:
                score = out.gather(1, target.view(-1, 1)).sum()
                (g,) = torch.autograd.grad(score, store["a"])
            else:
                k = target.shape[1]
                picked = out.gather(1, target)  # (N, K)
                eye = torch.eye(k, dtype=out.dtype).view(k, 1, k).expand(k, out.shape[0], k)
                (g,) = torch.autograd.grad(picked, store["a"], eye, is_grads_batched=True)
    finally:
        handle.remove()
        for q in params:
            q.requires_grad_(True)
    return store["a"].detach(), g


def reference_cam(method: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Textbook CAM formulas from activation ``a`` and gradient ``g`` (raw, native size)."""
    if method == "gradcam":
        return (g.mean((-2, -1), keepdim=True) * a).sum(-3)
    if method == "layercam":
        return (g.clamp(min=0) * a).sum(-3)
    if method == "gradcam_pp":  # Chattopadhay et al. eq. 19 (exp-score closed form)
        g2 = g * g
        g3 = g2 * g
        denom = 2 * g2 + a.sum((-2, -1), keepdim=True) * g3
        alpha = torch.where(g2 > 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
        w = (alpha * g.clamp(min=0)).sum((-2, -1), keepdim=True)
        return (w * a).sum(-3)
    raise ValueError(method)


def reference(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> torch.Tensor:
    a, g = layer_grad(model, x, target, layer)
    raw = reference_cam(method, a, g)
    if raw.ndim == 4:  # (K, N, h, w) -> (N, K, h, w)
        raw = raw.transpose(0, 1)
    return finish_maps(raw, (x.shape[-2], x.shape[-1]))


# --------------------------------------------------------------------------- ours


def ours_fn(method: str) -> Callable[..., torch.Tensor] | None:
    try:
        import modelaudit as ma
    except Exception:
        return None
    fn = getattr(ma, method, None)
    return fn if callable(fn) else None


def ours_status(method: str) -> str | None:
    """``None`` when ``ma.<method>`` works on a tiny conv net, else why not."""
    fn = ours_fn(method)
    if fn is None:
        return f"modelaudit has no `{method}` yet"
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    try:
        out = fn(net, torch.rand(2, 3, 8, 8), target=torch.tensor([0, 1]), layer="1")
    except Exception as exc:  # report, never crash the bench
        return f"ma.{method} raised {type(exc).__name__}: {exc}"
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 8, 8):
        return f"ma.{method} returned {type(out).__name__} {getattr(out, 'shape', '')}"
    return None


def fast_scorecam_kwarg() -> str | None:
    """Name of ``ma.scorecam``'s fast-mode option (top-k channels), if it has one."""
    fn = ours_fn("scorecam")
    if fn is None:
        return None
    params = inspect.signature(fn).parameters
    for name in ("top_k", "topk", "max_channels", "channels", "k"):
        if name in params:
            return name
    return None


def ours(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str, **kw: Any
) -> torch.Tensor:
    fn = ours_fn(method)
    assert fn is not None
    return fn(model, x, target=target, layer=layer, **kw)


# --------------------------------------------------------------------------- peers


def _quiet_tqdm() -> None:
    """pytorch-grad-cam's Score-CAM draws a progress bar per image: turn tqdm off."""
    import functools

    import tqdm

    if not getattr(tqdm.tqdm, "_bench_quiet", False):
        tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)  # type: ignore[method-assign]
        tqdm.tqdm._bench_quiet = True  # type: ignore[attr-defined]


def pytorch_grad_cam(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> torch.Tensor:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _quiet_tqdm()

    cls = {
        "gradcam": pgc.GradCAM,
        "gradcam_pp": pgc.GradCAMPlusPlus,
        "layercam": pgc.LayerCAM,
        "scorecam": pgc.ScoreCAM,
    }[method]
    targets = [ClassifierOutputTarget(int(t)) for t in target]
    cam = cls(model=model, target_layers=[module(model, layer)])
    try:
        out = cam(input_tensor=x, targets=targets)
    finally:
        cam.activations_and_grads.release()
    # pytorch-grad-cam normalises before resizing (cv2, half-pixel centres) and again after;
    # min-max commutes with bilinear resizing, so this equals our ReLU -> resize -> min-max.
    return torch.from_numpy(out)


def torchcam(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> torch.Tensor:
    from torchcam import methods as tcm

    cls = {
        "gradcam": tcm.GradCAM,
        "gradcam_pp": tcm.GradCAMpp,
        "layercam": tcm.LayerCAM,
        "scorecam": tcm.ScoreCAM,
    }[method]
    idx = [int(t) for t in target]
    with cls(model, layer) as extractor:
        if method == "scorecam":
            with torch.no_grad():
                model(x)
            cams = extractor(class_idx=idx, normalized=False)
        else:
            scores = model(x)
            cams = extractor(class_idx=idx, scores=scores, normalized=False)
    return finish_maps(cams[0], (x.shape[-2], x.shape[-1]))


def captum(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> torch.Tensor:
    from captum.attr import LayerGradCam

    assert method == "gradcam"
    attr = LayerGradCam(model, module(model, layer)).attribute(
        x, target=target, relu_attributions=True
    )
    return finish_maps(attr[:, 0], (x.shape[-2], x.shape[-1]))


PEER_FNS: dict[str, Callable[..., torch.Tensor]] = {
    "pytorch-grad-cam": pytorch_grad_cam,
    "torchcam": torchcam,
    "captum": captum,
}


def peer_status(peer: str) -> str | None:
    mod = {"pytorch-grad-cam": "pytorch_grad_cam", "torchcam": "torchcam", "captum": "captum"}[peer]
    try:
        __import__(mod)
    except Exception as exc:
        return f"{peer} cannot be imported: {type(exc).__name__}: {exc}"
    return None


def run(
    impl: str, method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str
) -> torch.Tensor:
    """Maps from one implementation; ``target`` (N,) -> (N, H, W)."""
    if impl == "ours":
        return ours(method, model, x, target, layer)
    if impl == "reference":
        return reference(method, model, x, target, layer)
    return PEER_FNS[impl](method, model, x, target, layer)


def run_multi(
    impl: str, method: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: str
) -> torch.Tensor:
    """Maps for ``targets`` (N, K) -> (N, K, H, W): ours and the reference in one call,
    the peers one pass per class (their APIs take one class per sample)."""
    if impl in ("ours", "reference"):
        return run(impl, method, model, x, targets, layer)
    per_class = [
        PEER_FNS[impl](method, model, x, targets[:, k].contiguous(), layer)
        for k in range(targets.shape[1])
    ]
    return torch.stack(per_class, dim=1)


def clear_param_grads(model: nn.Module) -> None:
    """Peers that call ``backward`` leave ``.grad`` on parameters; drop it between runs."""
    for p in model.parameters():
        p.grad = None
