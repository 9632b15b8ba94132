"""Throughput of a full localization audit, and its peak memory as the image count grows.

The audit: Grad-CAM at ``layer4`` of torchvision resnet18 (random weights, seed 0, eval),
images of 112x112 from the zoo's generator (``modelaudit.zoo.data.shapes_data``, one
batch of 32 per seed), the zoo's label of each image as its target, and per sample the
mass in the object's box and the pointing game. Every audit streams: per batch it computes
the maps, then the per-sample values, keeps the values (and copies of the
``--keep-worst`` lowest-mass maps), and drops the maps.

Part 1, images per second over ``--images`` images, side by side in one process
(interleaved rounds, medians, one torch thread, CPU time; see README "How timings are
taken"), for:

- ``floor``: per batch, the activation at the layer and its gradient and nothing else: a
  no-grad trunk, a graph only above the layer, ``torch.autograd.grad`` to the layer
  (``_impls.layer_grad``, the floor of ``bench_cam.py``); no maps, no metrics;
- ``modelaudit``: ``ma.gradcam`` + ``ma.mass_in_box`` + ``ma.pointing_game`` (default
  ``pass_size="auto"``; each run starts with an empty probe cache, as a fresh process
  does, so it pays the graph probe once);
- ``modelaudit, probe every batch``: the same with the probe cache emptied before every
  batch (what every batch paid before the cache);
- ``modelaudit ma.scan``: the library's streamed audit (:func:`modelaudit.scan`), which
  also keeps IoU, chance levels, the ceiling, the shuffled-box null's grid maps and the
  off-object sums;
- ``pytorch-grad-cam + Quantus``: ``pytorch_grad_cam.GradCAM`` (one extractor for the
  stream), boxes turned into masks, ``quantus.RelevanceMassAccuracy`` and
  ``quantus.PointingGame`` (``abs`` and ``normalise`` off: the maps are already in [0, 1]).

Targets: modelaudit >= 0.85x the floor's throughput, >= 3x pytorch-grad-cam + Quantus.

Part 2, peak memory of ``ma.scan`` (the library's streamed audit, which also keeps every
value ``assert_looks_at_object`` needs) at each of ``--memory-images`` (default 1,000
and 10,000), one fresh process each (``VmHWM``), images generated batch by batch (never
all held), after a process that runs only a no-grad forward of one batch; a larger run
also records its peak once each smaller count was audited. Target: the largest count's
peak within +5% of the smallest count's.

Usage: ``python bench/throughput.py [--images 2000] [--reps 3] [--quick]``
(a memory child: ``--child-memory N``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import _impls as I
import numpy as np
import torch
from _common import (
    add_timing_args,
    fmt,
    machine,
    machine_line,
    median,
    note,
    say,
    set_threads,
    table,
    timed_rounds,
    write_json,
)
from torch import nn
from torchvision import tv_tensors

import modelaudit as ma
from modelaudit.explainers import _probe_cache
from modelaudit.zoo.data import shapes_data

HERE = Path(__file__).resolve().parent

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images, boxes, labels

FLOOR = "floor"
OURS = "modelaudit"
OURS_PROBING = "modelaudit, probe every batch"
OURS_SCAN = "modelaudit ma.scan (every localization value)"
PEER = "pytorch-grad-cam + Quantus"
TARGET_VS_FLOOR = 0.85
TARGET_VS_PEER = 3.0
TARGET_MEMORY_PCT = 5.0


# --------------------------------------------------------------------------- data


def batches(n: int, batch: int, size: int, seed: int = 0) -> Iterator[Batch]:
    """``n`` zoo images in batches of ``batch`` (the last may be smaller), generated lazily.

    Batch ``i`` is ``shapes_data(..., seed=seed + i)``: the same images whatever reads them.
    """
    for i, start in enumerate(range(0, n, batch)):
        d = shapes_data(min(batch, n - start), seed=seed + i, image_size=size)
        yield d.images, d.boxes, d.labels


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(N, 1, H, W)`` float32 masks of XYXY boxes with exclusive ``x2, y2`` (for Quantus)."""
    h, w = size
    b = boxes.numpy()
    ys, xs = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    inside = (
        (ys >= b[:, 1, None, None])
        & (ys < b[:, 3, None, None])
        & (xs >= b[:, 0, None, None])
        & (xs < b[:, 2, None, None])
    )
    return inside[:, None].astype(np.float32)


# --------------------------------------------------------------------------- the stream


