"""A real tiny `yolo-ema benchmark`, SIGKILLed inside epoch 2 of one training run, then re-run: it resumes that run,
reuses the finished ones, and writes the full report. CLI errors name the culprit."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from yolo_ema.bench import stats

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
    ap50 = rep["bootstrap"]["arms"]["yolov8n-ema"]["pooled"]["AP50"]
    assert ap50["resamples"] == 20 and ap50["covers"] == stats.IMAGES_ONLY  # one seed: image sampling only
    assert ap50["verdict"] == stats.verdict(ap50["lo"], ap50["hi"]) and ap50["lo"] <= ap50["diff"] <= ap50["hi"]
    assert ap50["seeds_for_1_point"] is None and ap50["mde"] == pytest.approx(stats.mde(ap50["se"], math.inf))
    c = rep["cost"]
    assert c["yolov8n-ema"]["params"] - c["yolov8n"]["params"] == c["yolov8n-ema"]["ema_params"] > 0
    lat = c["yolov8n"]["latency"]
    runtimes = {"eager", "onnxruntime", "openvino"}  # Ultralytics' own ONNX and OpenVINO files, each also at 1 thread
    assert set(lat) == {"64", "96"} and set(lat["96"]) == runtimes | {f"{r} 1 thread" for r in runtimes}
    ema = c["yolov8n-ema"]["latency"]["96"]["onnxruntime"]["vs_first"]  # the paired ratio with its interval
    assert ema["lo"] <= ema["ratio"] <= ema["hi"] and ema["rounds"] == 1
    md = (out / "report.md").read_text()
    assert md.splitlines()[2].startswith(
        f"- **these yolov8n-ema weights** vs these yolov8n weights (one training each: image sampling only, training "
        f"noise not measured): **{ap50['verdict']}** in COCO AP50"
    )
    assert md.splitlines()[0] in capsys.readouterr().out


@pytest.mark.slow
def test_control_arm_trains_disjoint_seeds_and_is_scored_over_seeds_and_images(tmp_path, capsys):
    from scipy import stats as st

    from yolo_ema.cli import main

    out = tmp_path / "bench"
    assert (
        main(["benchmark", "--out", str(out), *TINY, "--epochs", "1", "--seeds", "0", "1", "--arms", "control", "ema"])
        == 0
    )  # fmt: skip (the later options win)
    rep = json.loads((out / "report.json").read_text())
    assert [(r["label"], r["seed"]) for r in rep["runs"]] == [
        ("yolov8n", 0), ("yolov8n-control", 1000), ("yolov8n-ema", 0),
        ("yolov8n", 1), ("yolov8n-control", 1001), ("yolov8n-ema", 1),
    ]  # fmt: skip
    assert rep["benchmark"]["configs"]["yolov8n-control"] == rep["benchmark"]["configs"]["yolov8n"]
    assert set(rep["cost"]) == {"yolov8n", "yolov8n-ema"}  # the control is the baseline's own model
    for label in ("yolov8n-control", "yolov8n-ema"):
        iv = rep["bootstrap"]["arms"][label]["pooled"]["AP50"]
        # the interval by hand: mean of the per-seed differences +- t(0.975, 1) * sqrt(var / 2 + shared image var)
        seeds = [0, 1]
        run_seeds = [1000 + s for s in seeds] if label.endswith("control") else seeds
        boot = []
        for s, a in zip(seeds, run_seeds):
            b = json.loads(next((out / "runs" / f"yolov8n-seed{s}").glob("bootstrap-*.json")).read_text())["scores"]
            x = json.loads(next((out / "runs" / f"{label}-seed{a}").glob("bootstrap-*.json")).read_text())["scores"]
            j = b["keys"].index("AP50")
            boot.append((np.array(x["full"]["AP50"] - b["full"]["AP50"]),
                         np.array(x["boot"], float)[:, j] - np.array(b["boot"], float)[:, j]))  # fmt: skip
        d = np.array([f for f, _ in boot])
        shared = max(0.0, float(np.cov(boot[0][1], boot[1][1])[0, 1]))
        half = st.t.ppf(0.975, 1) * np.sqrt(d.var(ddof=1) / 2 + shared)
        assert iv["covers"] == stats.SEEDS_AND_IMAGES and iv["n_seeds"] == 2
        assert (iv["lo"], iv["hi"]) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-9)
    md = (out / "report.md").read_text().splitlines()
    assert md[2].startswith("- **yolov8n-control** vs yolov8n (2 seeds): **") and "can detect differences" in md[2]
    assert md[3].startswith("- **yolov8n-ema** vs yolov8n (2 seeds): **")

    given = tmp_path / "given"  # --weights: evaluation only, the verdict speaks of these weights
    w = [r["weights"] for r in rep["runs"][:3:2]]  # yolov8n and yolov8n-ema, seed 0
    data = rep["benchmark"]["data_dir"]
    assert main(["benchmark", "--weights", *w, "--data", data, "--out", str(given), "--imgsz", "64",
                 "--resamples", "20", "--latency-sizes", "64", "--latency-runs", "1", "--latency-warmup", "0"]) == 0  # fmt: skip
    g = json.loads((given / "report.json").read_text())
    assert [r["status"] for r in g["runs"]] == ["given", "given"]
    iv = next(iter(g["bootstrap"]["arms"].values()))["pooled"]["AP50"]
    assert iv["covers"] == stats.IMAGES_ONLY and "these weights only" in g["bootstrap"]["method"]
    assert (given / "report.md").read_text().splitlines()[2].startswith("- **these ")


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
    assert main(["benchmark", "--seeds", "1000", "--arms", "control", "--out", str(tmp_path)]) == 2
    assert "--seeds [1000] with --arms control" in capsys.readouterr().err


def test_presets_cpu_default_and_gpu_scale_up():
    import argparse
    import dataclasses

    from yolo_ema.bench import cli, pipeline, presets
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
    assert (cpu.arms, cpu.seeds) == (list(presets.DEFAULT["arms"]), list(presets.DEFAULT["seeds"]))
    assert cpu.pretrain_epochs > 0 and pipeline.Config() == dataclasses.replace(
        cpu, command=None, out=pipeline.Config().out
    )
    assert cpu.device == "cpu" and cpu.resamples == presets.DEFAULT["resamples"] >= 500
    gpu = cli.config_from_args(p.parse_args(["--device", "0"]))
    assert gpu.device == "0" and gpu.imgsz == 640 and gpu.synthetic_images >= 1000 and gpu.epochs > cpu.epochs
    assert default_jobs("0") == 1
    mine = cli.config_from_args(p.parse_args(["--device", "0", "--imgsz", "320", "--synthetic-images", "50"]))
    assert (mine.imgsz, mine.synthetic_images) == (320, 50)  # an explicit option wins over the preset
