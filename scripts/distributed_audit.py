"""A localization audit on several processes: each rank scans its shard, all hold the result.

    python -m torch.distributed.run --nproc_per_node=2 --standalone \\
        scripts/distributed_audit.py --out /tmp/dist --images 48 --batch-size 8

Every rank opens the process group from torchrun's environment
(:func:`modelaudit.distributed.init_from_env`: gloo on CPU), scans the zoo's held-out
shapes (``audit_data``, as ``(image, {"labels", "boxes"})`` items with tv_tensors) through
the trained ``shapes-cnn`` with :func:`modelaudit.scan` - which shards the dataset, gathers
the ranks' parts and merges them - and writes ``rank<R>.json``: the per-sample values, the
kept samples and the records of the four localization checks. Then it scans a copy whose
sample ``--bad`` has a box outside its image (on rank ``bad % world_size``'s shard) and
writes the error every rank raised. ``tests/test_distributed.py`` compares the files with a
scan in one process. Without torchrun it runs as one process (rank 0 of 1).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from torchvision import tv_tensors

import modelaudit as ma
from modelaudit import distributed, zoo

CHECKS = ("assert_looks_at_object", "assert_pointing_game", "assert_mass_in_box", "assert_iou")


class AuditShapes(zoo.ShapesDataset):
    """The zoo's held-out shapes as ``(image, {"labels", "boxes"})`` items (tv_tensors).

    ``bad``: a sample whose box is moved outside the image (an input error to report).
    """

    def __init__(self, n: int, *, bad: int | None = None) -> None:
        super().__init__(zoo.audit_data(n))
        self.bad = bad

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, target = super().__getitem__(i)
        if i == self.bad:  # entirely right of the image
            width = int(image.shape[-1])
            box = target["boxes"] + 2 * width
            target["boxes"] = tv_tensors.wrap(box, like=target["boxes"])
        return image, target


def scan_shapes(n: int, batch_size: int, *, bad: int | None = None) -> ma.Scan:
    """The audit's scan (sharded and merged when a process group is open)."""
    model = zoo.load_model("shapes-cnn")
    return ma.scan(model, AuditShapes(n, bad=bad), batch_size=batch_size, keep=6)


def verdicts(found: ma.Scan) -> list[dict[str, Any]]:
    """The records of the four localization checks on ``found``, as JSON, pass or fail."""
    calls = {
        "assert_looks_at_object": lambda: ma.assert_looks_at_object(found),
        "assert_pointing_game": lambda: ma.assert_pointing_game(found, at_least=0.95),
        "assert_mass_in_box": lambda: ma.assert_mass_in_box(found, at_least=0.6, per_class=True),
        "assert_iou": lambda: ma.assert_iou(found, at_least=0.1, aggregate="mean"),
    }
    out = []
    for name in CHECKS:
        try:
            out.append(calls[name]().to_json())
        except ma.AuditFailure as failure:
            out.append(failure.record.to_json())
    return out


def summary(found: ma.Scan) -> dict[str, Any]:
    """The scan's per-sample values and kept samples, as JSON."""
    names = ("indices", "labels", "mass", "pointing", "iou", "chance", "ceiling", "null")
    out: dict[str, Any] = {k: getattr(found, k).tolist() for k in names}
    out.update(
        layer=str(found.layer),
        kept_rows=found.kept.rows.tolist(),
        off_object=found.off_object.describe(),
        verdicts=verdicts(found),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for rank<R>.json")
    parser.add_argument("--images", type=int, default=48, help="how many images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--bad", type=int, default=5, help="the sample with a bad box")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    distributed.init_from_env("cpu")
    out = summary(scan_shapes(args.images, args.batch_size))
    out.update(rank=distributed.rank(), world_size=distributed.world_size())
    try:
        scan_shapes(args.images, args.batch_size, bad=args.bad)
        out["error"] = None
    except ma.InvalidInputError as err:
        out["error"] = str(err)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{distributed.rank()}.json").write_text(json.dumps(out, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
