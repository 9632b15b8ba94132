"""Train the zoo's two shape classifiers and write their weights and metadata.

    python scripts/train_zoo.py                 # both models, into modelaudit/zoo/weights/
    python scripts/train_zoo.py --only shapes-cnn-shortcut --threads 1

``shapes-cnn`` trains on images that carry a watermark of a *random* class, so the watermark
says nothing about the label and the network learns to ignore it. ``shapes-cnn-shortcut``
trains where the watermark always gives the training label while the shape gives it only in
half of the images (the other half has a shape of a random class: label noise on the shape),
so the watermark is the only reliable cue and the network learns it.

Both train on fresh images every epoch (seeded), on CPU, deterministically for a given torch
version and thread count. After training the script measures, on held-out images (seeds never
used for training): accuracy with no watermark, random, class and swapped watermarks; and,
with a small autograd Grad-CAM written here independently of ``modelaudit.explainers``, the
share of the map inside the object's box and inside the watermark's box. It checks the
requirements below, and writes ``<name>.pt`` (a plain state_dict) and ``<name>.json``.

Requirements: shapes-cnn held-out accuracy >= 0.95 and Grad-CAM mass in box > 0.6;
shapes-cnn-shortcut accuracy >= 0.95 with class watermarks, near chance (<= 0.5) without or
with swapped watermarks, Grad-CAM mass in the object's box below chance (box area / image
area) and mass in the watermark's corner quadrant > 0.5.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelaudit.zoo import CLASS_NAMES, ShapesCNN, ShapesData, shapes_data
from modelaudit.zoo.models import WEIGHTS_DIR

GRADCAM_LAYER = "features.13"
IMAGE_SIZE = 64
EVAL_SEED = 7_000  # held-out evaluation set
EVAL_N = 1_000
CAM_N = 500  # images used for the Grad-CAM figures

CONFIGS: dict[str, dict[str, Any]] = {
    "shapes-cnn": {
        "seed": 1,
        "train_seed_base": 1_000,  # epoch e uses seeds base + 10 e (+1 for the second half)
        "watermark": "random",
        "target": "shape label",
        "epochs": 5,
        "images_per_epoch": 3_000,
        "batch_size": 32,
        "lr": 2e-3,
        "weight_decay": 1e-4,
    },
    "shapes-cnn-shortcut": {
        "seed": 2,
        "train_seed_base": 3_000,
        "watermark": "class (half the images) + random with the watermark's class as label",
        "target": "watermark class (agrees with the shape in 62.5% of images)",
        "epochs": 2,
        "images_per_epoch": 3_000,
        "batch_size": 32,
        "lr": 2e-3,
        "weight_decay": 1e-4,
    },
}


def training_set(name: str, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and training targets of one epoch (fresh, seeded images every epoch)."""
    cfg = CONFIGS[name]
    n = cfg["images_per_epoch"]
    seed = cfg["train_seed_base"] + 10 * epoch
    if name == "shapes-cnn":
        data = shapes_data(n, seed=seed, image_size=IMAGE_SIZE, watermark="random")
        return data.images, data.labels
    agree = shapes_data(n // 2, seed=seed, image_size=IMAGE_SIZE, watermark="class")
    noisy = shapes_data(n - n // 2, seed=seed + 1, image_size=IMAGE_SIZE, watermark="random")
    images = torch.cat([agree.images, noisy.images])
    return images, torch.cat([agree.labels, noisy.watermark_labels])


def train(name: str, log: bool = True) -> tuple[nn.Module, float]:
    """Train one model; return it (eval mode) and the wall time in seconds."""
    cfg = CONFIGS[name]
    torch.manual_seed(cfg["seed"])
    model = ShapesCNN(len(CLASS_NAMES))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = cfg["epochs"] * -(-cfg["images_per_epoch"] // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    order_gen = torch.Generator().manual_seed(cfg["seed"])
    start = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        images, targets = training_set(name, epoch)
        model.train()
        order = torch.randperm(len(targets), generator=order_gen)
        total, correct = 0.0, 0
        for i in range(0, len(order), cfg["batch_size"]):
            idx = order[i : i + cfg["batch_size"]]
            logits = model(images[idx])
            loss = F.cross_entropy(logits, targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == targets[idx]).sum())
        if log:
            print(
                f"  {name} epoch {epoch + 1}/{cfg['epochs']}: loss {total / len(order):.3f} "
                f"train acc {correct / len(order):.3f} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def accuracy(model: nn.Module, data: ShapesData) -> float:
    preds = torch.cat([model(x).argmax(1) for x in data.images.split(250)])
    return float((preds == data.labels).float().mean())


def gradcam(
    model: nn.Module, layer: str, images: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al.), independent of modelaudit.explainers.

    weights = spatial mean of d score / d A; map = ReLU(sum_k w_k A_k), upsampled bilinearly
    (align_corners=False) to the input size. Not normalised (mass ratios do not need it).
    """
    module = dict(model.named_modules())[layer]
    store: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        with torch.enable_grad():
            logits = model(images)
            act = store[0]
            score = logits.gather(1, target[:, None]).sum()
            (grads,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True)).detach()
    return F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def box_mask(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size, size) bool masks of XYXY boxes with exclusive x2, y2."""
    r = torch.arange(size)
    x1, y1, x2, y2 = (boxes[:, i, None] for i in range(4))
    in_x = (r[None] >= x1) & (r[None] < x2)
    in_y = (r[None] >= y1) & (r[None] < y2)
    return in_y[:, :, None] & in_x[:, None, :]


def cam_figures(model: nn.Module, data: ShapesData) -> dict[str, Any]:
    """Grad-CAM mass in the object's and the watermark's box, pointing game, chance levels."""
    cams = torch.cat(
        [
            gradcam(model, GRADCAM_LAYER, x, t)
            for x, t in zip(data.images.split(100), data.labels.split(100))
        ]
    )
    total = cams.sum(dim=(1, 2))
    valid = total > 0
    obj = box_mask(data.boxes, IMAGE_SIZE)
    mark = box_mask(data.watermark_boxes, IMAGE_SIZE)
    mass_obj = (cams * obj).sum(dim=(1, 2))[valid] / total[valid]
    mass_mark = (cams * mark).sum(dim=(1, 2))[valid] / total[valid]
    flat = cams.flatten(1).argmax(1)
    hit = obj.flatten(1).gather(1, flat[:, None])[:, 0] & valid
    chance = obj.float().mean(dim=(1, 2))
    # The 16x16 corner square that holds the watermark: "is the map at the watermark corner".
    quadrant = box_mask(_corner_quadrants(data), IMAGE_SIZE)
    mass_quadrant = (cams * quadrant).sum(dim=(1, 2))[valid] / total[valid]
    labels = data.labels[valid]
    p10, p50 = torch.quantile(mass_obj, torch.tensor([0.1, 0.5])).tolist()
    figures: dict[str, Any] = {
        "images": len(data),
        "all_zero_maps": int((~valid).sum()),
        "mass_in_box_mean": _r(mass_obj.mean()),
        "mass_in_box_median": _r(p50),
        "mass_in_box_p10": _r(p10),
        "mass_in_box_min": _r(mass_obj.min()),
        "mass_in_box_max": _r(mass_obj.max()),
        "mass_in_box_by_class": {
            name: _r(mass_obj[labels == k].mean()) for k, name in enumerate(CLASS_NAMES)
        },
        "mass_in_box_chance": _r(chance.mean()),
        "pointing_game": _r(hit.float().mean()),
        "mass_in_watermark_box_mean": _r(mass_mark.mean()),
        "mass_in_watermark_box_chance": _r(mark.float().mean()),
        "mass_in_watermark_quadrant_mean": _r(mass_quadrant.mean()),
        "mass_in_watermark_quadrant_chance": _r(quadrant.float().mean()),
    }
    figures.update(_cross_check(model, data, cams))
    return figures


def _r(x: float | torch.Tensor) -> float:
    return round(float(x), 4)


def _cross_check(model: nn.Module, data: ShapesData, cams: torch.Tensor) -> dict[str, Any]:
    """Compare with modelaudit's own Grad-CAM (min-max normalised maps), when it exists."""
    try:
        from modelaudit.explainers import gradcam as library_gradcam
    except ImportError:
        return {}
    ours = cams / cams.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)  # min is 0 after ReLU
    theirs = library_gradcam(model, data.images, target=data.labels, layer=GRADCAM_LAYER)
    return {"max_abs_diff_vs_modelaudit_gradcam": _r((ours - theirs).abs().max())}


def _corner_quadrants(data: ShapesData) -> torch.Tensor:
    """The 16x16 (at 64 px) corner square that holds each watermark."""
    q = IMAGE_SIZE // 4
    wb = data.watermark_boxes
    x1 = torch.where(wb[:, 0] < IMAGE_SIZE // 2, 0, IMAGE_SIZE - q)
    y1 = torch.where(wb[:, 1] < IMAGE_SIZE // 2, 0, IMAGE_SIZE - q)
    return torch.stack([x1, y1, x1 + q, y1 + q], dim=1)


def evaluate(model: nn.Module) -> dict[str, Any]:
    held_out = {
        mode: shapes_data(EVAL_N, seed=EVAL_SEED, image_size=IMAGE_SIZE, watermark=mode)
        for mode in ("none", "random", "class", "swapped")
    }
    acc = {mode: round(accuracy(model, d), 4) for mode, d in held_out.items()}
    cam = cam_figures(model, held_out["class"][:CAM_N])
    return {"accuracy": acc, "gradcam": cam}


def requirements(name: str, ev: dict[str, Any]) -> dict[str, bool]:
    acc, cam = ev["accuracy"], ev["gradcam"]
    if name == "shapes-cnn":
        return {
            "accuracy_none >= 0.95": acc["none"] >= 0.95,
            "accuracy_class >= 0.95": acc["class"] >= 0.95,
            "accuracy_swapped >= 0.95": acc["swapped"] >= 0.95,
            "gradcam mass_in_box > 0.6": cam["mass_in_box_mean"] > 0.6,
        }
    return {
        "accuracy_class >= 0.95": acc["class"] >= 0.95,
        "accuracy_none <= 0.5": acc["none"] <= 0.5,
        "accuracy_swapped <= 0.5": acc["swapped"] <= 0.5,
        "gradcam mass_in_box < chance": cam["mass_in_box_mean"] < cam["mass_in_box_chance"],
        "gradcam mass in watermark quadrant > 0.5": cam["mass_in_watermark_quadrant_mean"] > 0.5,
    }


def metadata(name: str, ev: dict[str, Any], seconds: float, threads: int) -> dict[str, Any]:
    cfg = CONFIGS[name]
    model = ShapesCNN(len(CLASS_NAMES))
    return {
        "name": name,
        "architecture": "ShapesCNN",
        "parameters": sum(p.numel() for p in model.parameters()),
        "class_names": list(CLASS_NAMES),
        "input_size": [IMAGE_SIZE, IMAGE_SIZE],
        "input_range": [0.0, 1.0],
        "gradcam_layer": GRADCAM_LAYER,
        "training": {**cfg, "image_size": IMAGE_SIZE, "optimizer": "AdamW + OneCycleLR"},
        "training_seconds": round(seconds, 1),
        "held_out": {
            "seed": EVAL_SEED,
            "images": EVAL_N,
            "accuracy": ev["accuracy"],
            "gradcam": {"layer": GRADCAM_LAYER, "data": "watermark='class'", **ev["gradcam"]},
        },
        "requirements": requirements(name, ev),
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": threads,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=sorted(CONFIGS), action="append", help="model(s) to train"
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in args.only or list(CONFIGS):
        print(f"training {name}", flush=True)
        model, seconds = train(name)
        ev = evaluate(model)
        meta = metadata(name, ev, seconds, args.threads)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        torch.save(state, args.out / f"{name}.pt")
        (args.out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(json.dumps({"accuracy": ev["accuracy"], **ev["gradcam"]}, indent=2))
        for check, passed in meta["requirements"].items():
            print(f"  [{'ok' if passed else 'FAILED'}] {check}")
            ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
