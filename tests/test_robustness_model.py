"""Bad models and checkpoints: clear errors that name the culprit, nothing half-registered."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
import zipfile

import pytest
import torch
from conftest import CFG, REPO
from ultralytics import YOLO

from yolo_ema.seam.compat import STATE, IncompatibleUltralyticsError, check_parser


def test_parser_shape_check_names_what_changed():
    def parse_model(d, channels, verbose=True):  # a future parser without the locals we read
        return globals()[d]

    fake = types.SimpleNamespace(parse_model=parse_model, BaseModel=object)
    problem = check_parser(fake)
    assert problem is not None and "['ch', 'f', 'i']" in problem and "ultralytics 8.4.190" in problem
    assert check_parser(types.SimpleNamespace()).startswith(
        "ultralytics 8.4.190 has no ultralytics.nn.tasks.parse_model"
    )
    from ultralytics.nn import tasks

    assert check_parser(tasks) is None


def test_incompatible_parser_fails_at_the_ema_row(monkeypatch):
    monkeypatch.setitem(STATE, "problem", "ultralytics 9.0.0: parse_model changed")
    with pytest.raises(IncompatibleUltralyticsError, match="yolo-ema cannot build EMA rows: ultralytics 9.0.0"):
        YOLO(str(CFG / "yolov8n-ema.yaml"))


@pytest.fixture(scope="module")
def ema_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ema.pt"
    YOLO(str(CFG / "yolov8n-ema.yaml")).save(str(path))
    return path


def _load_in_subprocess(path, env_extra=None):
    code = f"from ultralytics import YOLO; m = YOLO({str(path)!r}); print('LOADED', type(m.model).__name__)"
    env = {**os.environ, "YOLO_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "not_a_checkpoint"])
def test_damaged_checkpoint_gives_clear_error_and_is_left_alone(ema_ckpt, tmp_path, damage):
    bad = tmp_path / f"{damage}.pt"
    data = ema_ckpt.read_bytes()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "zero_bytes": b"", "not_a_checkpoint": b"\xff\xd8 jpeg"}[damage]
    )
    before = bad.read_bytes()
    with pytest.raises(TypeError, match=rf"{bad.name} is not a loadable checkpoint"):
        YOLO(str(bad))
    assert bad.read_bytes() == before  # never touched


def test_safe_load_accepts_ema_and_refuses_smuggled_callable(ema_ckpt, tmp_path):
    ok = _load_in_subprocess(ema_ckpt, {"ULTRALYTICS_SAFE_LOAD": "1"})
    assert ok.returncode == 0 and "LOADED DetectionModel" in ok.stdout, ok.stderr[-2000:]

    class Smuggled:
        def __reduce__(self):
            return (os.system, ("echo PWNED",))

    ckpt = torch.load(ema_ckpt, weights_only=False)
    ckpt["payload"] = Smuggled()
    evil = tmp_path / "evil.pt"
    torch.save(ckpt, evil)
    r = _load_in_subprocess(evil, {"ULTRALYTICS_SAFE_LOAD": "1"})
    assert r.returncode != 0 and "PWNED" not in r.stdout
    assert "references types outside the supported Ultralytics checkpoint format" in r.stderr


def test_checkpoint_without_yolo_ema_names_the_missing_package(ema_ckpt, tmp_path):
    """Where yolo_ema cannot be imported, the load fails naming the yolo_ema module (pip name: yolo-ema)."""
    blocker = tmp_path / "block.py"
    blocker.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'yolo_ema':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'yolo_ema' not in type(f).__module__]\n"
        "for k in [k for k in sys.modules if k.split('.')[0] == 'yolo_ema']:\n"
        "    del sys.modules[k]\n"
        "sys.meta_path.insert(0, Block())\n"
        "from ultralytics.utils import checks\n"
        "checks.check_requirements = lambda *a, **k: print('WOULD INSTALL', a)  # no pip run inside tests\n"
        f"from ultralytics import YOLO\nYOLO({str(ema_ckpt)!r})\n"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "True"}
    r = subprocess.run([sys.executable, str(blocker)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "appears to require 'yolo_ema'" in out and "WOULD INSTALL ('yolo_ema',)" in out
    assert "No module named 'yolo_ema'" in r.stderr


def test_checkpoint_zip_holds_the_ema_class_reference(ema_ckpt):
    """What a loader without yolo-ema sees: the pickle names yolo_ema.nn.ema.EMA (so the missing package is named)."""
    with zipfile.ZipFile(ema_ckpt) as z:
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        data = z.read(name)
    assert b"yolo_ema.nn.ema" in data and b"EMA" in data
    assert pickle.DEFAULT_PROTOCOL >= 2
