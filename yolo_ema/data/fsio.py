"""Crash-safe output, the one atomic writer of the package: a file appears complete or not at all.

Every write goes to a hidden temp file in the target's folder, is flushed to disk (``fsync``) and swapped in with
``os.replace`` (atomic on POSIX; the folder is then fsynced so the new name survives a power loss too). A ``kill -9``
leaves at worst a stale temp file, which the next run removes (``remove_temps``). Writers given ``sync=False`` skip
the two fsyncs (for thousands of small files, followed by one ``sync_all()`` before a completion marker). Rewriting
identical content is a no-op. Source files are only ever read or hard-linked (a link is a new name for the same
bytes; the source entry is untouched), never moved or written. Torch-free.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".yolo-ema-tmp."


class OutputError(OSError):
    """The output folder cannot be written; names the path."""


def _tmp(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f"{TMP_PREFIX}{os.getpid()}.{name}")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened, and rename durability is the filesystem's
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike, path: str | os.PathLike, sync: bool = True) -> None:
    """Move the finished file ``tmp`` onto ``path`` (same folder) atomically, flushed to disk first if ``sync``."""
    if sync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if sync:
        _fsync_dir(os.path.dirname(os.fspath(path)))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, sync: bool = True) -> Iterator[BinaryIO]:
    """``with atomic_open(p) as f: f.write(...)``: ``p`` gets the bytes written only if the block completes.

    The parent folder is created if missing. On any error (or an exception in the block) the temp file is removed
    and ``p`` keeps its old content.
    """
    path = os.fspath(path)
    tmp = _tmp(path)
    try:
        f = open(tmp, "wb")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        f = open(tmp, "wb")
    try:
        with f:
            yield f
        publish(tmp, path, sync)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_prefix(path: str, n: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        chunks, left = [], n
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes, sync: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly that; return True if written."""
    path = os.fspath(path)
    if _read_prefix(path, len(data) + 1) == data:
        return False
    with atomic_open(path, sync) as f:
        f.write(data)
    return True


def write_text(path: str | os.PathLike, text: str, sync: bool = True) -> bool:
    """``write_bytes`` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"), sync)


def write_json(path: str | os.PathLike, obj, indent: int | None = None, sync: bool = True, default=None) -> bool:
    """``write_text`` of ``obj`` as JSON (compact unless ``indent``; NaN/Inf refused; ``default``: json.dumps' hook
    for other types), serialised before any write."""
    sep = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(obj, indent=indent, separators=sep, ensure_ascii=False, allow_nan=False, default=default)
    return write_text(path, text + "\n", sync)


def sync_all() -> None:
    """Flush every file written with ``sync=False`` to disk (before writing a completion marker)."""
    if hasattr(os, "sync"):
        os.sync()


def same_file(src_stat: os.stat_result, dst: str) -> bool:
    """True if ``dst`` is a hard link to the source, or a copy with its size and mtime."""
    try:
        st = os.stat(dst, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (st.st_ino, st.st_dev) == (src_stat.st_ino, src_stat.st_dev):
        return True
    return st.st_size == src_stat.st_size and st.st_mtime_ns == src_stat.st_mtime_ns and not os.path.islink(dst)


def link_or_copy(src: str, dst: str, src_stat: os.stat_result | None = None) -> bool:
    """Make ``dst`` a hard link to ``src`` (a copy with the same mtime if linking is impossible); never moves ``src``.

    Returns True if ``dst`` was (re)created, False if it was already right.
    """
    try:
        os.link(src, dst)  # a new name appears complete or not at all: no temp file needed
        return True
    except FileExistsError:
        pass
    except OSError:
        pass  # other filesystem or not allowed: copy below
    st = src_stat or os.stat(src)
    if same_file(st, dst):
        return False
    tmp = _tmp(dst)
    try:
        try:
            os.link(src, tmp)
        except OSError:  # other filesystem, or not allowed (fs.protected_hardlinks): copy
            shutil.copy2(src, tmp)
        publish(tmp, dst, sync=False)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def prune(folder: str | os.PathLike, keep: set[str]) -> list[str]:
    """Remove files in ``folder`` (ours, not a source) that are not in ``keep``, stale temp files included."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for e in entries:
        if e.name not in keep and not e.is_dir(follow_symlinks=False):
            os.unlink(e.path)
            removed.append(e.name)
    return removed


def remove_temps(folder: str | os.PathLike) -> None:
    """Remove stale temp files left by a killed run (only ours, by prefix)."""
    try:
        for e in os.scandir(folder):
            if e.name.startswith(TMP_PREFIX):
                os.unlink(e.path)
    except FileNotFoundError:
        pass


def makedirs(path: str | os.PathLike) -> Path:
    """Create a folder, turning a permission problem into an OutputError that names it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {path} is not writable")
    return path


def inside(child: Path, parent: Path) -> bool:
    """True if ``child`` is ``parent`` or lies under it (after resolving links)."""
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False
