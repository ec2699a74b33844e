"""The paper recipe in scripts/ runs every step (prepare, benchmark, eval, sliced eval, export) in smoke mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

RECIPE = REPO / "scripts" / "paper_recipe.sh"


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, YOLO_OFFLINE="1", OUT=str(tmp_path / "out"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_recipe_syntax_usage_and_missing_source(tmp_path):
    assert shutil.which("bash"), "bash is needed for the recipe"
    subprocess.run(["bash", "-n", str(RECIPE)], check=True)
    r = subprocess.run(["bash", str(RECIPE), "imagenet"], env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2 and "usage: paper_recipe.sh coco|visdrone" in r.stderr
    env = dict(_env(tmp_path), SRC=str(tmp_path / "nowhere"), DATA_DIR=str(tmp_path / "prepared"))
    r = subprocess.run(["bash", str(RECIPE), "coco"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and f"SRC={tmp_path / 'nowhere'} does not exist" in r.stderr
    text = RECIPE.read_text()
    assert "56.0 / 37.2 -> 57.8 / 38.4" in text and "49.29 / 30.0 -> 49.70 / 30.4" in text


@pytest.mark.slow
def test_recipe_smoke_runs_every_step(tmp_path):
    r = subprocess.run(["bash", str(RECIPE), "visdrone", "--smoke"], env=_env(tmp_path), cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for step in ("prepare:", "benchmark:", "eval:", "eval: sliced", "export:", "done:"):
        assert f"=== {step}" in r.stdout, step
    out = tmp_path / "out"
    rep = json.loads((out / "bench" / "report.json").read_text())
    assert [r["label"] for r in rep["runs"]] == ["yolov8n", "yolov8n-ema-paper"]  # the paper's placement
    assert rep["benchmark"]["configs"]["yolov8n-ema-paper"].endswith("yolov8n-ema-paper.yaml")
    assert (out / "bench" / "report.md").is_file() and (out / "bench" / "plot.png").is_file()
    assert (out / "eval" / "metrics.json").is_file() and (out / "eval-sliced" / "metrics.json").is_file()
    assert list((out / "bench" / "runs" / "yolov8n-ema-paper-seed0" / "weights").glob("best.torchscript"))
