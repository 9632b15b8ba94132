"""Metrics: ours vs Quantus 0.6 (and TorchCAM where it has the metric), speed and values.

- Mass in box (Quantus ``RelevanceMassAccuracy``) and pointing game (Quantus
  ``PointingGame``) over 1,000 maps of 64x64 with one random box each. The maps are smooth
  (upsampled 8x8 noise) and rank-transformed so no two pixels tie: every library then
  has one argmax and one deletion order, and values must agree to float precision.
- Rank accuracy (Quantus ``RelevanceRankAccuracy``), same maps and boxes.
- Deletion AUC over 64 images of the zoo's shapes (96x96, the shipped ``shapes-cnn``;
  random init if its weights are not shipped yet), maps from ``ma.gradcam``
  (rank-transformed), zero baseline, softmax probability of the predicted class, 18 steps
  of 512 pixels. Quantus ``PixelFlipping`` perturbs channel-features, so it deletes
  ``3 * 512`` features a step (whole pixels: a pixel's three channel-features tie and sort
  together); it returns the curve without the unperturbed point, and its own AUC helper
  calls ``np.trapz`` (removed in NumPy 2.4), so the AUC is computed here from its curve
  with the same trapezoid on the ``[0, 1]`` fraction axis as ours (its timed call includes
  the forward that scores the unperturbed images, as ours does). Deletion is bound by the
  model's forwards, so it is timed twice: with ``shapes-cnn``, and with a pool + linear
  model that costs next to nothing, which leaves each library's own work. TorchCAM's
  ``DeletionInsertionMetric`` computes its own CAM; it is fed our maps through a fixed
  extractor and always computes deletion *and* insertion (zero baseline), so it is
  compared against our deletion + insertion and on its batch-mean values.

Times are medians of ``--reps`` interleaved runs after a warm-up, CPU time (``--clock``),
torch on one thread.

Usage: ``python bench/bench_metrics_peers.py [--reps 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    add_timing_args,
    machine,
    machine_line,
    median,
    say,
    set_threads,
    table,
    timed_rounds,
    write_json,
)

import modelaudit as ma


def rank_transform(maps: torch.Tensor) -> torch.Tensor:
    """Same order (stable, row-major ties), all values distinct, in (0, 1]."""
    n = maps.shape[0]
    flat = maps.flatten(1)
    order = flat.sort(dim=1, stable=True).indices
    ranks = torch.empty_like(flat)
    ranks.scatter_(1, order, torch.arange(1, flat.shape[1] + 1, dtype=flat.dtype).expand(n, -1))
    return (ranks / flat.shape[1]).view_as(maps)


def smooth_maps(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(n, 1, 8, 8, generator=g)
    return rank_transform(
        F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[:, 0]
    )


def random_boxes(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    side = torch.randint(4, size // 2 + 1, (n, 2), generator=g)
    x1 = (torch.rand(n, generator=g) * (size - side[:, 0] + 1)).long()
    y1 = (torch.rand(n, generator=g) * (size - side[:, 1] + 1)).long()
    return torch.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], dim=1)


def box_masks(boxes: torch.Tensor, size: int) -> np.ndarray:
    masks = np.zeros((len(boxes), 1, size, size), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        masks[i, 0, y1:y2, x1:x2] = 1
    return masks


class FixedMaps:
    """A TorchCAM-extractor stand-in that returns precomputed maps (for its metrics)."""

    def __init__(self, model: torch.nn.Module, maps: torch.Tensor) -> None:
        self.model = model
        self.maps = maps

    def __call__(self, *_a: Any, **_k: Any) -> list[torch.Tensor]:
        return [self.maps]

    def fuse_cams(self, cams: list[torch.Tensor]) -> torch.Tensor:
        return cams[0]

    def _hooks_off(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def quantus_deletion_auc(curve: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """Our AUC from Quantus' curve (points 1..steps) and the unperturbed score ``p0``."""
    steps = curve.shape[1]
    full = np.concatenate([p0[:, None], curve], axis=1)
    return np.trapezoid(full, dx=1.0 / steps, axis=1)


