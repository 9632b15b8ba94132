"""The study's models: what each one is trained on, how, and how it is verified.

A *clean* model trains on images whose cue (one of the five kinds, drawn per image) shows a
random class: the cue carries no label information. A *shortcut* model trains with one cue
kind that shows the label's class with probability ``agree`` (1.0 full, 0.85 partial), on
shapes that tell the label less reliably than the cue (``shape_agree``), so the cue is the
better signal. Before a model counts it is verified on 400 fresh images per cue kind:

- clean: accuracy >= 0.85 with the cue agreeing, and accuracy with the cue randomised
  within 0.05 of it (the cue is not used);
- shortcut: accuracy >= 0.75 with the cue agreeing and <= 0.45 (chance 0.25) with the cue
  randomised (the object alone does not carry it).

Anything else is "mixed" and is reported but not counted.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import CUES, make
from .models import ARCHS

TUNE_CUES = ("corner", "tint", "texture")
HELD_OUT_CUES = ("frame", "dots")
CONFIRM_CUES = ("bar", "frame", "dots", "corner", "tint", "texture")


@dataclass(frozen=True)
class Spec:
    name: str
    split: str  # "tune" or "held-out"
    arch: str
    size: int
    area: tuple[float, float]
    cue: str | None  # None: clean
    agree: float = 1.0
    seed: int = 1

    @property
    def shortcut(self) -> bool:
        return self.cue is not None

    def audit_cues(self) -> tuple[str, ...]:
        """The cue kinds this model is audited with."""
        if self.cue is not None:
            return (self.cue,)
        if self.split == "confirm":
            return CONFIRM_CUES
        return TUNE_CUES if self.split == "tune" else TUNE_CUES + HELD_OUT_CUES


def _s(
    name: str,
    split: str,
    arch: str,
    size: int,
    area: tuple[float, float],
    cue: str | None,
    agree: float = 1.0,
    seed: int = 1,
) -> Spec:
    return Spec(name, split, arch, size, area, cue, agree, seed)


MID, LARGE, SMALL = (0.08, 0.20), (0.15, 0.30), (0.04, 0.08)
SPECS = [
    # tuning split: small CNN and resnet18, 48 and 64 px, objects 8-30%, tune cues
    _s("t-cnn64-clean", "tune", "smallcnn", 64, MID, None),
    _s("t-cnn64-clean-seed2", "tune", "smallcnn", 64, MID, None, seed=2),
    _s("t-cnn64-corner", "tune", "smallcnn", 64, MID, "corner"),
    _s("t-cnn64-tint85", "tune", "smallcnn", 64, MID, "tint", 0.85),
    _s("t-cnn64-texture", "tune", "smallcnn", 64, MID, "texture"),
    _s("t-res64-clean", "tune", "resnet18", 64, MID, None),
    _s("t-res64-corner85", "tune", "resnet18", 64, MID, "corner", 0.85),
    _s("t-res64-tint", "tune", "resnet18", 64, MID, "tint"),
    _s("t-res64-texture", "tune", "resnet18", 64, MID, "texture"),
    _s("t-cnn48-clean", "tune", "smallcnn", 48, LARGE, None),
    _s("t-cnn48-corner", "tune", "smallcnn", 48, LARGE, "corner"),
    _s("t-cnn48-texture85", "tune", "smallcnn", 48, LARGE, "texture", 0.85),
    # held-out split: new cue kinds (frame, dots), new sizes (4-8% at 96/128 px, 20-30% at
    # 32 px) and an architecture never used for tuning (mobilenet_v3_small)
    _s("h-mob96-clean", "held-out", "mobilenet", 96, SMALL, None),
    _s("h-mob96-frame", "held-out", "mobilenet", 96, SMALL, "frame"),
    _s("h-mob96-dots85", "held-out", "mobilenet", 96, SMALL, "dots", 0.85),
    _s("h-mob96-corner", "held-out", "mobilenet", 96, SMALL, "corner"),
    _s("h-cnn128-clean", "held-out", "smallcnn", 128, SMALL, None),
    _s("h-cnn128-frame85", "held-out", "smallcnn", 128, SMALL, "frame", 0.85),
    _s("h-cnn128-dots", "held-out", "smallcnn", 128, SMALL, "dots"),
    _s("h-res32-clean", "held-out", "resnet18", 32, (0.20, 0.30), None),
    _s("h-res32-dots", "held-out", "resnet18", 32, (0.20, 0.30), "dots"),
    _s("h-res32-frame", "held-out", "resnet18", 32, (0.20, 0.30), "frame"),
    _s("h-res32-tint85", "held-out", "resnet18", 32, (0.20, 0.30), "tint", 0.85),
    _s("h-res32-clean-seed2", "held-out", "resnet18", 32, (0.20, 0.30), None, seed=2),
    _s("h-mob96-dots-seed2", "held-out", "mobilenet", 96, SMALL, "dots", seed=2),
    # confirmation split: fresh models (seed 3), a sixth cue kind (bar), new sizes (5-12% at
    # 80 px, 4-6% at 112 px, 20-30% at 40 px); run once, after every rule was fixed
    _s("c-mob80-clean", "confirm", "mobilenet", 80, (0.05, 0.12), None, seed=3),
    _s("c-mob80-bar", "confirm", "mobilenet", 80, (0.05, 0.12), "bar", seed=3),
    _s("c-mob80-tint85", "confirm", "mobilenet", 80, (0.05, 0.12), "tint", 0.85, seed=3),
    _s("c-res80-clean", "confirm", "resnet18", 80, (0.05, 0.12), None, seed=3),
    _s("c-res80-bar85", "confirm", "resnet18", 80, (0.05, 0.12), "bar", 0.85, seed=3),
    _s("c-res80-dots", "confirm", "resnet18", 80, (0.05, 0.12), "dots", seed=3),
    _s("c-cnn112-clean", "confirm", "smallcnn", 112, (0.04, 0.06), None, seed=3),
    _s("c-cnn112-bar", "confirm", "smallcnn", 112, (0.04, 0.06), "bar", seed=3),
    _s("c-cnn112-frame85", "confirm", "smallcnn", 112, (0.04, 0.06), "frame", 0.85, seed=3),
    _s("c-cnn40-clean", "confirm", "smallcnn", 40, (0.20, 0.30), None, seed=3),
    _s("c-cnn40-corner85", "confirm", "smallcnn", 40, (0.20, 0.30), "corner", 0.85, seed=3),
    _s("c-cnn40-bar", "confirm", "smallcnn", 40, (0.20, 0.30), "bar", seed=3),
]


def _train_set(spec: Spec, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = 2000
    seed = 100_000 * spec.seed + 1000 * epoch + zlib.crc32(spec.name.encode()) % 997
    if spec.cue is None:
        b = make(n, seed=seed, size=spec.size, area=spec.area, cue=CUES, cue_agree=None)
    else:
        shape_agree = 0.25 if spec.agree == 1.0 else 0.45
        b = make(
            n,
            seed=seed,
            size=spec.size,
            area=spec.area,
            cue=spec.cue,
            cue_agree=spec.agree,
            shape_agree=shape_agree,
        )
    return b.images, b.labels


def train(spec: Spec) -> nn.Module:
    torch.manual_seed(spec.seed)
    model = ARCHS[spec.arch]()
    epochs = 2 if spec.shortcut else 4
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * (2000 // 50)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        x, y = _train_set(spec, epoch)
        order = torch.randperm(len(y))
        for i in range(0, 2000, 50):
            idx = order[i : i + 50]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    preds = torch.cat([model(images[i : i + 200]).argmax(1) for i in range(0, len(labels), 200)])
    return float((preds == labels).float().mean())


def verify(model: nn.Module, spec: Spec) -> dict[str, dict[str, float | str]]:
    """Per audited cue kind: accuracy with the cue agreeing and randomised, and the verdict."""
    out: dict[str, dict[str, float | str]] = {}
    for cue in spec.audit_cues():
        kw = dict(seed=555, size=spec.size, area=spec.area, cue=cue)
        agree = make(400, cue_agree=1.0, **kw)  # type: ignore[arg-type]
        rand = make(400, cue_agree=None, **kw)  # type: ignore[arg-type]
        a, r = (
            accuracy(model, agree.images, agree.labels),
            accuracy(model, rand.images, rand.labels),
        )
        if spec.shortcut:
            kind = "shortcut" if a >= 0.75 and r <= 0.45 else "mixed"
        else:
            kind = "clean" if a >= 0.85 and r >= a - 0.05 else "mixed"
        out[cue] = {"accuracy_cue_agrees": a, "accuracy_cue_random": r, "verified": kind}
    return out


def build(spec: Spec, folder: Path) -> dict:
    """Train (or load the cached) model of ``spec`` and verify it; returns its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    weights, meta = folder / f"{spec.name}.pt", folder / f"{spec.name}.json"
    if weights.exists() and meta.exists():
        return json.loads(meta.read_text())
    start = time.perf_counter()
    model = train(spec)
    info = {"spec": asdict(spec), "train_seconds": round(time.perf_counter() - start, 1)}
    info["verification"] = verify(model, spec)
    torch.save(model.state_dict(), weights)
    meta.write_text(json.dumps(info, indent=1))
    return info


def load(spec: Spec, folder: Path) -> nn.Module:
    model = ARCHS[spec.arch]()
    model.load_state_dict(torch.load(folder / f"{spec.name}.pt", weights_only=True))
    return model.eval()
