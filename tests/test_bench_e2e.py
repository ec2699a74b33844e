"""One tiny real `yolo-ema benchmark` run (train, eval, cost, report), then a re-run that reuses everything."""

from __future__ import annotations

import json

import pytest

TINY = ["--synthetic-images", "12", "--synthetic-size", "96", "--imgsz", "64", "--epochs", "1", "--seeds", "0"]
TINY += ["--batch", "4", "--latency-runs", "2", "--latency-warmup", "0"]


@pytest.mark.slow
def test_tiny_benchmark_end_to_end_and_resume(tmp_path, capsys):
    from yolo_ema.bench import pipeline
    from yolo_ema.cli import main

    out = tmp_path / "bench"
    assert main(["benchmark", "--out", str(out), *TINY]) == 0
    for f in ("report.md", "report.json", "plot.png"):
        assert (out / f).is_file(), f
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["metrics"]) >= {"mAP50-95", "mAP50", "AP", "AP50", "AP75", "AP_very_tiny", "AP_tiny", "AP_small"}
    assert "VisDrone_AR500" in rep["metrics"]  # synthetic set goes through the VisDrone path
    assert [(r["label"], r["seed"], r["status"]) for r in rep["runs"]] == [
        ("yolov8n", 0, "trained"),
        ("yolov8n-ema", 0, "trained"),
    ]
    c = rep["cost"]
    assert c["yolov8n-ema"]["params"] - c["yolov8n"]["params"] == c["yolov8n-ema"]["ema_params"] > 0
    assert c["yolov8n-ema"]["gflops"] > c["yolov8n"]["gflops"]
    assert rep["metrics"]["AP"]["baseline"]["values"] == [rep["runs"][0]["eval"]["coco"]["AP"]]
    md = (out / "report.md").read_text()
    assert "yolov8n vs yolov8n-ema" in md and "pipeline works" in md
    assert "yolov8n vs yolov8n-ema" in capsys.readouterr().out

    def must_not_train(*a, **k):
        raise AssertionError("a finished run was retrained")

    cfg = pipeline.Config(out=out, seeds=[0], epochs=1, imgsz=64, batch=4, synthetic_images=12, synthetic_size=96,
                          latency_runs=1, latency_warmup=0)  # fmt: skip
    res = pipeline.run(cfg, train_fn=must_not_train, log=lambda m: None)
    assert [r["status"] for r in res["results"]["runs"]] == ["skipped", "skipped"]


def test_cli_errors_name_the_culprit(tmp_path, capsys):
    from yolo_ema.cli import main

    assert main(["benchmark", "--model", "yolov9z", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err  # data folder checked first: data.yaml missing
    (tmp_path / "annotations").mkdir()
    (tmp_path / "data.yaml").write_text("names: {0: a}\n")
    (tmp_path / "annotations" / "val.json").write_text("{}")
    assert main(["benchmark", "--model", "yolov9z", "--out", str(tmp_path / "o"), "--data", str(tmp_path)]) == 2
    assert "yolov9z-ema.yaml" in capsys.readouterr().err
    assert main(["benchmark", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
