"""Audits under torchrun: two gloo processes on CPU equal one process.

Ground truth for the two-process run is a scan of the same data in this process (itself
checked against the in-memory maps in ``tests/measure/``), and for the shards
``DistributedSampler`` itself and ``list(range(n))[rank::world]``. The runs start
``python -m torch.distributed.run --standalone`` in a subprocess (one thread per process).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.utils.data import DistributedSampler

import modelaudit as ma
from modelaudit import distributed

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "distributed_audit.py"
IMAGES, BATCH, BAD = 44, 8, 5


def _torchrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CI"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    return subprocess.run(
        [*command, "--standalone", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distributed_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON, numbers to 1e-6."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        assert math.isclose(a, b, abs_tol=1e-6), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{k}]")
    else:
        assert a == b, (where, a, b)


def test_two_gloo_processes_audit_as_one(tmp_path: Path) -> None:
    run = _torchrun(
        str(SCRIPT), "--out", str(tmp_path), "--images", str(IMAGES), "--bad", str(BAD),
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    script = _script()
    torch.set_num_threads(1)
    alone = script.scan_shapes(IMAGES, BATCH)
    expected = script.summary(alone)
    assert len(alone) == IMAGES and expected["indices"] == list(range(IMAGES))
    passed = [v["passed"] for v in expected["verdicts"]]
    assert True in passed and False in passed  # both kinds of verdict are compared
    with pytest.raises(ma.InvalidInputError) as bad:
        script.scan_shapes(IMAGES, BATCH, bad=BAD)
    for r, got in enumerate(ranks):
        assert (got.pop("rank"), got.pop("world_size")) == (r, 2)
        error = got.pop("error")
        _same(got, expected, f"rank{r}")
        # the bad box is on rank 1's shard (5 is odd): every rank raises, naming it
        owner = (
            str(bad.value) if r == 1 else f"rank 1's shard failed (InvalidInputError): {bad.value}"
        )
        assert error == owner and f"sample {BAD}" in error


@pytest.mark.slow  # about 20 s: two pytest sessions start
def test_pytest_under_torchrun_writes_the_report_on_rank_zero_only(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            from modelaudit.distributed import init_from_env

            def pytest_configure(config):
                init_from_env("cpu")
            """
        )
    )
    (tmp_path / "test_shard.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            import pytest
            import torch
            import modelaudit as ma
            from modelaudit import distributed

            spec = importlib.util.spec_from_file_location("audit", {str(SCRIPT)!r})
            script = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(script)

            @pytest.mark.audit
            def test_every_rank_holds_the_whole_scan():
                assert torch.distributed.is_initialized() and distributed.world_size() == 2
                found = script.scan_shapes(12, 4)
                assert found.indices.tolist() == list(range(12))
                ma.assert_looks_at_object(found)
            """
        )
    )
    logs, report = tmp_path / "logs", tmp_path / "report"
    run = _torchrun(
        "--log-dir", str(logs), "--redirects", "3", "-m", "pytest", "test_shard.py", "-q",
        "-p", "no:cacheprovider", f"--audit-report-dir={report}", cwd=tmp_path,
    )  # fmt: skip
    outputs = {p.parent.name: p.read_text() for p in logs.rglob("stdout.log")}
    assert run.returncode == 0, (run.stderr[-2000:], outputs)
    assert sorted(outputs) == ["0", "1"]
    assert all("1 passed" in text for text in outputs.values())
    assert "modelaudit report:" in outputs["0"] and "modelaudit report:" not in outputs["1"]
    assert (report / "report.html").is_file() and (report / "records.json").is_file()
    (test,) = json.loads((report / "records.json").read_text())["tests"]
    assert [r["assertion"] for r in test["records"]] == ["assert_looks_at_object"]


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 3), (2, 4), (0, 2)])
def test_shards_are_the_sampler_s_without_its_padding(n: int, world: int) -> None:
    shards = [distributed.shard(n, rank=r, world_size=world) for r in range(world)]
    assert shards == [list(range(n))[r::world] for r in range(world)]  # disjoint, all once
    for r, own in enumerate(shards):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)  # type: ignore[arg-type]
        padded = list(sampler)
        assert padded[: len(own)] == own and len(padded) == math.ceil(n / world)


def test_one_process_without_torchrun() -> None:
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert not distributed.is_distributed()
    assert distributed.gather({"a": 1}) == [{"a": 1}]
    assert distributed.init_from_env("cpu", env={"WORLD_SIZE": "1", "RANK": "0"}) is False
    assert not torch.distributed.is_initialized()


def test_a_half_set_environment_is_a_clear_error() -> None:
    with pytest.raises(
        ma.InvalidInputError, match=r"MASTER_ADDR, MASTER_PORT is not set.*torchrun"
    ):
        distributed.init_from_env("cpu", env={"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ma.InvalidInputError, match="WORLD_SIZE='two'"):
        distributed.init_from_env("cpu", env={"WORLD_SIZE": "two"})
    assert not torch.distributed.is_initialized()


def test_one_gpu_index_for_every_process_of_a_machine_is_a_clear_error() -> None:
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
    with pytest.raises(ma.InvalidInputError, match=r"pass --audit-device=cuda: each process"):
        distributed.init_from_env("cuda:0", env=env)  # checked before any GPU is touched
    assert not torch.distributed.is_initialized()