def shapes_model() -> tuple[torch.nn.Module, str]:
    from modelaudit import zoo

    try:
        return zoo.load_model("shapes-cnn"), "shipped weights"
    except Exception as exc:
        torch.manual_seed(0)
        return zoo.ShapesCNN().eval(), f"random init ({type(exc).__name__})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--deletion-size", type=int, default=96)
    p.add_argument("--steps", type=int, default=18)
    add_timing_args(p)
    args = p.parse_args()
    set_threads(args.threads)
    warnings.filterwarnings("ignore")
    import quantus

    g = torch.Generator().manual_seed(0)
    n, s = args.n, args.size
    maps = smooth_maps(n, s, g)
    boxes = random_boxes(n, s, g)
    a_np = maps[:, None].numpy()
    s_np = box_masks(boxes, s)
    x_np = np.zeros((n, 3, s, s), dtype=np.float32)
    y_np = np.zeros(n, dtype=np.int64)
    q_kw = {"abs": False, "normalise": False, "disable_warnings": True}
    rma = quantus.RelevanceMassAccuracy(**q_kw)
    pg = quantus.PointingGame(**q_kw)
    rra = quantus.RelevanceRankAccuracy(**q_kw)

    # --- deletion inputs
    from modelaudit import zoo

    model, weights = shapes_model()
    ds = args.deletion_size
    images = zoo.audit_data(args.images, image_size=ds).images
    with torch.no_grad():
        logits = model(images)
    y = logits.argmax(1)
    # the metric's own cost, with a model that costs next to nothing: pool + linear
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, logits.shape[1])
    ).eval()
    del_maps = rank_transform(ma.gradcam(model, images, target=y, layer="features.8"))
    hw = ds * ds
    if hw % args.steps:
        raise SystemExit(f"--steps {args.steps} must divide {ds}x{ds} pixels")
    pixels_per_step = hw // args.steps
    if hw % (3 * pixels_per_step):
        raise SystemExit(
            "Quantus needs H*W divisible by 3 * pixels per step: change --deletion-size"
        )
    pf = quantus.PixelFlipping(
        features_in_step=3 * pixels_per_step,
        perturb_baseline=0.0,
        return_auc_per_sample=False,
        **q_kw,
    )
    x_del = images.numpy()
    a_del = del_maps[:, None].numpy()
    y_del = y.numpy()
    from torchcam.metrics import DeletionInsertionMetric

    def torchcam_del_ins() -> dict[str, float]:
        metric = DeletionInsertionMetric(
            FixedMaps(model, del_maps),  # type: ignore[arg-type]
            lambda out: out.softmax(dim=-1),
            steps=args.steps,
            batch_size=64,
        )
        metric.update(images, class_idx=y.tolist())
        return metric.summary()

    def ours_del_ins() -> dict[str, torch.Tensor]:
        kw = {"target": y, "steps": args.steps, "forward_batch": 64, "fill": "zeros"}
        return {
            "deletion": ma.deletion_auc(model, images, del_maps, **kw),
            "insertion": ma.insertion_auc(model, images, del_maps, **kw),
        }

    def quantus_deletion(net: torch.nn.Module) -> np.ndarray:
        with torch.no_grad():  # the unperturbed point, which Quantus' curve lacks
            p0 = net(images).softmax(1).gather(1, y[:, None])[:, 0].numpy()
        curve = pf(
            model=net,
            x_batch=x_del,
            y_batch=y_del,
            a_batch=a_del,
            softmax=True,
            device="cpu",
            batch_size=64,
        )
        return quantus_deletion_auc(np.asarray(curve), p0)

    def ours_deletion(net: torch.nn.Module) -> torch.Tensor:
        return ma.deletion_auc(net, images, del_maps, target=y, steps=args.steps, forward_batch=64)

    fns: dict[str, Any] = {
        "mass/ours": lambda: ma.mass_in_box(maps, boxes),
        "mass/quantus": lambda: np.asarray(
            rma(model=None, x_batch=x_np, y_batch=y_np, a_batch=a_np, s_batch=s_np)
        ),
        "pointing/ours": lambda: ma.pointing_game(maps, boxes),
        "pointing/quantus": lambda: np.asarray(
            pg(model=None, x_batch=x_np, y_batch=y_np, a_batch=a_np, s_batch=s_np), dtype=np.float64
        ),
        "rank/ours": lambda: ma.rank_accuracy(maps, boxes),
        "rank/quantus": lambda: np.asarray(
            rra(model=None, x_batch=x_np, y_batch=y_np, a_batch=a_np, s_batch=s_np)
        ),
        "deletion/ours": lambda: ours_deletion(model),
        "deletion/quantus": lambda: quantus_deletion(model),
        "deletion-tiny/ours": lambda: ours_deletion(tiny),
        "deletion-tiny/quantus": lambda: quantus_deletion(tiny),
        "deletion+insertion/ours": ours_del_ins,
        "deletion+insertion/torchcam": torchcam_del_ins,
    }
    say(f"  timing {len(fns)} metric entries x {args.reps} reps ...")
    tm = timed_rounds(fns, args.reps)
    times, first = tm.of(args.clock), tm.first

    def diff(a: Any, b: Any) -> float:
        return float(
            np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max()
        )

    ours_di = first["deletion+insertion/ours"]
    tc = first["deletion+insertion/torchcam"]
    rows = []
    for key, metric, peer, n_items in [
        ("mass", "mass in box", "quantus", f"{n} maps"),
        ("pointing", "pointing game", "quantus", f"{n} maps"),
        ("rank", "rank accuracy", "quantus", f"{n} maps"),
        ("deletion", "deletion AUC (shapes-cnn)", "quantus", f"{args.images} images"),
        (
            "deletion-tiny",
            "deletion AUC (pool+linear: the metric's own cost)",
            "quantus",
            f"{args.images} images",
        ),
        ("deletion+insertion", "deletion+insertion AUC", "torchcam", f"{args.images} images"),
    ]:
        if key == "deletion+insertion":
            d = max(
                abs(float(ours_di["deletion"].mean()) - tc["deletion_auc"]),
                abs(float(ours_di["insertion"].mean()) - tc["insertion_auc"]),
            )
        else:
            d = diff(first[f"{key}/ours"], first[f"{key}/{peer}"])
        t_ours, t_peer = median(times[f"{key}/ours"]), median(times[f"{key}/{peer}"])
        rows.append(
            {
                "metric": metric,
                "peer": peer,
                "items": n_items,
                "ours_ms": 1e3 * t_ours,
                "peer_ms": 1e3 * t_peer,
                "speedup": t_peer / t_ours,
                "max_abs_diff": d,
                "times_s": {"ours": times[f"{key}/ours"], "peer": times[f"{key}/{peer}"]},
                "wall_s": {"ours": tm.wall[f"{key}/ours"], "peer": tm.wall[f"{key}/{peer}"]},
            }
        )
    info = machine()
    path = write_json(
        "bench_metrics_peers",
        {
            "config": vars(args),
            "machine": info,
            "deletion_model": f"shapes-cnn ({weights})",
            "rows": rows,
        },
    )
    say(
        f"\n### Metrics vs Quantus / TorchCAM ({args.clock} time, median of {args.reps} "
        "interleaved reps)"
    )
    say(machine_line(info) + f"; deletion model: shapes-cnn ({weights})")
    say(
        table(
            [
                "metric",
                "peer",
                "over",
                f"ours {args.clock} ms",
                f"peer {args.clock} ms",
                "speed-up",
                "max|d| values",
            ],
            [
                [
                    r["metric"],
                    r["peer"],
                    r["items"],
                    r["ours_ms"],
                    r["peer_ms"],
                    r["speedup"],
                    r["max_abs_diff"],
                ]
                for r in rows
            ],
        )
    )
    say(f"\n(json: {path})")


if __name__ == "__main__":
    main()
