"""The one atomic writer: all or nothing, identical rewrites skipped, temp files cleaned, parents created."""

import json
import os

import pytest

from yolo_ema.data import fsio


def _temps(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(fsio.TMP_PREFIX)]


def test_write_creates_parents_and_skips_identical_content(tmp_path):
    p = tmp_path / "a" / "b" / "x.txt"
    assert fsio.write_text(p, "héllo\n") is True
    assert p.read_bytes() == "héllo\n".encode()
    ino = p.stat().st_ino
    assert fsio.write_text(p, "héllo\n", sync=False) is False  # same bytes: the file is not replaced
    assert p.stat().st_ino == ino
    assert fsio.write_text(p, "héllo") is True  # a prefix of the old content is a change
    assert p.read_text() == "héllo" and p.stat().st_ino != ino
    assert _temps(p.parent) == []


def test_failure_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with fsio.atomic_open(p) as f:
            f.write(b"new, half written")
            assert _temps(tmp_path)  # the bytes go to a temp file beside the target
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old" and _temps(tmp_path) == []


def test_write_json_is_serialised_before_the_file_is_touched(tmp_path):
    p = tmp_path / "r.json"
    fsio.write_json(p, {"a": [1, 2.5], "é": None}, indent=1)
    assert json.loads(p.read_text()) == {"a": [1, 2.5], "é": None} and p.read_text().endswith("\n")
    with pytest.raises(ValueError):
        fsio.write_json(p, {"a": float("nan")})
    assert json.loads(p.read_text())["a"] == [1, 2.5] and _temps(tmp_path) == []
    fsio.write_json(p, {"a": 1})
    assert p.read_text() == '{"a":1}\n'  # compact by default


def test_publish_moves_a_finished_file_into_place(tmp_path):
    part = tmp_path / "f.part"
    part.write_bytes(b"done")
    fsio.publish(part, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"done" and not part.exists()


def test_remove_temps_removes_only_ours(tmp_path):
    (tmp_path / f"{fsio.TMP_PREFIX}123.x.txt").write_text("stale")
    (tmp_path / ".hidden").write_text("user's")
    fsio.remove_temps(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [".hidden"]
