"""End to end through the real `yolo` CLI in fresh processes that never import yolo_ema themselves."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CFG

pytestmark = pytest.mark.slow

YOLO_BIN = shutil.which("yolo") or str(Path(sys.executable).parent / "yolo")
COMMON = "imgsz=64 batch=4 workers=0 device=cpu plots=False amp=False exist_ok=True seed=0 deterministic=False"


def run(cmd: str | list, env_extra: dict | None = None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "True", **(env_extra or {})}
    args = cmd if isinstance(cmd, list) else [YOLO_BIN, *cmd.split()]
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert r.returncode == 0, f"{args}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """`yolo train model=yolov8n-ema.yaml` (by bare name, in a folder without it) for one epoch; returns the run folder."""
    project = tmp_path_factory.mktemp("runs")
    run(f"train model=yolov8n-ema.yaml data={tiny_data} epochs=1 project={project} name=ema {COMMON}", cwd=project)
    return project / "ema"


def test_train_writes_ema_checkpoints(trained):
    for name in ("best.pt", "last.pt"):
        assert (trained / "weights" / name).stat().st_size > 1_000_000


def test_val_and_predict_in_fresh_processes(trained, tiny_data, tmp_path):
    best = trained / "weights" / "best.pt"
    r = run(f"val model={best} data={tiny_data} {COMMON} project={tmp_path} name=val")
    assert "all" in r.stdout + r.stderr
    r = run(f"val model=yolo11n-cbam.yaml data={tiny_data} {COMMON} project={tmp_path} name=val2", cwd=tmp_path)
    assert "YOLO11n-cbam summary" in r.stdout + r.stderr  # by bare name, an attention config
    src = tiny_data.parent / "images" / "val"
    r = run(f"predict model={best} source={src} imgsz=64 device=cpu save=False project={tmp_path} name=pred")
    assert (r.stdout + r.stderr).count("64x64") >= 4  # one line per image


@pytest.mark.parametrize("safe", ["0", "1"])
def test_checkpoint_loads_in_fresh_process(trained, safe):
    best = trained / "weights" / "best.pt"
    code = (
        "import sys; from ultralytics import YOLO\n"
        f"m = YOLO({str(best)!r})\n"
        "assert 'yolo_ema' in sys.modules  # loaded by the start-up hook / unpickling, not by this script\n"
        "print('EMA', sum(type(x).__name__ == 'EMA' for x in m.model.modules()))\n"
    )
    r = run([sys.executable, "-c", code], {"ULTRALYTICS_SAFE_LOAD": safe})
    assert "EMA 3" in r.stdout


def test_pretrained_baseline_transfers_into_ema_training(tmp_path, tiny_data):
    base = tmp_path / "yolov8n-base.pt"
    run([sys.executable, "-c", f"from ultralytics import YOLO; YOLO('yolov8n.yaml').save({str(base)!r})"])
    r = run(
        f"train model=yolov8n-ema.yaml pretrained={base} data={tiny_data} epochs=1 project={tmp_path} name=ft {COMMON}",
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert "across 3 inserted EMA layers [16, 20, 24]" in out
    # 373 tensors: all transfer but the 18 of the EMA layers and the 6 class convs (nc 80 -> 2)
    assert "Transferred 349/373 items from pretrained weights" in out


def test_resume_from_last_pt(tmp_path, tiny_data):
    """Training stopped after epoch 1 of 2 resumes from last.pt with `yolo train resume` and finishes."""
    stop = (
        "from ultralytics import YOLO\n"
        f"m = YOLO({str(CFG / 'yolov8n-ema.yaml')!r})\n"
        "def stop(trainer):\n"
        "    raise KeyboardInterrupt('simulated kill after epoch 1')\n"
        "m.add_callback('on_fit_epoch_end', stop)\n"
        "try:\n"
        f"    m.train(data={str(tiny_data)!r}, epochs=2, project={str(tmp_path)!r}, name='r', imgsz=64, batch=4, "
        "workers=0, device='cpu', plots=False, amp=False, exist_ok=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('STOPPED')\n"
    )
    assert "STOPPED" in run([sys.executable, "-c", stop]).stdout
    last = tmp_path / "r" / "weights" / "last.pt"
    assert last.exists()
    run(f"train resume model={last}")
    rows = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]


def test_new_user_chain_synthetic_prepare_train(tmp_path):
    """`yolo-ema prepare synthetic` -> `yolo-ema prepare visdrone` -> `yolo train model=yolov8n-ema.yaml`."""
    yolo_ema = shutil.which("yolo-ema") or str(Path(sys.executable).parent / "yolo-ema")
    src, out = tmp_path / "src", tmp_path / "prepared"
    run([yolo_ema, "prepare", "synthetic", "--out", str(src), "--images", "12", "--size", "128", "--no-progress"])
    run([yolo_ema, "prepare", "visdrone", "--source", str(src), "--out", str(out), "--no-progress"])
    data = out / "data.yaml"
    assert data.exists() and (out / "annotations" / "val.json").exists()
    r = run(
        f"train model=yolov8n-ema.yaml data={data} epochs=1 imgsz=128 batch=4 workers=0 device=cpu "
        f"plots=False amp=False project={tmp_path} name=chain exist_ok=True",
        cwd=tmp_path,
    )
    assert "EMA" in r.stdout + r.stderr  # the model summary lists the EMA rows
    assert (tmp_path / "chain" / "weights" / "best.pt").exists()
