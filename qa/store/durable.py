"""Durable: what makes a write survive a power cut (fsync of files and folders), and the one crash-test hook.

Every writer in the package -- snapshots, the ``CURRENT`` pointer, shards, shard lists -- fsyncs
through these, then renames; ``fault_point`` marks the places the crash tests kill the process at.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from ..errors import IndexStoreError


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (POSIX: fsync of the folder itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exclusive_lock(path: Path, busy: str, timeout: float = 0) -> Any:
    """Hold the file lock at ``path`` (a ``filelock.FileLock``; call ``release()``), or fail at once with ``busy``."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise IndexStoreError(busy) from None
    except OSError as exc:
        raise IndexStoreError(f"{path}: cannot lock ({exc.strerror or exc})") from None
    return lock


def fault_point(name: str) -> None:
    """Crash tests kill the process here with SIGKILL, as a power cut would.

    ``QA_TEST_KILL_AT=name`` kills every time; ``QA_TEST_CRASH_ONCE=name:FILE`` kills once, creating
    FILE to mark that it did (so a retried worker then gets through).
    """
    if os.environ.get("QA_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, marker = os.environ.get("QA_TEST_CRASH_ONCE", "").partition(":")
    if point == name and marker and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["fsync_file", "fsync_dir", "fault_point", "exclusive_lock"]
