"""Under torch.distributed only rank 0 writes: the report, TensorBoard and baseline updates
are off on every other rank (``AuditOptions.resolve``'s rank rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelaudit.errors import InvalidInputError
from modelaudit.report.options import AuditOptions, process_rank

CLI, INI, ROOT = Path("/run"), Path("/repo"), Path("/repo")
WRITING = {
    "audit_report_dir": "out",
    "audit_tensorboard": "tb",
    "audit_baseline": "base.json",
    "audit_update_baseline": True,
}


def _resolve(rank: int | None = None) -> AuditOptions:
    return AuditOptions.resolve(WRITING.get, {}.get, cli_dir=CLI, ini_dir=INI, root=ROOT, rank=rank)


def test_rank_zero_writes_everything_it_was_asked_to() -> None:
    opts = _resolve(rank=0)
    assert (opts.report_dir, opts.tensorboard_dir, opts.update_baseline) == (
        CLI / "out",
        CLI / "tb",
        True,
    )


@pytest.mark.parametrize("rank", [1, 3])
def test_other_ranks_write_nothing_but_still_read_the_baseline(rank: int) -> None:
    opts = _resolve(rank=rank)
    assert (opts.report_dir, opts.tensorboard_dir, opts.update_baseline) == (None, None, False)
    assert opts.baseline == CLI / "base.json"  # every rank compares with it and decides


def test_the_rank_comes_from_torchrun_s_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert process_rank() == 1
    assert _resolve().report_dir is None
    monkeypatch.setenv("RANK", "0")
    assert _resolve().report_dir == CLI / "out"
    monkeypatch.delenv("RANK")
    assert process_rank() == 0 and _resolve().update_baseline is True
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(InvalidInputError, match="RANK='one'"):
        process_rank()
