"""Run every benchmark, one process each, then print all their tables together.

Usage: ``python bench/run_all.py [--only cam memory ...] [--quick]`` (``make bench`` runs
it in ``.venv-bench``, where the peers are installed). Each script writes its JSON to
``bench/results/`` and prints its own tables; the run ends with all tables in one block.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, extra arguments for --quick)
SCRIPTS: dict[str, tuple[str, list[str]]] = {
    "cam": ("bench_cam.py", ["--quick"]),
    "targets": ("bench_targets.py", ["--reps", "1", "--batch", "2", "--size", "112", "--ks", "5"]),
    "memory": (
        "bench_memory.py",
        ["--layers", "layer4", "--methods", "gradcam", "--skip-scorecam"],
    ),
    "metrics": (
        "bench_metrics.py",
        ["--reps", "1"],
    ),  # the metrics engineer's: vs a per-sample loop
    "metrics-peers": ("bench_metrics_peers.py", ["--reps", "1"]),
    "audit": ("bench_audit.py", []),
    "throughput": ("throughput.py", ["--quick"]),
}


def _tables(output: str) -> str:
    """The part of a script's output worth repeating: from its first table heading on."""
    lines = output.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("###"):
            return "\n".join(lines[i:])
    return "\n".join(ln for ln in lines if not ln.startswith("  "))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS))
    p.add_argument(
        "--quick", action="store_true", help="smoke-run sizes: minutes, not a measurement"
    )
    args = p.parse_args()
    collected: list[tuple[str, str, int, float]] = []
    for name in args.only:
        script, quick = SCRIPTS[name]
        path = HERE / script
        if not path.exists():
            collected.append((name, f"({script} is not in the checkout yet)", 0, 0.0))
            continue
        cmd = [sys.executable, str(path), *(quick if args.quick else [])]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
        out: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            out.append(line)
        code = proc.wait()
        collected.append((name, _tables("".join(out)), code, time.perf_counter() - t0))
    print("\n\n================ all tables ================", flush=True)
    failed = []
    for name, tables, code, seconds in collected:
        print(f"\n## {name} ({seconds:.0f} s{', exit ' + str(code) if code else ''})")
        print(tables)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