class WorstMaps:
    """The ``k`` samples with the lowest values seen so far, and copies of their maps.

    Order: by value, then by position in the stream. The maps are copies, so a batch's
    maps can be freed once offered.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.values = torch.empty(0)
        self.index = torch.empty(0, dtype=torch.long)
        self.maps: torch.Tensor | None = None

    def offer(self, values: torch.Tensor, maps: torch.Tensor, first: int) -> None:
        """Consider a batch: ``values[i]`` and ``maps[i]`` are sample ``first + i``."""
        if self.k <= 0:
            return
        v = torch.cat([self.values, values.detach().float().cpu()])
        idx = torch.cat([self.index, torch.arange(first, first + len(values))])
        new = maps.detach().float().cpu()
        m = new if self.maps is None else torch.cat([self.maps, new])
        keep = torch.sort(v, stable=True).indices[: self.k]
        self.values, self.index, self.maps = v[keep], idx[keep], m[keep].clone()


class AuditResult:
    """Per-sample values of a streamed audit (kept) and the worst maps (at most k)."""

    def __init__(self, keep_worst: int) -> None:
        self.mass: list[torch.Tensor] = []
        self.hits: list[torch.Tensor] = []
        self.worst = WorstMaps(keep_worst)
        self.images = 0

    def add(self, mass: Any, hits: Any, maps: torch.Tensor) -> None:
        mass_t = torch.as_tensor(np.asarray(mass, dtype=np.float32))
        self.mass.append(mass_t)
        self.hits.append(torch.as_tensor(np.asarray(hits, dtype=np.float32)))
        self.worst.offer(mass_t, maps, self.images)
        self.images += len(mass_t)

    def values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mass in box and pointing-game hits of every image, in stream order."""
        return torch.cat(self.mass), torch.cat(self.hits)


def audit_ours(
    model: nn.Module,
    data: Iterable[Batch],
    layer: str,
    *,
    keep_worst: int = 8,
    probe_every_batch: bool = False,
) -> AuditResult:
    """The streamed audit with public modelaudit calls; starts with an empty probe cache."""
    res = AuditResult(keep_worst)
    _probe_cache.clear()  # a fresh process: the first batch pays the probe
    for images, boxes, labels in data:
        if probe_every_batch:
            _probe_cache.clear()
        maps = ma.gradcam(model, images, target=labels, layer=layer)
        res.add(ma.mass_in_box(maps, boxes), ma.pointing_game(maps, boxes), maps)
        del maps
    return res


def as_targets(data: Iterable[Batch]) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
    """The batches as ``ma.scan`` reads them: images and ``tv_tensors`` targets."""
    for images, boxes, labels in data:
        size = tuple(images.shape[-2:])
        box = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size)
        yield images, {"labels": labels, "boxes": box}


def audit_scan(model: nn.Module, data: Iterable[Batch], layer: str, *, keep_worst: int = 8):
    """The library's streamed audit, ``ma.scan``: besides mass in box and the pointing game
    it keeps IoU, chance levels, the ceiling, the layer-grid maps for the shuffled-box null
    and the off-object sums (what ``assert_looks_at_object`` needs)."""
    _probe_cache.clear()
    return ma.scan(
        model, as_targets(data), method="gradcam", layer=layer, keep=keep_worst, progress=False
    )


def audit_floor(model: nn.Module, data: Iterable[Batch], layer: str) -> int:
    """The floor over the stream: activation and gradient per batch, nothing kept."""
    n = 0
    for images, _boxes, labels in data:
        a, g = I.layer_grad(model, images, labels, layer)
        n += len(a)
        del a, g
    return n


def audit_peer(
    model: nn.Module, data: Iterable[Batch], layer: str, *, keep_worst: int = 8
) -> AuditResult:
    """pytorch-grad-cam's GradCAM for the maps, Quantus for mass in box and pointing game."""
    import quantus
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    q_kw = {"abs": False, "normalise": False, "disable_warnings": True}
    rma = quantus.RelevanceMassAccuracy(**q_kw)
    pg = quantus.PointingGame(**q_kw)
    res = AuditResult(keep_worst)
    with GradCAM(model=model, target_layers=[I.module(model, layer)]) as cam:
        for images, boxes, labels in data:
            maps = cam(
                input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in labels]
            )
            q = {
                "model": None,
                "x_batch": images.numpy(),
                "y_batch": labels.numpy(),
                "a_batch": maps[:, None],
                "s_batch": box_masks(boxes, maps.shape[-2:]),
            }
            res.add(rma(**q), pg(**q), torch.from_numpy(maps))
            del maps, q
    return res


# --------------------------------------------------------------------------- part 1


def _entries(args: argparse.Namespace, model: nn.Module, data: list[Batch], peer: bool) -> dict:
    fns: dict[str, Callable[[], Any]] = {
        FLOOR: lambda: audit_floor(model, data, args.layer),
        OURS: lambda: audit_ours(model, data, args.layer, keep_worst=args.keep_worst),
        OURS_PROBING: lambda: audit_ours(
            model, data, args.layer, keep_worst=args.keep_worst, probe_every_batch=True
        ),
        OURS_SCAN: lambda: audit_scan(model, data, args.layer, keep_worst=args.keep_worst),
    }
    if peer:
        fns[PEER] = lambda: audit_peer(model, data, args.layer, keep_worst=args.keep_worst)
    return fns


