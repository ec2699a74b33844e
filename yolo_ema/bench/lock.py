"""Exclusive locks on benchmark folders: one driver per ``--out``, one trainer per run.

A lock is ``fcntl.flock`` on a small file (``OUT/.lock`` for the driver, ``OUT/locks/<run>.lock`` for a run) that
names its holder (pid, host, start time). The kernel drops it when the holder's process ends, killed or not, so a
crashed driver or worker never leaves a stale lock. On NFS (v4, and v3 with lockd) Linux turns ``flock`` into a
byte-range lock the server enforces across machines. On systems without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

from yolo_ema.bench.runner import BenchmarkError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

DRIVER = ".lock"


def holder() -> str:
    """Who this process is, as written into the lock file: ``pid 123 on host since 2026-01-01 12:00:00 UTC``."""
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"pid {os.getpid()} on {socket.gethostname()} since {since}"


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip() or "holder unknown"
    except OSError:
        return "holder unknown"


@contextlib.contextmanager
def hold(
    folder: str | os.PathLike, name: str = DRIVER, wait: bool = False, log: Callable | None = None
) -> Iterator[Path]:
    """Hold the lock ``folder/name`` for the ``with`` block; return its path.

    ``wait=False``: a lock held elsewhere is a :class:`BenchmarkError` naming the folder and the holder.
    ``wait=True``: block until the holder lets go (``log`` says who is waited for).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if fcntl is None:  # pragma: no cover
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _read(path)
            if not wait:
                raise BenchmarkError(
                    f"{folder} is in use by another benchmark ({who}; lock {path}): wait for it to end or use "
                    "another --out"
                ) from None
            if log:
                log(f"waiting for {path} ({who})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise BenchmarkError(f"cannot lock {path}: the file system of {folder} has no locks ({e})") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder() + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiter)
