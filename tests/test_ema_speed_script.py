"""Smoke run of `yolo-ema speed` at tiny sizes: it runs and prints every ratio line (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys

from yolo_ema.bench import speed


def test_speed_module_is_import_light():
    code = "import sys, yolo_ema.bench.speed; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_speed_script_prints_ratios(capsys):
    rc = speed.main(
        ["--shapes", "1,16,8,8;2,32,5,7", "--train-shape", "2,16,6,6", "--repeats", "1", "--warmup", "0", "--no-model"]
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
        "goals met:",
    ):
        assert needle in out, out
    assert out.count(" ratio ") >= 5 and "goal <= 0.45" in out and "goal <= 0.7" in out


def test_cli_lists_speed():
    from yolo_ema.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["speed", "--no-model", "--threads", "1"])
    assert args.threads == 1 and args._run is speed.run
