"""The paper recipes in scripts/ run every step (prepare, train, eval, benchmark, export) in smoke mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SCRIPTS = ("visdrone_paper.sh", "coco_paper.sh")


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, YOLO_OFFLINE="1", SMOKE="1", OUT=str(tmp_path / "out"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_syntax_and_bad_data(script, tmp_path):
    assert shutil.which("bash"), "bash is needed for the recipes"
    subprocess.run(["bash", "-n", str(REPO / "scripts" / script)], check=True)
    env = dict(_env(tmp_path), SMOKE="0", DATA="nonsense")
    r = subprocess.run(["bash", str(REPO / "scripts" / script)], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "DATA must be" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_smoke_runs_every_step(script, tmp_path):
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / script), "--smoke"],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for step in ("prepare:", "train:", "eval:", "benchmark:", "export:", "done:"):
        assert f"=== {step}" in r.stdout, step
    bench = tmp_path / "out" / "bench-yolov8n"
    rep = json.loads((bench / "report.json").read_text())
    assert {run["status"] for run in rep["runs"]} == {"recovered"}  # the script's `yolo train` runs, not retrained
    assert (bench / "report.md").is_file() and (bench / "plot.png").is_file()
    assert list((bench / "runs" / "yolov8n-ema-seed0" / "weights").glob("best.torchscript"))
    assert (tmp_path / "out" / "eval-yolov8n" / "metrics.json").is_file()
