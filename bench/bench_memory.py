"""Peak memory of each CAM method, each in its own process, over a no-grad forward process.

Every child process imports the same libraries (torch, torchvision, modelaudit and all
peers), builds resnet50 (random weights, seed 0, eval), makes a batch of 8 224x224 images
and then runs either only a no-grad forward (the baseline) or one method call as its
documentation shows it (peers: the extractor object and the scores the user holds stay in
scope after the call, as in their READMEs). It reports:

- peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its excess over the
  baseline process, in MB and in % of the baseline;
- ``.grad`` left on parameters (``True`` when any parameter's ``.grad`` is not None);
- whether an autograd graph is still alive after the call (a tensor the user holds — the
  maps, the scores — has a ``grad_fn``, or a weak reference to the model's output or the
  layer's output, taken by forward hooks, still resolves to a tensor with a ``grad_fn``
  after ``gc.collect()``), and how much more RSS the process holds then than before it.

Usage: ``python bench/bench_memory.py [--reps 1]`` (a child: ``--child IMPL METHOD LAYER``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

from _common import add_timing_args

HERE = Path(__file__).resolve().parent


def _rss_now_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _flatten(items: Any) -> list[Any]:
    if isinstance(items, (list, tuple)):
        return [y for x in items for y in _flatten(x)]
    return [items]


#: our gradient methods with ``pass_size=None``: the whole batch in one forward/backward
ONE_PASS = "ours one pass"


def child(args: argparse.Namespace) -> None:
    import _impls as I
    import torch
    from _common import set_threads

    set_threads(args.threads)
    # The same import footprint in every child, whatever it runs.
    import captum.attr  # noqa: F401
    import pytorch_grad_cam  # noqa: F401
    import torchcam.methods  # noqa: F401

    import modelaudit  # noqa: F401

    model = I.resnet(args.model, seed=0)
    x = I.images(args.batch, args.size)
    target = torch.arange(args.batch) * 7 % 1000  # fixed classes: no extra forward
    layer_mod = I.module(model, args.layer)
    refs: dict[str, Any] = {}

    def keep_ref(name: str):
        def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
            refs[name] = weakref.ref(out)

        return hook

    handles = [
        model.fc.register_forward_hook(keep_ref("output")),
        layer_mod.register_forward_hook(keep_ref("layer")),
    ]
    gc.collect()
    before_mb = _rss_now_mb()
    kept: list[Any] = []
    if args.impl == "forward":
        with torch.no_grad():
            kept.append(model(x))
    elif args.impl == "floor":
        kept.append(I.layer_grad(model, x, target, args.layer))
    elif args.impl == "ours":
        kept.append(I.ours(args.method, model, x, target, args.layer))
    elif args.impl == ONE_PASS:
        kept.append(I.ours(args.method, model, x, target, args.layer, pass_size=None))
    elif args.impl == "pytorch-grad-cam":
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        I._quiet_tqdm()
        cls = {
            "gradcam": pgc.GradCAM,
            "gradcam_pp": pgc.GradCAMPlusPlus,
            "layercam": pgc.LayerCAM,
            "scorecam": pgc.ScoreCAM,
        }[args.method]
        with cls(model=model, target_layers=[layer_mod]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
        kept += [cam, maps]
    elif args.impl == "torchcam":
        from torchcam import methods as tcm

        cls = {
            "gradcam": tcm.GradCAM,
            "gradcam_pp": tcm.GradCAMpp,
            "layercam": tcm.LayerCAM,
            "scorecam": tcm.ScoreCAM,
        }[args.method]
        with cls(model, args.layer) as extractor:
            if args.method == "scorecam":
                with torch.no_grad():
                    scores = model(x)
                cams = extractor(class_idx=target.tolist())
            else:
                scores = model(x)
                cams = extractor(class_idx=target.tolist(), scores=scores)
        kept += [extractor, scores, cams]
    elif args.impl == "captum":
        from captum.attr import LayerGradCam

        lgc = LayerGradCam(model, layer_mod)
        kept += [lgc, lgc.attribute(x, target=target, relu_attributions=True)]
    else:
        raise SystemExit(f"unknown impl {args.impl}")
    for h in handles:
        h.remove()
    gc.collect()
    # Alive: a tensor the user holds (the maps, the scores) or the model's own output
    # still carries a grad_fn, so the graph behind it (and its saved tensors) lives on.
    alive = any(isinstance(k, torch.Tensor) and k.grad_fn is not None for k in _flatten(kept))
    for name in ("output", "layer"):
        ref = refs.get(name)
        t = ref() if ref is not None else None
        if t is not None and t.grad_fn is not None:
            alive = True
    result = {
        "peak_mb": _peak_mb(),
        "held_after_mb": _rss_now_mb() - before_mb,
        "param_grad_left": any(p.grad is not None for p in model.parameters()),
        "graph_alive": alive,
        "requires_grad_changed": not all(p.requires_grad for p in model.parameters()),
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_child(
    impl: str, method: str, layer: str, args: argparse.Namespace, model: str, batch: int
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "bench_memory.py"),
        "--child",
        impl,
        method,
        layer,
        "--model",
        model,
        "--batch",
        str(batch),
        "--size",
        str(args.size),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " / ".join(tail)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", nargs=3, metavar=("IMPL", "METHOD", "LAYER"))
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    add_timing_args(p, clock=False)
    p.add_argument("--reps", type=int, default=1, help="processes per row (median of peaks)")
    p.add_argument("--layers", nargs="+", default=["layer4", "layer2"])
    p.add_argument("--methods", nargs="+", default=["gradcam", "gradcam_pp", "layercam"])
    p.add_argument("--scorecam-model", default="resnet18")
    p.add_argument("--scorecam-batch", type=int, default=1)
    p.add_argument("--skip-scorecam", action="store_true")
    args = p.parse_args()
    if args.child:
        args.impl, args.method, args.layer = args.child
        child(args)
        return

    import _impls as I
    from _common import fmt, machine, machine_line, median, say, set_threads, table, write_json

    set_threads(args.threads)  # the children set it too; this makes the machine line true
    ours_ok = {m: I.ours_status(m) for m in [*args.methods, "scorecam"]}
    peers_skip = {peer: why for peer in I.PEERS if (why := I.peer_status(peer))}
    configs: list[tuple[str, str, str, int]] = []  # (model, layer, method, batch)
    for layer in args.layers:
        for method in args.methods:
            configs.append((args.model, layer, method, args.batch))
    if not args.skip_scorecam:
        configs.append((args.scorecam_model, "layer4", "scorecam", args.scorecam_batch))

    def measure(impl: str, method: str, layer: str, model: str, batch: int) -> dict[str, Any]:
        runs = [run_child(impl, method, layer, args, model, batch) for _ in range(args.reps)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            return runs[0]
        out = dict(ok[0])
        out["peak_mb"] = median([r["peak_mb"] for r in ok])
        out["held_after_mb"] = median([r["held_after_mb"] for r in ok])
        return out

    baselines: dict[tuple[str, int], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for model, layer, method, batch in configs:
        key = (model, batch)
        if key not in baselines:
            say(f"  baseline: {model} batch {batch} no-grad forward ...")
            baselines[key] = measure("forward", "-", layer, model, batch)
            rows.append(
                {
                    "model": model,
                    "batch": batch,
                    "layer": "-",
                    "method": "-",
                    "impl": "forward",
                    **baselines[key],
                }
            )
        base = baselines[key].get("peak_mb")
        impls = ["ours", *I.PEERS]
        if method == args.methods[0] and model == args.model:
            impls.insert(0, "floor")  # the reference: activation + gradient, nothing else
            impls.insert(2, ONE_PASS)  # ours without the parts: what they save
        for impl in impls:
            if impl not in ("floor", ONE_PASS) and method not in I.SUPPORTED[impl]:
                continue
            why = ours_ok[method] if impl in ("ours", ONE_PASS) else peers_skip.get(impl)
            if impl == "floor":
                why = None
            row: dict[str, Any] = {
                "model": model,
                "batch": batch,
                "layer": layer,
                "method": method,
                "impl": impl,
            }
            if why:
                rows.append({**row, "skipped": why})
                continue
            say(f"  {model} {layer} {method} {impl} ...")
            r = measure(impl, method, layer, model, batch)
            row.update(r)
            if base and "peak_mb" in r:
                row["extra_mb"] = r["peak_mb"] - base
                row["extra_pct"] = 100 * (r["peak_mb"] - base) / base
            rows.append(row)

    info = machine()
    path = write_json("bench_memory", {"config": vars(args), "machine": info, "rows": rows})
    say(f"\n### Peak memory over a no-grad forward process ({args.reps} process(es) per row)")
    say(machine_line(info))
    out = []
    for r in rows:
        label = f"{r['model']} b{r['batch']}"
        if r.get("skipped") or r.get("error"):
            out.append(
                [
                    label,
                    r["layer"],
                    r["method"],
                    r["impl"],
                    f"skipped: {r.get('skipped') or r.get('error')}",
                    None,
                    None,
                    None,
                    None,
                    None,
                ]
            )
            continue
        out.append(
            [
                label,
                r["layer"],
                r["method"],
                r["impl"],
                r["peak_mb"],
                r.get("extra_mb"),
                r.get("extra_pct"),
                r["param_grad_left"],
                r["graph_alive"],
                r["held_after_mb"],
            ]
        )
    say(
        table(
            [
                "model",
                "layer",
                "method",
                "impl",
                "peak MB",
                "extra MB",
                "extra %",
                ".grad left",
                "graph alive",
                "held after MB",
            ],
            out,
        )
    )
    say(f"\n(json: {path}; {fmt(len(rows))} rows)")


if __name__ == "__main__":
    main()
