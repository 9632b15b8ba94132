"""Atomic file writes: a temporary file in the target's directory, then ``os.replace``.

A reader (or a crash) never sees a half-written file: either the old content or the new.
A writer killed between the two steps (SIGKILL, power loss) leaves its temporary file
``.<name>.<random>.tmp`` behind; the next write of the same target removes those older
than :data:`STALE_TMP_SECONDS`. A live writer's file is younger than that (it is written
and renamed within one call), so concurrent writers never remove each other's files.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

__all__ = ["STALE_TMP_SECONDS", "atomic_write_bytes", "atomic_write_text", "remove_stale_tmp"]

STALE_TMP_SECONDS = 60.0
"""Age (by modification time) after which a leftover temporary file counts as abandoned."""


def _default_mode() -> int:
    # mkstemp creates 0600 files; give new files the usual 0666 & ~umask instead.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _default_mode()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent directories are created).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
        >>> atomic_write_bytes(target, b"abc").read_bytes()
        b'abc'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        mode = target.stat().st_mode & 0o777 if target.exists() else _NEW_FILE_MODE
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    remove_stale_tmp(target)
    return target


def remove_stale_tmp(path: str | os.PathLike[str], *, older_than: float = STALE_TMP_SECONDS) -> int:
    """Remove ``path``'s abandoned temporary files (``.<name>.<random>.tmp``); return how many.

    Only files of exactly the :func:`atomic_write_bytes` pattern for this target whose
    modification time is more than ``older_than`` seconds ago are removed; errors (a file
    already gone, no permission) are ignored, since a leftover file is harmless.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / ".b.json.abc123_x.tmp").write_text("{")
        >>> remove_stale_tmp(folder / "b.json", older_than=-1)
        1
    """
    target = Path(path)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]+\.tmp")
    cutoff = time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))