def peer_missing() -> str | None:
    """Why pytorch-grad-cam + Quantus cannot run here, or None."""
    for mod in ("pytorch_grad_cam", "quantus"):
        try:
            __import__(mod)
        except Exception as exc:
            return f"{mod} cannot be imported: {type(exc).__name__}: {exc}"
    return None


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: images per second of each entry, medians of interleaved rounds."""
    model = I.resnet(args.model, seed=0)
    data = list(batches(args.images, args.batch, args.size))
    why = peer_missing() if not args.skip_peers else "--skip-peers"
    if why:
        note(f"{PEER} skipped: {why}")
    fns = _entries(args, model, data, peer=why is None)
    warm = data[: min(2, len(data))]
    for fn in _entries(args, model, warm, peer=why is None).values():  # untimed warm-up
        fn()
    I.clear_param_grads(model)
    say(f"  timing {len(fns)} audits of {args.images} images x {args.reps} rounds ...")
    tm = timed_rounds(fns, args.reps, warmup=0, after=lambda: I.clear_param_grads(model))
    times = tm.of(args.clock)
    rows = []
    for name, ts in times.items():
        t = median(ts)
        rows.append(
            {
                "impl": name,
                "images": args.images,
                "s": t,
                "images_per_s": args.images / t,
                "wall_images_per_s": args.images / median(tm.wall[name]),
                "times_s": ts,
                "wall_s": tm.wall[name],
            }
        )
    by = {r["impl"]: r for r in rows}
    for r in rows:
        r["x_floor"] = r["images_per_s"] / by[FLOOR]["images_per_s"]
        r["ours_x"] = by[PEER]["s"] / by[OURS]["s"] if r["impl"] == PEER else None
    return {"rows": rows, "agreement": agreement(tm.first), "skipped_peer": why}


def agreement(first: dict[str, Any]) -> dict[str, Any]:
    """Do the audits measure the same? Per-sample values of ours against the others."""
    ours = first[OURS].values()
    out: dict[str, Any] = {
        "ours_mean_mass": float(ours[0].mean()),
        "ours_hit_rate": float(ours[1].mean()),
        "ours_worst_index": first[OURS].worst.index.tolist(),
    }
    if OURS_SCAN in first:  # ma.scan keeps the same values (and more)
        scanned = first[OURS_SCAN]
        out["scan_max_abs_diff_mass"] = float((scanned.mass - ours[0]).abs().max())
        out["scan_max_abs_diff_pointing"] = float((scanned.pointing - ours[1]).abs().max())
    probing = first[OURS_PROBING].values()
    out["probe_every_batch_equal"] = bool(
        torch.equal(ours[0], probing[0]) and torch.equal(ours[1], probing[1])
    )
    if PEER in first:  # Quantus gives NaN mass for an all-zero map (we: 0.0)
        peer = first[PEER].values()
        finite = torch.isfinite(peer[0])
        out["peer_nan_mass"] = int((~finite).sum())
        out["ours_mass_where_peer_nan"] = sorted(set(ours[0][~finite].tolist()))
        out["peer_mean_mass"] = float(peer[0].nanmean())
        out["peer_hit_rate"] = float(peer[1].mean())
        out["max_abs_diff_mass"] = float((ours[0] - peer[0])[finite].abs().max())
        out["pointing_same_share"] = float((ours[1] == peer[1]).float().mean())
    return out


# --------------------------------------------------------------------------- part 2


def peak_mb(status: str | None = None) -> float:
    """This process's resident-memory high-water mark (``VmHWM`` of ``/proc/self/status``).

    Not ``ru_maxrss``: Linux carries that across ``fork`` and ``exec``, so a child
    started by a big parent reports at least the parent's size at the fork.
    """
    text = Path("/proc/self/status").read_text() if status is None else status
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM line in /proc/self/status (not Linux?)")


def watched(data: Iterable[Batch], marks: list[int], peaks: dict[str, float]) -> Iterator[Batch]:
    """``data``, recording ``peaks[str(m)]``, the peak once ``m`` images were audited.

    A batch counts as audited when the consumer asks for the next one; a mark between
    two batch ends is recorded at the later one.
    """
    done = 0
    for b in data:
        yield b
        done += len(b[0])
        for m in marks:
            if done >= m and str(m) not in peaks:
                peaks[str(m)] = peak_mb()


def memory_child(args: argparse.Namespace) -> None:
    """A streamed modelaudit audit of ``--child-memory`` images; prints a RESULT line.

    ``0`` images: the baseline, a no-grad forward of one batch and nothing else.
    """
    model = I.resnet(args.model, seed=0)
    n = args.child_memory
    t0 = time.perf_counter()
    result: dict[str, Any] = {"images": n}
    if n == 0:
        images, _boxes, _labels = next(batches(args.batch, args.batch, args.size))
        I.forward_nograd(model, images)
    else:
        marks = sorted(m for m in args.memory_images if m < n)
        seen: dict[str, float] = {}
        data = watched(batches(n, args.batch, args.size), marks, seen)
        found = audit_scan(model, data, args.layer, keep_worst=args.keep_worst)
        result |= {
            "peak_mb_on_the_way": seen,
            "images": len(found.mass),
            "mean_mass": float(found.mass.mean()),
            "hit_rate": float(found.pointing.mean()),
            "worst_kept": len(found.kept.rows),
        }
    result |= {"peak_mb": peak_mb(), "wall_s": time.perf_counter() - t0}
    print("RESULT " + json.dumps(result), flush=True)


def run_memory_child(n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "throughput.py"), "--child-memory", str(n)]
    for flag in ("model", "layer", "batch", "size", "keep_worst", "threads"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    cmd += ["--memory-images", *(str(m) for m in args.memory_images)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"images": n, "error": " / ".join(tail)}


def memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 2: peak RSS of a one-batch forward, then of the stream at each image count."""
    rows = []
    for n in [0, *args.memory_images]:
        what = "a no-grad forward of one batch" if n == 0 else f"streamed audit of {n} images"
        say(f"  memory: {what} in a fresh process ...")
        rows.append(run_memory_child(n, args))
    forward, first = rows[0].get("peak_mb"), rows[1].get("peak_mb")
    for r in rows:
        if "peak_mb" not in r:
            continue
        if forward:
            r["over_forward_mb"] = r["peak_mb"] - forward
        if first and r["images"]:
            r["vs_first_pct"] = 100 * (r["peak_mb"] - first) / first
            r["s_per_image"] = r["wall_s"] / r["images"]
    return rows


