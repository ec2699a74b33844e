"""Smoke run of `yolo-ema speed` at tiny sizes: it runs and prints every measurement line (no timing assertions)."""

from __future__ import annotations

import re
import subprocess
import sys

from yolo_ema.bench import speed


def test_speed_module_is_import_light():
    code = "import sys, yolo_ema.bench.speed; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_speed_script_prints_layer_and_model_tables(capsys):
    rc = speed.main(
        ["--shapes", "1,16,8,8;2,32,5,7", "--train-shape", "2,16,6,6", "--repeats", "1", "--warmup", "0"]
        + ["--scales", "n", "--sizes", "64", "--model-repeats", "1", "--threads", "1"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    for needle in (
        "forward (1, 16, 8, 8): paper",
        "forward (2, 32, 5, 7): paper",
        "forward+backward (2, 16, 6, 6): paper",
        "parity (2, 16, 6, 6)",
        "memory paper",
        "memory ours",
        "flops (1, 16, 8, 8): paper",
        "flops (FlopCounterMode): yolov8n 64:",
    ):
        assert needle in out, out
    assert out.count(" ratio ") >= 5
    assert not re.search(r"goal|\bmet\b", out, re.I), out  # measurements only
    # whole-model rows: baseline ms, then ours and the paper formulation, each with its change over the baseline
    row = r"yolov8n\s+64\s+{}\s+[\d.]+ ms\s+[\d.]+ ms\s+[+-][\d.]+%\s+[\d.]+ ms\s+[+-][\d.]+%"
    for runtime in ("eager", "onnxruntime", "openvino"):
        assert re.search(row.format(runtime), out), out


def test_model_table_paper_arm_runs_the_paper_forward():
    import torch

    from yolo_ema.nn.ema import EMA
    from yolo_ema.nn.ema_paper import PaperEMA

    models = speed.build_models("n")
    x = torch.rand(1, 3, 64, 64)
    emas = {k: [m for m in models[k].modules() if isinstance(m, EMA)] for k in ("ours", "paper")}
    assert len(emas["ours"]) == len(emas["paper"]) == 3
    for a, b in zip(emas["ours"], emas["paper"]):
        assert b.forward.__func__ is PaperEMA.forward and "forward" not in a.__dict__
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with torch.inference_mode():
        ours, paper, base = (models[k](x)[0] for k in ("ours", "paper", "baseline"))
    assert (ours - paper).abs().max().item() <= 1e-3 * paper.abs().max().item()
    assert ours.shape == base.shape


def test_cli_lists_speed():
    from yolo_ema.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["speed", "--no-model", "--threads", "1"])
    assert args.threads == 1 and args._run is speed.run
