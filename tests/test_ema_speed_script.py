"""`yolo-ema speed` at tiny sizes: it runs, prints every measurement line with paired ratios and intervals, and times
Ultralytics' own export files of the three formulations (no timing assertions)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from yolo_ema.bench import speed


def test_speed_module_is_import_light():
    code = "import sys, yolo_ema.bench.speed; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.slow
def test_speed_script_prints_layer_and_model_tables(capsys, tmp_path):
    out_json = tmp_path / "speed.json"
    rc = speed.main(
        ["--shapes", "1,16,8,8;2,32,5,7", "--train-shape", "2,16,6,6", "--repeats", "1", "--warmup", "0"]
        + ["--scales", "n", "--sizes", "64", "--model-repeats", "3", "--threads", "1", "--json", str(out_json)]
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
        'YOLO(...).export(format="onnx" | "openvino")',
        "load average",
    ):
        assert needle in out, out
    assert not re.search(r"goal|\bmet\b", out, re.I), out  # measurements only
    # whole-model rows: baseline ms, then ours and the paper formulation as paired ratios with 95% intervals
    pct = r"[+-][\d.]+% \[[+-][\d.]+, [+-][\d.]+\]"
    row = rf"yolov8n\s+64\s+{{}}\s+1\s+[\d.]+ ms\s+{pct}\s+{pct}"
    for runtime in ("eager", "onnxruntime", "openvino"):
        assert re.search(row.format(runtime), out), out
    rows = json.loads(out_json.read_text())["rows"]
    assert {r["runtime"] for r in rows} == {"eager", "onnxruntime", "openvino"}
    for r in rows:
        for k in ("ours", "paper"):
            assert r[k]["lo"] <= r[k]["ratio"] <= r[k]["hi"] and r[k]["rounds"] == 3
    # three rounds cannot give a 95% interval narrower than the range: every row is flagged as noise
    assert all(r["wide"] or r["ours"]["hi"] - r["ours"]["lo"] <= 0.04 for r in rows)


def test_exports_are_ultralytics_files_of_each_formulation(tmp_path):
    """The timed files are Ultralytics' exports; the paper arm's ONNX differs from ours (its own forward) and all three
    give the eager outputs."""
    import numpy as np
    import onnx
    import torch

    from yolo_ema.bench import cost
    from yolo_ema.bench.timing import ort_session

    models = speed.build_models("n")
    files = cost.ultralytics_exports(models, 64, "onnx", tmp_path)
    assert set(files) == {"baseline", "ours", "paper"} and all(f.endswith(".onnx") for f in files.values())
    ops = {k: {n.op_type for n in onnx.load(f).graph.node} for k, f in files.items()}
    assert "InstanceNormalization" in ops["ours"] and "InstanceNormalization" not in ops["baseline"]
    assert "MatMul" in ops["paper"] and "MatMul" not in ops["ours"]  # ours: no constant-weight matmul (NCNN)
    x = cost._input(64)
    for k, f in files.items():
        with torch.inference_mode():
            ref = cost.eval_model(models[k])(x)[0].numpy()
        got = ort_session(f, 1).run(None, {"images": x.numpy()})[0]
        assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max(), k


def test_model_table_paper_arm_runs_the_paper_forward():
    import torch

    from yolo_ema.nn.ema import EMA
    from yolo_ema.nn.ema_paper import PaperEMA

    models = speed.build_models("n")
    x = torch.rand(1, 3, 64, 64)
    ours = [m for m in models["ours"].modules() if isinstance(m, EMA)]
    paper = [m for m in models["paper"].modules() if isinstance(m, (EMA, PaperEMA))]
    assert len(ours) == len(paper) == 3
    for a, b in zip(ours, paper):
        assert type(b) is PaperEMA and type(a) is EMA
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with torch.inference_mode():
        o, p, base = (models[k](x)[0] for k in ("ours", "paper", "baseline"))
    assert (o - p).abs().max().item() <= 1e-3 * p.abs().max().item()
    assert o.shape == base.shape


def test_cli_lists_speed():
    from yolo_ema.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["speed", "--no-model", "--threads", "1"])
    assert args.threads == "1" and args._run is speed.run
