"""Extract an official zip archive next to the output, resumably; the archive itself is only read.

Each member is written atomically (yolo_ema.data.fsio), members already present with the right size are skipped, and a
marker written last (``.<archive>.extracted``: archive size and mtime) lets a later run skip the whole archive.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from yolo_ema.data import fsio


class ArchiveError(ValueError):
    """A bad or unsafe archive; names the file and member."""


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``archive`` under ``dest`` (skipping what is already there) and return ``dest``."""
    archive, dest = Path(archive), fsio.makedirs(dest)
    st = archive.stat()
    marker = dest / f".{archive.name}.extracted"
    stamp = f"{st.st_size} {st.st_mtime_ns}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArchiveError(f"{archive}: not a readable zip archive ({e})") from None
    with zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith("/") or ".." in parts:
                raise ArchiveError(f"{archive}: unsafe member path {info.filename!r}")
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            try:
                with zf.open(info) as src, fsio.atomic_open(target, sync=False) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except zipfile.BadZipFile as e:
                raise ArchiveError(f"{archive}: member {info.filename!r} is corrupt ({e})") from None
    fsio.sync_all()  # every member on disk before the marker says so
    fsio.write_text(marker, stamp)
    return dest