# --------------------------------------------------------------------------- output


def report(args: argparse.Namespace, part1: dict[str, Any] | None, part2: list | None) -> None:
    info = machine()
    payload = {"config": vars(args), "machine": info, "throughput": part1, "memory": part2}
    if args.json is None:
        path = write_json("throughput", payload)
    else:
        path = args.json
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    say(machine_line(info))
    if part1 is not None:
        say(
            f"\n### Localization audit throughput: {args.model} {args.layer}, {args.images} "
            f"images of {args.size}x{args.size}, batches of {args.batch} ({args.clock} time, "
            f"median of {args.reps} interleaved rounds)"
        )
        heads = ["audit", f"{args.clock} s", "images/s", "images/s wall", "x floor", "ours x"]
        keys = ["impl", "s", "images_per_s", "wall_images_per_s", "x_floor", "ours_x"]
        rows = [[*(r[k] for k in keys), _target(r["impl"])] for r in part1["rows"]]
        say(table([*heads, "target"], rows))
        say("values: " + json.dumps(part1["agreement"]))
    if part2 is not None:
        say(
            f"\n### Peak memory of the streamed audit ({args.model} {args.layer}, one process each)"
        )
        heads = ["images", "peak MB", "over forward MB", "vs first %", "wall s", "s/image"]
        keys = ["over_forward_mb", "vs_first_pct", "wall_s", "s_per_image", "worst_kept"]
        rows = [
            [
                r["images"] or "forward",
                r.get("peak_mb", r.get("error")),
                *(r.get(k) for k in keys),
                ", ".join(f"{m}: {fmt(v)}" for m, v in r.get("peak_mb_on_the_way", {}).items()),
            ]
            for r in part2
        ]
        heads += ["worst maps kept", "same process: peak MB after"]
        say(table(heads, rows))
        say(f"target: the largest count's peak within +{fmt(TARGET_MEMORY_PCT)}% of the first's")
    say(f"\n(json: {path})")


def _target(impl: str) -> str:
    if impl == OURS:
        return f">= {TARGET_VS_FLOOR} x floor, >= {TARGET_VS_PEER:g}x peer"
    return ""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="images of the timed audits")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--layer", default="layer4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--keep-worst", type=int, default=8, help="lowest-mass maps kept")
    p.add_argument("--memory-images", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="default: bench/results/")
    p.add_argument("--quick", action="store_true", help="128 images, 1 round, memory at 256 vs 512")
    p.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    add_timing_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.reps, args.memory_images = 128, 1, [256, 512]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    set_threads(args.threads)
    if args.child_memory is not None:
        memory_child(args)
        return
    part1 = None if args.skip_throughput else throughput(args)
    part2 = None if args.skip_memory else memory(args)
    report(args, part1, part2)


if __name__ == "__main__":
    main()
