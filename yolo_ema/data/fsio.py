"""Crash-safe output: every file appears complete or not at all, and rewriting identical content is a no-op.

Writes go to a hidden temp file in the target folder and are swapped in with ``os.replace`` (atomic on POSIX), so a
``kill -9`` leaves at worst a stale temp file, which the next run removes. Source files are only ever read or
hard-linked (a link is a new name for the same bytes; the source entry is untouched), never moved or written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TMP_PREFIX = ".yolo-ema-tmp."


class OutputError(OSError):
    """The output folder cannot be written; names the path."""


def _tmp(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f"{TMP_PREFIX}{os.getpid()}.{name}")


def _read_prefix(path: str, n: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
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


def write_bytes(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly that; return True if written."""
    path = os.fspath(path)
    if _read_prefix(path, len(data) + 1) == data:
        return False
    tmp = _tmp(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def write_text(path: str | os.PathLike, text: str) -> bool:
    return write_bytes(path, text.encode("utf-8"))


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
        os.replace(tmp, dst)
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
