"""Batched localization and similarity metrics vs a per-sample Python loop, over 1,000 maps.

The loop is what a per-sample metric library does (Quantus 0.6 style): for each sample, numpy
on that map and box. Ours is one batched torch call per metric. Both compute the same values
(the max |difference| column checks it) on random non-negative maps (no ties) with random
boxes. Times are the best of ``--reps`` runs, with one torch thread by default (the loop runs
single-threaded numpy, so this compares like with like).

Usage: ``python bench/bench_metrics.py [--n 1000] [--size 64] [--reps 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import modelaudit as ma
from modelaudit.measure.similarity import spearman

RESULTS = Path(__file__).resolve().parent / "results" / "bench_metrics.json"


# --------------------------------------------------------------------------- per-sample loops


def loop_mass(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = np.zeros(len(maps))
    for i, (m, (x1, y1, x2, y2)) in enumerate(zip(maps, boxes)):
        m = np.clip(m, 0, None)
        total = m.sum()
        out[i] = m[y1:y2, x1:x2].sum() / total if total > 0 else 0.0
    return out


def loop_pointing(maps: np.ndarray, boxes: np.ndarray, tolerance: float = 0) -> np.ndarray:
    out = np.zeros(len(maps))
    for i, (m, (x1, y1, x2, y2)) in enumerate(zip(maps, boxes)):
        m = np.clip(m, 0, None)
        if m.max() <= 0:
            continue
        hits = []
        for r, c in np.argwhere(m == m.max()):
            dx = max(x1 - c, 0, c - (x2 - 1))
            dy = max(y1 - r, 0, r - (y2 - 1))
            hits.append(dx * dx + dy * dy <= tolerance * tolerance)
        out[i] = float(np.mean(hits))
    return out


def loop_rank(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = np.zeros(len(maps))
    w = maps.shape[2]
    for i, (m, (x1, y1, x2, y2)) in enumerate(zip(maps, boxes)):
        k = (x2 - x1) * (y2 - y1)
        top = np.argsort(-m.ravel(), kind="stable")[:k]
        rows, cols = np.divmod(top, w)
        inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2) & (m.ravel()[top] > 0)
        out[i] = inside.sum() / k
    return out


def loop_iou(maps: np.ndarray, boxes: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    out = np.zeros(len(maps))
    for i, (m, (x1, y1, x2, y2)) in enumerate(zip(maps, boxes)):
        m = np.clip(m, 0, None)
        on = (m >= threshold * m.max()) & (m > 0)
        gt = np.zeros_like(on)
        gt[y1:y2, x1:x2] = True
        union = (on | gt).sum()
        out[i] = (on & gt).sum() / union if union else 0.0
    return out


def loop_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)])


# --------------------------------------------------------------------------- harness


def best_of_pair(
    ours: Callable[[], Any], loop: Callable[[], Any], reps: int
) -> tuple[float, Any, float, Any]:
    """Best time of each, runs interleaved so both see the same machine load."""
    ours(), loop()  # warm-up
    t_ours, t_loop, v_ours, v_loop = [], [], None, None
    for _ in range(reps):
        t0 = time.perf_counter()
        v_ours = ours()
        t1 = time.perf_counter()
        v_loop = loop()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_loop.append(t2 - t1)
    return min(t_ours), v_ours, min(t_loop), v_loop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the loop is single-threaded numpy; on a shared, "
        "oversubscribed machine OpenMP threads make small torch ops slower, not faster)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(args.seed)
    n, s = args.n, args.size
    maps = torch.rand(n, s, s, generator=g)
    noisy = maps + 0.1 * torch.rand(n, s, s, generator=g)
    side = torch.randint(4, s // 2 + 1, (n, 2), generator=g)
    x1 = (torch.rand(n, generator=g) * (s - side[:, 0] + 1)).long()
    y1 = (torch.rand(n, generator=g) * (s - side[:, 1] + 1)).long()
    boxes = torch.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], dim=1)
    maps_np, noisy_np, boxes_np = maps.numpy(), noisy.numpy(), boxes.numpy()

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("mass_in_box", lambda: ma.mass_in_box(maps, boxes), lambda: loop_mass(maps_np, boxes_np)),
        (
            "pointing_game",
            lambda: ma.pointing_game(maps, boxes),
            lambda: loop_pointing(maps_np, boxes_np),
        ),
        (
            "pointing_game tol=15",
            lambda: ma.pointing_game(maps, boxes, tolerance=15),
            lambda: loop_pointing(maps_np, boxes_np, 15),
        ),
        (
            "rank_accuracy",
            lambda: ma.rank_accuracy(maps, boxes),
            lambda: loop_rank(maps_np, boxes_np),
        ),
        ("iou threshold=0.5", lambda: ma.iou(maps, boxes), lambda: loop_iou(maps_np, boxes_np)),
        ("spearman", lambda: spearman(maps, noisy), lambda: loop_spearman(maps_np, noisy_np)),
    ]
    rows = []
    for name, ours, loop in cases:
        t_ours, v_ours, t_loop, v_loop = best_of_pair(ours, loop, args.reps)
        diff = float(np.abs(v_ours.double().numpy() - np.asarray(v_loop, dtype=np.float64)).max())
        rows.append(
            {
                "metric": name,
                "ours_ms": 1000 * t_ours,
                "loop_ms": 1000 * t_loop,
                "speedup": t_loop / t_ours,
                "max_abs_diff": diff,
            }
        )

    print(f"{n} maps of {s}x{s}, best of {args.reps}; torch threads {torch.get_num_threads()}")
    print(f"{'metric':<22}{'batched ms':>12}{'loop ms':>12}{'speed-up':>10}{'max |diff|':>12}")
    for r in rows:
        print(
            f"{r['metric']:<22}{r['ours_ms']:>12.1f}{r['loop_ms']:>12.1f}"
            f"{r['speedup']:>9.1f}x{r['max_abs_diff']:>12.1e}"
        )
    geo = math.exp(sum(math.log(r["speedup"]) for r in rows) / len(rows))
    print(f"geometric mean speed-up: {geo:.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "n": n,
                "size": s,
                "reps": args.reps,
                "rows": rows,
                "geometric_mean_speedup": geo,
                "machine": {
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_average": [round(v, 2) for v in os.getloadavg()],
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
