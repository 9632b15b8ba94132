"""The calibration study: train, verify, score, tune on one split, test on two others.

    python -m scripts.calibration.run --out study/          # ~15 min on 2 CPU cores

Phases (each cached in ``--out``, so a rerun only redoes what is missing):

1. train every model of :data:`zoo.SPECS` and verify it clean or shortcut (``zoo.py``);
2. score every verified (model, cue kind) case with every candidate measure (``evaluate.py``);
3. for each candidate rule, fix its bound on the **tune** split (the midpoint of the widest
   gap between the shortcut cases' values and the clean cases'; if the split cannot be
   separated, the bound with the fewest errors; rounded to two decimals), then count on
   the **held-out** split (cue kinds ``frame`` and ``dots``, objects of 4-8% at 96/128 px
   and 20-30% at 32 px, and mobilenet_v3_small, none used for tuning) and on the
   **confirm** split (fresh models, a sixth cue kind ``bar``, other sizes; run once after
   every rule was fixed): sensitivity = shortcut cases failed / shortcut cases,
   specificity = clean cases passed / clean cases.

Writes ``results.json`` (every case, every score) and ``results.md`` (the tables the README
quotes; ``docs/calibration.md`` is a copy with a header).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from .evaluate import METHODS, POLICIES, evaluate
from .zoo import SPECS, build, load

# Rules on localization scores: pass when score >= bound (all tuned on the tune split).
SCORES = (
    "raw",
    "lift",
    "calibrated",
    "null_calibrated",
    "pointing",
    "pointing_calibrated",
    "null_effect",
    "calibrated_and_null",
)
NULL_ALPHA = 0.01  # modelaudit.checks.attention.NULL_ALPHA
CHOSEN = ("calibrated_and_null", "cells2")  # assert_looks_at_object at choose_layer's layer
SPLITS = ("tune", "held-out", "confirm")


def cases(folder: Path, log: Any) -> list[dict[str, Any]]:
    """Build, verify and score every model; one row per (model, cue kind)."""
    rows: list[dict[str, Any]] = []
    for spec in SPECS:
        start = time.perf_counter()
        info = build(spec, folder / "models")
        model = None
        for cue, ver in info["verification"].items():
            cached = folder / "cases" / f"{spec.name}--{cue}.json"
            if cached.exists():
                row = json.loads(cached.read_text())
            else:
                model = model or load(spec, folder / "models")
                row = {
                    "model": spec.name,
                    "cue": cue,
                    "split": spec.split,
                    "arch": spec.arch,
                    "size": spec.size,
                    "area": list(spec.area),
                    "agree": spec.agree,
                    "truth": "shortcut" if spec.shortcut else "clean",
                    **ver,
                }
                if ver["verified"] != "mixed":
                    row.update(evaluate(model, spec, cue))
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(row))
            rows.append(row)
        log(
            f"{spec.name}: trained in {info['train_seconds']} s, "
            f"{time.perf_counter() - start:.0f} s here; "
            + ", ".join(f"{c}: {v['verified']}" for c, v in info["verification"].items())
        )
    return rows


def value(row: dict[str, Any], score: str, method: str, policy: str) -> float:
    """The candidate score of a case (``calibrated_and_null`` tunes on ``calibrated``)."""
    scores = row["scores"][f"{method}@{row['layers'][policy]}"]
    return float(scores["calibrated" if score == "calibrated_and_null" else score])


def passes_rule(row: dict[str, Any], score: str, method: str, policy: str, bound: float) -> bool:
    """``calibrated_and_null`` is assert_looks_at_object's rule: the calibrated mass reaches
    the bound and the own boxes beat the shuffled boxes (p < NULL_ALPHA)."""
    if value(row, score, method, policy) < bound:
        return False
    if score == "calibrated_and_null":
        return row["scores"][f"{method}@{row['layers'][policy]}"]["null_p"] < NULL_ALPHA
    return True


def tune(clean: list[float], shortcut: list[float]) -> tuple[float, float]:
    """(bound, margin): pass iff value >= bound.

    The midpoint of the widest gap between the two groups, rounded to two decimals (if they
    overlap: the bound with the fewest errors); the margin is the distance from the bound
    to the nearest case (negative: the number of errors).
    """
    points = sorted(set(clean) | set(shortcut))
    cands = [(a + b) / 2 for a, b in itertools.pairwise(points)] or points
    best = None
    for t in cands:
        errors = sum(v < t for v in clean) + sum(v >= t for v in shortcut)
        gap = min([v - t for v in clean if v >= t] + [t - v for v in shortcut if v < t] or [0])
        key = (errors, -gap)
        if best is None or key < best[0]:
            best = (key, t, gap)
    assert best is not None
    return round(best[1], 2), best[2] if best[0][0] == 0 else -float(best[0][0])


def rates(rows: list[dict[str, Any]], passes: Any) -> dict[str, Any]:
    clean = [r for r in rows if r["truth"] == "clean"]
    short = [r for r in rows if r["truth"] == "shortcut"]
    misses = [
        f"{r['model']}/{r['cue']} ({r['truth']})"
        for r in rows
        if passes(r) != (r["truth"] == "clean")
    ]
    return {
        "sensitivity": sum(not passes(r) for r in short) / max(1, len(short)),
        "specificity": sum(passes(r) for r in clean) / max(1, len(clean)),
        "shortcut_cases": len(short),
        "clean_cases": len(clean),
        "misses": misses,
    }


def localization_rules(splits: dict[str, list[dict]]) -> list[dict[str, Any]]:
    tune_rows = splits["tune"]
    out = []
    for score in SCORES:
        for method in METHODS:
            for policy in POLICIES:
                bound, margin = tune(
                    [value(r, score, method, policy) for r in tune_rows if r["truth"] == "clean"],
                    [value(r, score, method, policy) for r in tune_rows if r["truth"] != "clean"],
                )

                def ok(r: dict, s: str = score, m: str = method, p: str = policy,
                       b: float = bound) -> bool:  # fmt: skip
                    return passes_rule(r, s, m, p, b)

                out.append(
                    {"score": score, "method": method, "layer": policy, "bound": bound,
                     "tune_margin": margin, **{k: rates(v, ok) for k, v in splits.items()}}
                )  # fmt: skip
    return out


def background_rule(splits: dict[str, list[dict]]) -> dict[str, Any]:
    """Only-BG accuracy above chance (fail if > m1); drop to Mixed-Rand (fail if > m2)."""

    def above(r: dict) -> float:
        return r["background"]["only_bg"] - r["background"]["chance"]

    def drop(r: dict) -> float:
        return r["background"]["original"] - r["background"]["mixed_rand"]

    c = [r for r in splits["tune"] if r["truth"] == "clean"]
    s = [r for r in splits["tune"] if r["truth"] == "shortcut"]
    m1, g1 = tune([-above(r) for r in c], [-above(r) for r in s])
    m2, g2 = tune([-drop(r) for r in c], [-drop(r) for r in s])
    m1, m2 = -m1, -m2

    def passes(r: dict) -> bool:
        return above(r) <= m1 and drop(r) <= m2

    return {
        "only_bg_margin": m1,
        "mixed_rand_margin": m2,
        "tune_margins": [g1, g2],
        **{k: rates(v, passes) for k, v in splits.items()},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _rates(r: dict[str, Any]) -> str:
    return (f"{_pct(r['sensitivity'])} / {_pct(r['specificity'])} "
            f"({r['shortcut_cases']} + {r['clean_cases']})")  # fmt: skip


def _row(name: str, bound: str, r: dict[str, Any]) -> str:
    misses = "; ".join(f"{k}: {', '.join(r[k]['misses'])}" for k in SPLITS if r[k]["misses"])
    cells = " | ".join(_rates(r[k]) for k in SPLITS)
    return f"| {name} | {bound} | {cells} | {misses or '-'} |"


def markdown(result: dict[str, Any]) -> str:
    head = [
        "| rule | bound (tune) | tune | held-out | confirm | misses |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    chosen = [r for r in result["localization"] if (r["score"], r["layer"]) == CHOSEN]
    b = result["background"]
    lines = ["Chosen rules (sensitivity / specificity (shortcut + clean cases)):", "", *head]
    lines += [_row(f"looks_at_object {r['method']}", f"{r['bound']:.2f}", r) for r in chosen]
    bound = f"only_bg <= chance + {b['only_bg_margin']:.2f}, mixed_rand >= original - {b['mixed_rand_margin']:.2f}"
    lines += [_row("background_reliance", bound, b), "", "Every candidate:", "", *head]
    for r in result["localization"]:
        lines.append(_row(f"{r['score']} {r['method']} @{r['layer']}", f"{r['bound']:.2f}", r))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("study"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {text}", flush=True)

    rows = cases(args.out, log)
    used = [r for r in rows if r["verified"] != "mixed"]
    splits = {k: [r for r in used if r["split"] == k] for k in SPLITS}
    result = {
        "cases": rows,
        "mixed": [f"{r['model']}/{r['cue']}" for r in rows if r["verified"] == "mixed"],
        "localization": localization_rules(splits),
        "background": background_rule(splits),
        "seconds": round(time.perf_counter() - start),
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "results.md").write_text(markdown(result))
    counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
    log(f"done: {counts} cases; {len(result['mixed'])} mixed")
    return 0 if not any(math.isnan(r["bound"]) for r in result["localization"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
