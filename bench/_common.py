"""Shared helpers for the bench scripts: timing, tables, JSON results, machine facts.

Not part of the package: the scripts in ``bench/`` import this file from their own folder.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

EPS = 1e-8


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """Facts that make a timing comparable: CPU, cores, threads, versions, load."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchvision", "pytorch_grad_cam", "torchcam", "captum", "quantus", "numpy"):
        try:
            m = __import__(mod)
            versions[mod] = str(getattr(m, "__version__", "?"))
        except Exception:  # a peer that cannot be imported is reported, not fatal
            versions[mod] = "missing"
    try:
        from importlib.metadata import version

        versions["pytorch_grad_cam"] = version("grad-cam")
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "versions": versions,
    }


def machine_line(info: dict[str, Any]) -> str:
    v = info["versions"]
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, torch {v['torch']} "
        f"({info['torch_threads']} threads), load {info['load_average']}"
    )


# --------------------------------------------------------------------------- timing

DEFAULT_THREADS = 1
"""Torch intra-op threads for every timing. One thread: on a 2-core machine shared with
other jobs, two OpenMP threads stall on each other (a forward varied 0.6-7.6 s with two
threads and 0.18-0.24 s with one, measured side by side), which buries every ratio in noise."""


def add_timing_args(parser: Any, *, clock: bool = True) -> None:
    """``--threads`` (default :data:`DEFAULT_THREADS`) and ``--clock`` (default ``cpu``)."""
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="torch threads (0: torch's default)"
    )
    if clock:
        parser.add_argument("--clock", choices=CLOCKS, default="cpu", help="see _common.CLOCKS")


def set_threads(n: int) -> None:
    """Use ``n`` torch threads (``0``: leave torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


CLOCKS = ("cpu", "wall")
"""``cpu``: process CPU time (``time.process_time``), the default; ``wall``: wall clock.
With one torch thread, CPU time is the work done and ignores time spent waiting for a core
held by another job: a resnet50 forward measured 0.92-1.01 s CPU against 1.86-2.77 s wall
in the same six calls on the shared machine."""


@dataclass
class Timings:
    """Seconds per entry and round, on both clocks, and each entry's first result."""

    cpu: dict[str, list[float]]
    wall: dict[str, list[float]]
    first: dict[str, Any]

    def of(self, clock: str) -> dict[str, list[float]]:
        return self.cpu if clock == "cpu" else self.wall


def timed_rounds(
    fns: dict[str, Callable[[], Any]],
    reps: int,
    *,
    warmup: int = 1,
    after: Callable[[], None] | None = None,
) -> Timings:
    """Time each callable ``reps`` times, round-robin, after ``warmup`` untimed rounds.

    Interleaving spreads the machine's load changes over all entries instead of letting
    one entry absorb a slow minute. With ``warmup=0`` the first round is timed too. The
    first round's results are kept (``Timings.first``) to compare maps.
    """
    res = Timings({k: [] for k in fns}, {k: [] for k in fns}, {})
    for r in range(warmup + reps):
        for name, fn in fns.items():
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if r == 0:
                res.first[name] = out
            del out
            if after is not None:
                after()
            if r >= warmup:
                res.cpu[name].append(cpu)
                res.wall[name].append(wall)
    return res


def interleaved(
    fns: dict[str, Callable[[], Any]],
    reps: int,
    *,
    warmup: int = 1,
    after: Callable[[], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """:func:`timed_rounds` on the CPU clock, as ``(times, first results)``."""
    res = timed_rounds(fns, reps, warmup=warmup, after=after)
    return res.cpu, res.first


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


# --------------------------------------------------------------------------- maps


def finish_maps(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The shared conventions: ReLU, bilinear upsampling (align_corners=False), min-max.

    ``raw`` is ``(N, h, w)`` or ``(N, K, h, w)``; returns the same leading dims at ``size``.
    """
    raw = raw.detach().float()
    lead = raw.shape[:-2]
    x = F.relu(raw.reshape(-1, 1, *raw.shape[-2:]))
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    flat = x.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    flat = (flat - lo) / (hi - lo + EPS)
    return flat.reshape(*lead, *size)


def max_abs_diff(a: Any, b: Any) -> float:
    if a is None or b is None:
        return float("nan")
    a_t = torch.as_tensor(a).float()
    b_t = torch.as_tensor(b).float()
    if a_t.shape != b_t.shape:
        return float("nan")
    return float((a_t - b_t).abs().max())


# --------------------------------------------------------------------------- output


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "-"
        if v == 0:
            return "0"
        if abs(v) < 10 ** (-digits) or abs(v) >= 1e5:
            return f"{v:.1e}"
        return f"{v:.{digits}f}"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table with aligned columns."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def say(*args: Any) -> None:
    print(*args, flush=True)


def note(msg: str) -> None:
    print(f"  note: {msg}", file=sys.stderr, flush=True)
