"""Baseline updates from concurrent processes, and temporary files left by killed writers."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import filelock
import pytest

from modelaudit._atomic import STALE_TMP_SECONDS, atomic_write_text, remove_stale_tmp
from modelaudit.baseline import (
    Baseline,
    compare_to_entry,
    lock_path,
    update_baseline_file,
)
from modelaudit.errors import BaselineError

# One updater process: waits for the common start time, then merges one new entry per round.
UPDATER = textwrap.dedent(
    """
    import sys, time
    from modelaudit.baseline import compare_to_entry, update_baseline_file

    path, tag, rounds, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.001)
    for i in range(rounds):
        update_baseline_file(path, [compare_to_entry(f"{tag}::m{i}", i + 0.5, None)])
    """
)

ROUNDS = 20


def test_concurrent_updaters_never_lose_an_entry(tmp_path):
    """Two processes update one file 20 times each, at the same moments: all 40 entries stay.

    Without the lock (load, apply, save) about half the entries are lost on 2 cores.
    """
    path = tmp_path / "baseline.json"
    update_baseline_file(path, [compare_to_entry("existing::m", 1.0, None)])
    start = time.time() + 1.0  # both interpreters are up by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPDATER, str(path), tag, str(ROUNDS), str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    stored = Baseline.load(path)
    wanted = {"existing::m"} | {f"{t}::m{i}" for t in "ab" for i in range(ROUNDS)}
    lost = wanted - set(stored)
    assert not lost, f"lost {len(lost)} of {len(wanted)} entries: {sorted(lost)}"
    assert set(stored) == wanted
    assert stored["b::m19"].value == 19.5 and stored["existing::m"].value == 1.0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_update_merges_into_the_current_file_and_keeps_other_entries(tmp_path):
    path = tmp_path / "b.json"
    update_baseline_file(path, [compare_to_entry("t::x", 0.25, None, direction="lower")])
    stored = update_baseline_file(
        path,
        [
            compare_to_entry("t::y", 0.5, None, tolerance=0.1),
            compare_to_entry("t::x", 0.75, None, direction="lower"),
            compare_to_entry("t::nan", float("nan"), None),
        ],
    )
    assert stored == 2  # NaN is not stored
    assert json.loads(path.read_text())["metrics"] == {
        "t::x": {"value": 0.75, "direction": "lower", "tolerance": 0.05},
        "t::y": {"value": 0.5, "direction": "higher", "tolerance": 0.1},
    }
    assert lock_path(path) == tmp_path / "b.json.lock"


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    path = tmp_path / "b.json"
    update_baseline_file(path, [compare_to_entry("t::x", 0.25, None)])
    before = path.read_text()
    with filelock.FileLock(lock_path(path)), pytest.raises(BaselineError) as info:
        update_baseline_file(path, [compare_to_entry("t::y", 0.5, None)], timeout=0.2)
    message = str(info.value)
    assert f"cannot update baseline file {path}" in message
    assert f"its lock {path}.lock is still held by another process after 0.2 s" in message
    assert "Let that run finish, or stop it, then re-run the update" in message
    assert path.read_text() == before  # nothing written without the lock


def test_an_invalid_file_is_not_overwritten_by_an_update(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{not json")
    with pytest.raises(BaselineError, match=r"is not valid JSON \(line 1, column 2"):
        update_baseline_file(path, [compare_to_entry("t::y", 0.5, None)])
    assert path.read_text() == "{not json"


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporary_files_are_removed_at_the_next_write(tmp_path):
    target = tmp_path / "baseline.json"
    stale = tmp_path / ".baseline.json.k3x_9abc.tmp"
    fresh = tmp_path / ".baseline.json.q7w2e1rt.tmp"  # a concurrent writer's, still busy
    other = tmp_path / ".other.json.k3x_9abc.tmp"  # another target's: not ours to judge
    similar = tmp_path / ".baseline.json.k3x_9abc.tmp.keep"  # not the temp-file pattern
    for file in (stale, fresh, other, similar):
        file.write_text("{")
        if file is not fresh:
            _age(file, STALE_TMP_SECONDS + 5)
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, fresh.name, other.name, similar.name]
    )
    _age(fresh, STALE_TMP_SECONDS + 5)
    assert remove_stale_tmp(target) == 1
    assert not fresh.exists()


def test_a_writer_killed_mid_write_leaves_a_file_the_next_write_removes(tmp_path):
    """A real SIGKILL between writing the temporary file and renaming it."""
    target = tmp_path / "baseline.json"
    script = textwrap.dedent(
        """
        import os, sys, time
        from modelaudit.baseline import compare_to_entry, update_baseline_file

        def stall(src, dst):
            print("written", flush=True)
            time.sleep(60)

        os.replace = stall
        update_baseline_file(sys.argv[1], [compare_to_entry("t::killed", 0.5, None)])
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].name.startswith(".baseline.json.")
    assert '"t::killed"' in left[0].read_text()
    assert not target.exists()
    # the lock died with the process: the next update does not wait, and keeps a young
    # temporary file (it may belong to a live writer) ...
    update_baseline_file(target, [compare_to_entry("t::next", 0.25, None)], timeout=5)
    assert left[0].exists()
    # ... and removes it once it is older than STALE_TMP_SECONDS
    _age(left[0], STALE_TMP_SECONDS + 1)
    update_baseline_file(target, [compare_to_entry("t::later", 0.75, None)], timeout=5)
    assert not left[0].exists()
    assert set(Baseline.load(target)) == {"t::next", "t::later"}
