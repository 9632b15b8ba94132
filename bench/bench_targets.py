"""Many targets per image: K classes per sample at layer4, in units of one no-grad forward.

resnet50 (random weights, seed 0, eval), batch 8, 224x224, Grad-CAM at ``layer4``, the
top-K predicted classes of each image as targets (K = 5 and 20). Ours takes the (N, K)
targets in one call (one forward, one batched backward); the peers' APIs take one class
per sample, so they need one pass per class. The floor is one no-grad trunk plus K
batched activation-only backwards (``_impls.layer_grad`` with (N, K) targets). The target
is ``1 + 0.06 K`` forwards. Max |difference| of every map set against the floor's
textbook Grad-CAM maps checks that everyone computes the same (N, K) maps.

Usage: ``python bench/bench_targets.py [--reps 2] [--ks 5 20]``
"""

from __future__ import annotations

import argparse
from typing import Any

import _impls as I
import torch
from _common import (
    add_timing_args,
    machine,
    machine_line,
    max_abs_diff,
    median,
    say,
    set_threads,
    table,
    timed_rounds,
    write_json,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--ks", type=int, nargs="+", default=[5, 20])
    p.add_argument("--layer", default="layer4")
    p.add_argument("--method", default="gradcam")
    add_timing_args(p)
    args = p.parse_args()
    set_threads(args.threads)

    model = I.resnet("resnet50", seed=0)
    x = I.images(args.batch, args.size)
    why_ours = I.ours_status(args.method)
    impls = ([] if why_ours else ["ours"]) + [
        peer for peer in I.PEERS if args.method in I.SUPPORTED[peer] and not I.peer_status(peer)
    ]
    # Warm every implementation up once on a tiny call, so the timed calls below (which
    # also provide the maps) carry no first-call costs.
    small = x[:2]
    for impl in impls:
        I.run(impl, args.method, model, small, torch.tensor([0, 1]), args.layer)
        I.clear_param_grads(model)

    rows: list[dict[str, Any]] = []
    for k in args.ks:
        targets = I.top_classes(model, x, k)
        fns: dict[str, Any] = {
            "forward": lambda: I.forward_nograd(model, x),
            "floor": lambda t=targets: I.layer_grad(model, x, t, args.layer),
        }
        for impl in impls:
            fns[impl] = lambda impl=impl, t=targets: I.run_multi(
                impl, args.method, model, x, t, args.layer
            )
        say(f"  timing K={k}: {len(fns)} entries x {args.reps} reps (interleaved) ...")
        tm = timed_rounds(fns, args.reps, warmup=0, after=lambda: I.clear_param_grads(model))
        times, first = tm.of(args.clock), tm.first
        ref = I.run_multi("reference", args.method, model, x, targets, args.layer)
        fwd = median(times["forward"])
        for name, t_list in times.items():
            t = median(t_list)
            row: dict[str, Any] = {
                "k": k,
                "impl": name,
                "passes": k if name in I.PEERS else 1,
                "ms": 1e3 * t,
                "x_forward": t / fwd,
                "target_x_forward": 1 + 0.06 * k,
                "wall_ms": 1e3 * median(tm.wall[name]),
                "times_s": t_list,
                "wall_s": tm.wall[name],
            }
            if name not in ("forward", "floor"):
                row["diff_vs_reference"] = max_abs_diff(first[name], ref)
                row["diff_vs_ours"] = (
                    max_abs_diff(first[name], first.get("ours")) if name != "ours" else None
                )
            rows.append(row)
        if why_ours:
            rows.append({"k": k, "impl": "ours", "skipped": why_ours})

    info = machine()
    path = write_json("bench_targets", {"config": vars(args), "machine": info, "rows": rows})
    say(
        f"\n### K targets per image ({args.method} at {args.layer}, resnet50, batch {args.batch}, "
        f"{args.size}x{args.size}, {args.clock} time, median of {args.reps} interleaved reps)"
    )
    say(machine_line(info))
    cols = ["k", "impl", "passes", "ms", "wall_ms", "x_forward", "target_x_forward"]
    cols += ["diff_vs_ours", "diff_vs_reference"]
    out = []
    for r in rows:
        if r.get("skipped"):
            out.append([r["k"], r["impl"], f"skipped: {r['skipped']}"] + [None] * 6)
        else:
            out.append([r.get(c) for c in cols])
    head = ["K", "impl", "calls", f"{args.clock} ms", "wall ms", "x forward", "target"]
    head += ["max|d| vs ours", "max|d| vs ref"]
    say(table(head, out))
    say(f"\n(json: {path})")


if __name__ == "__main__":
    main()
