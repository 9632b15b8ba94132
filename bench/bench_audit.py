"""Wall time of the audit suite: ``pytest audits/`` and ``pytest audits/ -n 2``.

Each run is a fresh ``python -m pytest`` process from the repository root (what a user or
CI pays, imports and model loading included), ``-p no:cacheprovider`` so runs do not
share a cache. The two variants alternate for ``--reps`` rounds; the table shows the
median wall time, the speed-up of ``-n 2`` and pytest's summary line. ``-n 2`` needs
pytest-xdist (in the ``bench`` extra).

Usage: ``python bench/bench_audit.py [--reps 1]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from _common import REPO_DIR, machine, machine_line, median, say, table, write_json


def _summary(output: str) -> str:
    lines = [ln.strip("= ").strip() for ln in output.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln for w in ("passed", "failed", "error", "no tests ran", "skipped")):
            return ln
    return lines[-1] if lines else ""


def run_once(extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "audits/", "-q", "-p", "no:cacheprovider", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True)
    return {
        "seconds": time.perf_counter() - t0,
        "exit_code": proc.returncode,
        "summary": _summary(proc.stdout + "\n" + proc.stderr),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=1)
    args = p.parse_args()
    audits = REPO_DIR / "audits"
    has_tests = audits.is_dir() and any(audits.rglob("test_*.py"))
    variants = {"pytest audits/": [], "pytest audits/ -n 2": ["-n", "2"]}
    try:
        import xdist  # noqa: F401
    except ImportError:
        variants.pop("pytest audits/ -n 2")
        say("  note: pytest-xdist is not installed: -n 2 skipped")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    if has_tests:
        for r in range(args.reps):
            for name, extra in variants.items():
                say(f"  {name} (round {r + 1}/{args.reps}) ...")
                runs[name].append(run_once(extra))
    rows = []
    serial = median([x["seconds"] for x in runs.get("pytest audits/", [])])
    for name, rs in runs.items():
        if not rs:
            rows.append({"command": name, "skipped": "audits/ has no test files yet"})
            continue
        t = median([x["seconds"] for x in rs])
        rows.append(
            {
                "command": name,
                "seconds": t,
                "speedup_vs_serial": serial / t if serial == serial else None,
                "exit_codes": [x["exit_code"] for x in rs],
                "summary": rs[-1]["summary"],
                "runs": rs,
            }
        )
    info = machine()
    path = write_json("bench_audit", {"config": vars(args), "machine": info, "rows": rows})
    say(f"\n### Audit suite wall time (median of {args.reps} run(s) each)")
    say(machine_line(info))
    out = []
    for r in rows:
        if r.get("skipped"):
            out.append([r["command"], f"skipped: {r['skipped']}", None, None, None])
        else:
            out.append(
                [r["command"], r["seconds"], r["speedup_vs_serial"], r["exit_codes"], r["summary"]]
            )
    say(table(["command", "wall s", "speed-up", "exit", "pytest says"], out))
    say(f"\n(json: {path})")


if __name__ == "__main__":
    main()
