"""Ultralytics' own hyperparameter tuner on an EMA config: each iteration trains through the `yolo train` CLI in a
fresh process, which knows EMA through the plugin's start-up hook."""

from __future__ import annotations

import json
import math

import pytest


@pytest.mark.slow
def test_tune_yolov8n_ema_two_iterations(tiny_data, tmp_path):
    from ultralytics import YOLO

    from yolo_ema.bench.cost import ema_layers

    model = YOLO("yolov8n-ema.yaml")
    assert ema_layers(model.model)
    model.tune(data=str(tiny_data), epochs=1, iterations=2, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
               project=str(tmp_path), name="tune", space={"lr0": (1e-4, 1e-2), "momentum": (0.6, 0.98)})  # fmt: skip
    tune = tmp_path / "tune"
    rows = [json.loads(line) for line in (tune / "tune_results.ndjson").read_text().splitlines()]
    assert len(rows) == 2, rows
    for r in rows:
        assert math.isfinite(r["fitness"]) and set(r["hyperparameters"]) == {"lr0", "momentum"}, r
        assert not r.get("failed_datasets"), r  # both iterations trained
    assert rows[0]["hyperparameters"] != rows[1]["hyperparameters"]  # the second one was mutated
    assert (tune / "best_hyperparameters.yaml").is_file()
    best = tune / "weights" / "best.pt"
    assert ema_layers(str(best))  # the tuned model is the EMA model
