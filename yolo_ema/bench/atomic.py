"""Atomic file writes for the benchmark's outputs: a temp file in the same folder, then ``os.replace``.

A reader never sees a half-written report or marker: either the old file or the complete new one. On any failure
the temp file is removed and the error re-raised.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

TMP_PREFIX = ".bench-tmp-"


def write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` to fill a temp file next to ``path``, then move it onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write_with(path, _write)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (serialised fully before the file is touched)."""
    return write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    """The JSON in ``path``, or None if it does not exist or is unreadable/corrupt."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
