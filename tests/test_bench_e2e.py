"""A real tiny `yolo-ema benchmark`, SIGKILLed inside epoch 2 of one training run, then re-run: it resumes that run,
reuses the finished ones, and writes the full report. CLI errors name the culprit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

TINY = ["--synthetic-images", "12", "--synthetic-size", "96", "--imgsz", "64", "--epochs", "3", "--seeds", "0"]
TINY += ["--pretrain-epochs", "1", "--arms", "ema", "--batch", "4", "--jobs", "2", "--resamples", "20"]
TINY += ["--latency-sizes", "64", "96", "--latency-runs", "1", "--latency-warmup", "0"]

# `yolo-ema benchmark` with one extra Ultralytics default callback. Spawned training workers import this file as
# their main module, so the callback is in every process. In the run named by KILL_RUN, at the end of the first batch
# of epoch 2, it waits until the file KILL_AFTER exists (the other run's done.json), writes KILL_MARKER and SIGKILLs
# the whole process group: the benchmark and every worker die at a point the test controls.
KILLING_BENCHMARK = """
import os, signal, sys, time
from pathlib import Path

from ultralytics.utils.callbacks.base import default_callbacks


def kill_in_epoch_2(trainer):
    if trainer.epoch == 1 and Path(trainer.save_dir).name == os.environ["KILL_RUN"]:
        after = Path(os.environ["KILL_AFTER"])
        deadline = time.monotonic() + 600
        while not after.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        Path(os.environ["KILL_MARKER"]).write_text("killed in epoch 2\\n")
        os.killpg(os.getpgrp(), signal.SIGKILL)


default_callbacks["on_train_batch_end"].append(kill_in_epoch_2)

if __name__ == "__main__":
    from yolo_ema.cli import main

    sys.exit(main())
"""


@pytest.mark.slow
def test_benchmark_killed_in_training_resumes_and_reports(tmp_path, capsys):
    from yolo_ema.cli import main

    out = tmp_path / "bench"
    runs = out / "runs"
    wrapper = tmp_path / "killing_benchmark.py"
    wrapper.write_text(KILLING_BENCHMARK)
    marker = tmp_path / "killed"
    env = dict(os.environ, YOLO_OFFLINE="1", KILL_RUN="yolov8n-ema-seed0", KILL_MARKER=str(marker),
               KILL_AFTER=str(runs / "yolov8n-seed0" / "done.json"))  # fmt: skip
    with open(tmp_path / "killed.log", "w") as log:
        p = subprocess.run([sys.executable, str(wrapper), "benchmark", "--out", str(out), *TINY], env=env,
                           cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, timeout=900)  # fmt: skip
    assert p.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert marker.read_text() == "killed in epoch 2\n"
    assert (runs / "yolov8n-pretrain-seed0" / "done.json").is_file() and (
        runs / "yolov8n-seed0" / "done.json"
    ).is_file()
    assert not (runs / "yolov8n-ema-seed0" / "done.json").exists()
    assert not (out / "report.md").exists()

    assert main(["benchmark", "--out", str(out), *TINY]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [(r["label"], r["seed"], r["status"]) for r in rep["runs"]] == [
        ("yolov8n", 0, "skipped"),  # finished before the kill: not retrained
        ("yolov8n-ema", 0, "resumed"),  # killed in epoch 2: resumed from its last.pt
    ]
    epochs = (runs / "yolov8n-ema-seed0" / "results.csv").read_text().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in epochs] == [1, 2, 3]  # epoch 1 kept, 2 and 3 after the resume
    for f in ("report.md", "report.json", "plot.png", "attention.png"):
        assert (out / f).is_file(), f
    assert set(rep["bootstrap"]["arms"]) == {"yolov8n-ema"}
    pooled = rep["bootstrap"]["arms"]["yolov8n-ema"]["pooled"]
    assert pooled["AP50"]["resamples"] == 20 and pooled["AP50"]["verdict"] in (
        "better",
        "worse",
        "no detectable difference",
    )
    c = rep["cost"]
    assert c["yolov8n-ema"]["params"] - c["yolov8n"]["params"] == c["yolov8n-ema"]["ema_params"] > 0
    lat = c["yolov8n"]["latency"]
    assert set(lat) == {"64", "96"} and set(lat["96"]) == {"eager", "onnxruntime"}
    md = (out / "report.md").read_text()
    assert md.splitlines()[2].startswith("- **yolov8n-ema** vs yolov8n (one seed): COCO AP50 **")
    assert md.splitlines()[0] in capsys.readouterr().out


def test_cli_errors_name_the_culprit(tmp_path, capsys):
    from yolo_ema.cli import main

    assert main(["benchmark", "--model", "yolov9z", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "yolov9z.yaml" in capsys.readouterr().err  # the models are checked before any work
    assert main(["benchmark", "--arms", "nonsense", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "yolov8n-nonsense.yaml" in err and "ema-paper" in err  # lists the arms that exist
    assert main(["benchmark", "--arms", "ema", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err  # data folder: data.yaml missing
    assert main(["benchmark", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert main(["benchmark", "--seeds", "1", "1", "--out", str(tmp_path)]) == 2
    assert "duplicates" in capsys.readouterr().err


def test_presets_cpu_default_and_gpu_scale_up():
    import argparse

    from yolo_ema.bench import cli
    from yolo_ema.bench.jobs import default_jobs
    from yolo_ema.data import synthetic

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    cpu = cli.config_from_args(p.parse_args([]))
    assert (cpu.synthetic_images, cpu.synthetic_size, cpu.imgsz) == (
        synthetic.DEFAULT_IMAGES,
        synthetic.DEFAULT_SIZE,
        256,
    )
    assert cpu.arms == ["ema", "ema-paper"] and cpu.seeds == [0, 1, 2] and cpu.pretrain_epochs > 0
    assert cpu.device == "cpu" and cpu.resamples >= 1000
    gpu = cli.config_from_args(p.parse_args(["--device", "0"]))
    assert gpu.device == "0" and gpu.imgsz == 640 and gpu.synthetic_images >= 1000 and gpu.epochs > cpu.epochs
    assert default_jobs("0") == 1
    mine = cli.config_from_args(p.parse_args(["--device", "0", "--imgsz", "320", "--synthetic-images", "50"]))
    assert (mine.imgsz, mine.synthetic_images) == (320, 50)  # an explicit option wins over the preset
