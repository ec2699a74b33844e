"""Real VisDrone images, when the reference folder beside the project is present: prepare, a short benchmark on the
prepared folder, and sliced evaluation, all through the command line. The files are read in place, never copied."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

REAL = REPO.parent / "shared" / "visdrone-real"


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL / "VisDrone2019-DET-val" / "images").is_dir(), reason=f"no real VisDrone images at {REAL}"
)
def test_real_visdrone_prepare_benchmark_and_sliced_eval(tmp_path):
    from yolo_ema.cli import main

    prepared = tmp_path / "visdrone"
    assert main(["prepare", "visdrone", "--source", str(REAL), "--out", str(prepared), "--no-progress"]) == 0
    rep = json.loads((prepared / "report.json").read_text())
    assert rep["complete"] and rep["splits"]["train"]["images"] == 12 and rep["splits"]["val"]["images"] == 8

    out = tmp_path / "bench"
    args = ["benchmark", "--data", str(prepared), "--arms", "ema", "--seeds", "0", "--epochs", "1", "--imgsz", "64",
            "--batch", "4", "--device", "cpu", "--workers", "0", "--pretrain-epochs", "0", "--no-val",
            "--resamples", "20", "--latency-sizes", "64", "--latency-runs", "1", "--latency-warmup", "0", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    bench = json.loads((out / "report.json").read_text())
    assert bench["benchmark"]["protocol"] == "visdrone"  # the toolkit's protocol for VisDrone ground truth
    assert [r["label"] for r in bench["runs"]] == ["yolov8n", "yolov8n-ema"]
    assert all(r["eval"]["n_images"] == 8 for r in bench["runs"])
    assert "yolov8n-ema" in bench["bootstrap"]["arms"]

    weights = bench["runs"][1]["weights"]
    assert main(["eval", "--model", weights, "--data", str(prepared), "--imgsz", "64", "--slice", "320",
                 "--out", str(tmp_path / "sliced"), "--no-per-class"]) == 0  # fmt: skip
    sliced = json.loads((tmp_path / "sliced" / "metrics.json").read_text())
    assert "visdrone" in json.dumps(sliced)
