"""Speed and agreement of the CAM methods: ours vs pytorch-grad-cam, TorchCAM, Captum.

Part 1 (Grad-CAM, Grad-CAM++, LayerCAM): torchvision resnet50 with random weights (seed 0),
eval mode, batch 8, 224x224, at ``layer4`` and ``layer2``. Each row's median time over a
no-grad forward of the same batch, and over the floor (a no-grad trunk plus the
activation-only backward down to the layer, ``_impls.layer_grad``), plus the max absolute
difference of its maps from ours and from the textbook reference (same ReLU / bilinear /
min-max conventions).

Part 2 (Score-CAM, exact = one masked forward per channel): resnet18 (seed 0), batch 1,
224x224 at ``layer4`` (512 channels) and ``layer2`` (128): resnet50 would need 2,048
masked forwards per image at layer4, ~4 minutes per call on this machine. Ours exact and
fast (top-k channels by activation variance) vs the peers.

Part 3 (Score-CAM fast mode on the shipped model ``shapes-cnn``): speed-up and Spearman
rank correlation of the fast map against the exact one.

Usage: ``python bench/bench_cam.py [--reps 3] [--quick]``
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

FAMILY = ("gradcam", "gradcam_pp", "layercam")
SAME = 1e-4  # two map sets are "the same maps" when they differ by less than this


def _impls_for(method: str, skip: dict[str, str]) -> list[str]:
    return [i for i, ms in I.SUPPORTED.items() if method in ms and i not in skip]


def _skips() -> dict[str, str]:
    skip: dict[str, str] = {}
    for peer in I.PEERS:
        why = I.peer_status(peer)
        if why:
            skip[peer] = why
    return skip


#: our gradient methods with ``pass_size=None`` (default "auto" runs the batch in passes)
ONE_PASS = "ours one pass"


def family(args: argparse.Namespace, skip: dict[str, str]) -> list[dict[str, Any]]:
    model = I.resnet("resnet50", seed=0)
    x = I.images(args.batch, args.size)
    target = I.predicted(model, x)
    ours_ok = {m: I.ours_status(m) for m in FAMILY}
    rows: list[dict[str, Any]] = []
    for layer in args.layers:
        fns: dict[str, Any] = {
            "forward": lambda: I.forward_nograd(model, x),
            "floor": lambda layer=layer: I.layer_grad(model, x, target, layer),
        }
        for method in args.methods:
            for impl in _impls_for(method, skip):
                if impl == "ours" and ours_ok[method]:
                    continue
                fns[f"{method}/{impl}"] = lambda impl=impl, method=method, layer=layer: I.run(
                    impl, method, model, x, target, layer
                )
            if method == args.methods[0] and not ours_ok[method]:  # ours without the parts
                fns[f"{method}/{ONE_PASS}"] = lambda method=method, layer=layer: I.ours(
                    method, model, x, target, layer, pass_size=None
                )
        say(f"  timing {layer}: {len(fns)} entries x {args.reps} reps (interleaved) ...")
        tm = timed_rounds(fns, args.reps, after=lambda: I.clear_param_grads(model))
        times, first = tm.of(args.clock), tm.first
        fwd = median(times["forward"])
        floor = median(times["floor"])
        for name in ("forward", "floor"):
            t = median(times[name])
            rows.append(
                {
                    "layer": layer,
                    "method": "-",
                    "impl": name,
                    "ms": 1e3 * t,
                    "x_forward": t / fwd,
                    "x_floor": t / floor,
                    "wall_ms": 1e3 * median(tm.wall[name]),
                    "times_s": times[name],
                    "wall_s": tm.wall[name],
                }
            )
        for method in args.methods:
            ref = I.run("reference", method, model, x, target, layer)
            ours_maps = first.get(f"{method}/ours")
            for impl in ["ours", ONE_PASS, *I.PEERS]:
                key = f"{method}/{impl}"
                if key not in first:
                    if method in I.SUPPORTED.get(impl, ()):
                        why = ours_ok[method] if impl == "ours" else skip.get(impl)
                        rows.append(
                            {"layer": layer, "method": method, "impl": impl, "skipped": why}
                        )
                    continue
                t = median(times[key])
                maps = first[key]
                rows.append(
                    {
                        "layer": layer,
                        "method": method,
                        "impl": impl,
                        "ms": 1e3 * t,
                        "x_forward": t / fwd,
                        "x_floor": t / floor,
                        "diff_vs_ours": max_abs_diff(maps, ours_maps) if impl != "ours" else None,
                        "diff_vs_reference": max_abs_diff(maps, ref),
                        "nonzero_maps": int((maps.flatten(1).amax(1) > 0).sum()),
                        "wall_ms": 1e3 * median(tm.wall[key]),
                        "times_s": times[key],
                        "wall_s": tm.wall[key],
                    }
                )
    return rows


def _channels(model: torch.nn.Module, x: torch.Tensor, layer: str) -> int:
    shape: list[int] = []
    h = I.module(model, layer).register_forward_hook(lambda _m, _i, o: shape.extend(o.shape))
    try:
        I.forward_nograd(model, x[:1])
    finally:
        h.remove()
    return shape[1]


def _spearman(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    from scipy.stats import spearmanr

    out = []
    for u, v in zip(a.flatten(1).numpy(), b.flatten(1).numpy()):
        r = spearmanr(u, v).statistic
        out.append(float(r) if r == r else float("nan"))
    return out


def scorecam(args: argparse.Namespace, skip: dict[str, str]) -> list[dict[str, Any]]:
    model = I.resnet(args.scorecam_model, seed=0)
    x = I.images(args.scorecam_batch, args.size)
    target = I.predicted(model, x)
    why_ours = I.ours_status("scorecam")
    fast_kw = I.fast_scorecam_kwarg() if why_ours is None else None
    rows: list[dict[str, Any]] = []
    for layer in args.scorecam_layers:
        c = _channels(model, x, layer)
        top_k = max(1, c // args.fast_fraction)
        fns: dict[str, Any] = {"forward": lambda: I.forward_nograd(model, x)}
        if why_ours is None:
            fns["ours exact"] = lambda layer=layer: I.run(
                "ours", "scorecam", model, x, target, layer
            )
            if fast_kw:
                fns[f"ours fast ({fast_kw}={top_k})"] = lambda layer=layer, k=top_k: I.ours(
                    "scorecam", model, x, target, layer, **{fast_kw: k}
                )
        for peer in I.PEERS:
            if "scorecam" in I.SUPPORTED[peer] and peer not in skip:
                fns[peer] = lambda peer=peer, layer=layer: I.run(
                    peer, "scorecam", model, x, target, layer
                )
        say(
            f"  timing Score-CAM {args.scorecam_model} {layer} ({c} channels x "
            f"{args.scorecam_batch} images): {len(fns)} entries x {args.scorecam_reps} reps ..."
        )
        tm = timed_rounds(fns, args.scorecam_reps)
        times, first = tm.of(args.clock), tm.first
        fwd = median(times["forward"])
        exact = first.get("ours exact")
        peer_ms = [median(times[p]) for p in I.PEERS if p in times]
        for name, t_list in times.items():
            t = median(t_list)
            maps = first[name]
            row: dict[str, Any] = {
                "model": args.scorecam_model,
                "layer": layer,
                "channels": c,
                "impl": name,
                "ms": 1e3 * t,
                "x_forward": t / fwd,
                "wall_ms": 1e3 * median(tm.wall[name]),
                "times_s": t_list,
                "wall_s": tm.wall[name],
            }
            if name != "forward":
                row["diff_vs_ours_exact"] = (
                    max_abs_diff(maps, exact) if name != "ours exact" else None
                )
                row["nonzero_maps"] = int((maps.flatten(1).amax(1) > 0).sum())
                if name == "ours exact" and peer_ms:
                    row["x_fastest_peer"] = t / min(peer_ms)
                if name.startswith("ours fast") and exact is not None:
                    rho = _spearman(maps, exact)
                    row["speedup_vs_exact"] = median(times["ours exact"]) / t
                    row["spearman_mean"] = sum(rho) / len(rho)
                    row["spearman_min"] = min(rho)
            rows.append(row)
        if why_ours:
            rows.append({"layer": layer, "impl": "ours", "skipped": why_ours})
        elif not fast_kw:
            rows.append(
                {"layer": layer, "impl": "ours fast", "skipped": "ma.scorecam has no top-k option"}
            )
    return rows


def fast_on_shipped(args: argparse.Namespace) -> list[dict[str, Any]]:
    if I.ours_status("scorecam"):
        return [{"skipped": I.ours_status("scorecam")}]
    fast_kw = I.fast_scorecam_kwarg()
    if not fast_kw:
        return [{"skipped": "ma.scorecam has no top-k option"}]
    from modelaudit import zoo

    name = "shapes-cnn"
    try:
        model = zoo.load_model(name)
        weights = "shipped weights"
    except Exception as exc:  # weights not shipped yet: random init says less, say so
        model = zoo.ShapesCNN().eval()
        weights = f"random init ({type(exc).__name__})"
    try:
        layer = str(zoo.model_info(name).get("gradcam_layer", "features.8"))
    except Exception:
        layer = "features.8"
    data = zoo.audit_data(args.shipped_n)
    x = data.images
    target = I.predicted(model, x)
    c = _channels(model, x, layer)
    fns: dict[str, Any] = {"exact": lambda: I.run("ours", "scorecam", model, x, target, layer)}
    for k in args.shipped_top_k:
        if k < c:
            fns[f"{fast_kw}={k}"] = lambda k=k: I.ours(
                "scorecam", model, x, target, layer, **{fast_kw: k}
            )
    say(
        f"  timing Score-CAM fast mode on {name} ({weights}) {layer}, {c} channels, {len(x)} images ..."
    )
    tm = timed_rounds(fns, args.scorecam_reps)
    times, first = tm.of(args.clock), tm.first
    exact_t = median(times["exact"])
    rows = []
    for key, t_list in times.items():
        rho = _spearman(first[key], first["exact"])
        rows.append(
            {
                "model": f"{name} ({weights})",
                "weights": weights,
                "layer": layer,
                "channels": c,
                "mode": key,
                "ms": 1e3 * median(t_list),
                "speedup_vs_exact": exact_t / median(t_list),
                "spearman_mean": sum(rho) / len(rho),
                "spearman_min": min(rho),
                "times_s": t_list,
                "wall_s": tm.wall[key],
            }
        )
    return rows


def _rows(records: list[dict[str, Any]], cols: list[str]) -> list[list[Any]]:
    """Table rows: the given keys, or the label columns and ``skipped: why``."""
    out = []
    for r in records:
        if r.get("skipped"):
            label = [r.get(c, "-") for c in cols[:3]]
            out.append([*label, f"skipped: {r['skipped']}"] + [None] * (len(cols) - 4))
        else:
            out.append([r.get(c) for c in cols])
    return out


def print_tables(res: dict[str, Any]) -> None:
    c = res["config"]
    clock = f"{c['clock']} ms"
    if res["family"]:
        _print_family(res, c, clock)
    _print_scorecam(res, c, clock)


def _print_family(res: dict[str, Any], c: dict[str, Any], clock: str) -> None:
    say(
        f"\n### CAM speed and agreement (resnet50, batch {c['batch']}, {c['size']}x{c['size']}, "
        f"{c['clock']} time, median of {c['reps']} interleaved reps)"
    )
    say(machine_line(res["machine"]))
    cols = ["layer", "method", "impl", "ms", "wall_ms", "x_forward", "x_floor"]
    cols += ["diff_vs_ours", "diff_vs_reference"]
    head = ["layer", "method", "impl", clock, "wall ms", "x forward", "x floor"]
    head += ["max|d| vs ours", "max|d| vs ref"]
    say(table(head, _rows(res["family"], cols)))


def _print_scorecam(res: dict[str, Any], c: dict[str, Any], clock: str) -> None:
    if res.get("scorecam"):
        say(
            f"\n### Score-CAM exact and fast ({c['scorecam_model']}, batch {c['scorecam_batch']}, "
            f"{c['size']}x{c['size']}, {c['clock']} time, median of {c['scorecam_reps']} reps)"
        )
        cols = ["layer", "channels", "impl", "ms", "wall_ms", "x_forward", "x_fastest_peer"]
        cols += ["diff_vs_ours_exact", "speedup_vs_exact", "spearman_mean", "spearman_min"]
        head = ["layer", "C", "impl", clock, "wall ms", "x forward", "x fastest peer"]
        head += ["max|d| vs ours exact", "speed-up vs exact", "Spearman mean", "Spearman min"]
        say(table(head, _rows(res["scorecam"], cols)))
    if res.get("shipped"):
        say(f"\n### Score-CAM fast mode on the shipped model ({c['clock']} time)")
        cols = ["model", "layer", "mode", "channels", "ms", "speedup_vs_exact"]
        cols += ["spearman_mean", "spearman_min"]
        head = ["model", "layer", "mode", "C", clock, "speed-up", "Spearman mean", "Spearman min"]
        say(table(head, _rows(res["shipped"], cols)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--layers", nargs="+", default=["layer4", "layer2"])
    p.add_argument("--methods", nargs="+", default=list(FAMILY), choices=FAMILY)
    p.add_argument("--scorecam-model", default="resnet18")
    p.add_argument("--scorecam-batch", type=int, default=1)
    p.add_argument("--scorecam-layers", nargs="+", default=["layer4", "layer2"])
    p.add_argument("--scorecam-reps", type=int, default=2)
    p.add_argument(
        "--fast-fraction", type=int, default=8, help="fast mode keeps C // this channels"
    )
    p.add_argument("--shipped-n", type=int, default=32)
    p.add_argument("--shipped-top-k", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--skip-scorecam", action="store_true")
    p.add_argument("--skip-family", action="store_true", help="only the Score-CAM parts")
    add_timing_args(p)
    p.add_argument("--quick", action="store_true", help="batch 2, 1 rep, layer4 only: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.reps, args.batch, args.layers, args.scorecam_reps = 1, 2, ["layer4"], 1
        args.scorecam_layers, args.size, args.shipped_n = ["layer4"], 112, 8
    set_threads(args.threads)
    torch.manual_seed(0)
    skip = _skips()
    res: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items()},
        "machine": machine(),
        "peers_skipped": skip,
    }
    res["family"] = [] if args.skip_family else family(args, skip)
    if not args.skip_scorecam:
        res["scorecam"] = scorecam(args, skip)
        res["shipped"] = fast_on_shipped(args)
    res["machine"]["load_average_end"] = machine()["load_average"]
    path = write_json("bench_cam", res)
    print_tables(res)
    say(f"\n(json: {path})")


if __name__ == "__main__":
    main()
