"""EMA models export (ONNX static/dynamic/FP16/simplified/batch 2, TorchScript, OpenVINO) with standard
operators only, and match PyTorch (raw head and post-NMS detections); parity failures are loud.

One small yolov8n-ema is trained for 1 epoch at 64 px on the tiny set (module fixture). Such a model scores every
box below 0.01, which would leave NMS parity with nothing to compare, so the fixture raises the class-logit biases
by 5: scores then spread over (0, 1) following the trained features and NMS has confident, overlapping boxes to keep
or suppress.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CFG

from yolo_ema.export import graph
from yolo_ema.export.exporting import export
from yolo_ema.export.parity import ParityError, check_parity, load_images

IMGSZ = 64
CONF = 0.25
ANCHORS = {64: 8 * 8 + 4 * 4 + 2 * 2, 96: 12 * 12 + 6 * 6 + 3 * 3}  # strides 8, 16, 32
NO = 4 + 2  # box + 2 classes of the tiny set
BIN = Path(sys.executable).parent


def cli(*argv: str, tool: str = "yolo-ema", cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run ``tool`` (from this venv) in a fresh process; ``cwd`` keeps stray Ultralytics folders out of the repo."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", **(env or {})}
    exe = shutil.which(tool) or str(BIN / tool)
    return subprocess.run([exe, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_data) -> Path:
    """yolov8n-ema trained 1 epoch at 64 px, class biases +5 (see module docstring)."""
    from ultralytics import YOLO

    runs = tmp_path_factory.mktemp("export-train")
    YOLO(str(CFG / "yolov8n-ema.yaml")).train(
        data=str(tiny_data), epochs=1, imgsz=IMGSZ, batch=4, workers=0, device="cpu", plots=False, amp=False,
        val=False, project=str(runs), name="ema", exist_ok=True, seed=0, deterministic=False, verbose=False,
    )  # fmt: skip
    m = YOLO(str(runs / "ema" / "weights" / "last.pt"))
    for seq in m.model.model[-1].cv3:
        seq[-1].bias.data += 5.0
    out = runs / "ema-confident.pt"
    m.save(str(out))
    return out


@pytest.fixture(scope="module")
def images(tiny_data):
    return load_images(data=tiny_data, n=4)


@pytest.fixture(scope="module")
def dyn_onnx(weights, tmp_path_factory) -> Path:
    """``yolo export format=onnx dynamic=True`` through the real Ultralytics CLI in a fresh process."""
    d = tmp_path_factory.mktemp("dyn")
    pt = d / "best.pt"
    shutil.copy(weights, pt)
    r = cli(
        "export", f"model={pt}", "format=onnx", "dynamic=True", "simplify=True", f"imgsz={IMGSZ}", tool="yolo", cwd=d
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return d / "best.onnx"


@pytest.mark.slow  # shares the trained-model fixture (~30 s once per module)
def test_dynamic_onnx_standard_ops_and_shapes(dyn_onnx):
    import onnx
    import onnxruntime as ort

    ops = graph.check_onnx_standard(dyn_onnx)
    assert {domain for domain, _ in ops} == {"ai.onnx"}
    kinds = {op for _, op in ops}
    assert not kinds & {"ATen", "PythonOp", "AdaptiveAvgPool2d", "GlobalAveragePool"}
    assert {"ReduceMean", "Softmax", "Sigmoid", "Conv"} <= kinds  # EMA's pooling is a mean over axes
    inp = onnx.load(str(dyn_onnx)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in inp] == ["batch", 3, "height", "width"]
    sess = ort.InferenceSession(str(dyn_onnx), providers=["CPUExecutionProvider"])
    for shape in ((2, 3, 64, 64), (1, 3, 96, 96), (2, 3, 96, 64)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (y,) = sess.run(None, {"images": x})
        anchors = (
            (shape[2] // 8) * (shape[3] // 8)
            + (shape[2] // 16) * (shape[3] // 16)
            + (shape[2] // 32) * (shape[3] // 32)
        )
        assert y.shape == (shape[0], NO, anchors)
    assert ANCHORS[96] == 189


def test_non_standard_onnx_nodes_are_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])]
    ok = tmp_path / "ok.onnx"
    onnx.save(
        helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)]), ok
    )
    assert graph.check_onnx_standard(ok) == {("ai.onnx", "Relu"): 1, ("ai.onnx", "Sigmoid"): 1}
    nodes[1] = helper.make_node("ATen", ["r"], ["y"], domain="org.pytorch.aten", operator="adaptive_avg_pool2d")
    bad = tmp_path / "aten.onnx"
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("org.pytorch.aten", 1)]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets), bad)
    with pytest.raises(
        graph.NonStandardGraphError, match=r"aten\.onnx: non-standard ONNX operators: org\.pytorch\.aten::ATen x1"
    ):
        graph.check_onnx_standard(bad)


def test_cli_arguments_and_defaults(tmp_path, capsys):
    from yolo_ema.cli import main
    from yolo_ema.export.cli import default_sizes

    assert default_sizes(640, True) == (320, 640) and default_sizes(64, True) == (32, 64)
    assert default_sizes(640, False) == (640,)
    assert main(["export", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "--model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--model", "x.pt", "--sizes", "64,abc"])
    assert "comma-separated integers" in capsys.readouterr().err


@pytest.mark.slow  # shares the trained-model fixture (~30 s once per module)
def test_dynamic_onnx_parity_two_sizes_two_batches_and_map(weights, dyn_onnx, images, tiny_data):
    rep = check_parity(weights, dyn_onnx, images, sizes=(64, 96), batches=(1, 2), conf=CONF, data=tiny_data)
    print(rep.table())
    assert rep.ok, rep.failures
    assert [(r.imgsz, r.batch) for r in rep.rows] == [(64, 1), (64, 2), (96, 1), (96, 2)]
    for r in rep.rows:
        assert r.raw_box_rel < 2e-4 and r.raw_score < 1e-4
        assert r.det.n_ref >= 4 and r.det.matched >= r.det.n_ref - r.det.near
        assert r.det.max_px <= 1.0 and r.det.class_mismatch == 0
    assert abs(rep.map_exp - rep.map_pt) <= 0.5


@pytest.mark.slow  # shares the trained-model fixture (~30 s once per module)
def test_parity_fails_on_perturbed_export(weights, dyn_onnx, images, tmp_path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(dyn_onnx))
    convs = [n.input[1] for n in m.graph.node if n.op_type == "Conv"]
    for init in m.graph.initializer:
        if init.name == convs[-1]:  # last conv feeds the class logits
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    bad = tmp_path / "perturbed.onnx"
    onnx.save(m, str(bad))
    rep = check_parity(weights, bad, images, sizes=(64,), batches=(2,), conf=CONF)
    assert not rep.ok
    assert "raw head differs" in rep.failures[0]
    assert max(rep.rows[0].raw_box_rel, rep.rows[0].raw_score) > 1e-2
    with pytest.raises(ParityError, match="FAILED"):
        rep.raise_if_failed()


@pytest.mark.slow  # shares the trained-model fixture (~30 s once per module)
def test_cli_fails_loudly(weights, dyn_onnx, tiny_data, capsys):
    from yolo_ema.cli import main

    args = ["export", "--model", str(weights), "--exported", str(dyn_onnx), "--images", str(tiny_data.parent)]
    assert main([*args, "--sizes", "64", "--batches", "2", "--tol", "1e-12"]) == 1
    err = capsys.readouterr().err
    assert "PARITY FAILED" in err and "tolerance 1e-12" in err


def test_match_detections_rules():
    from yolo_ema.export.parity import Dets, match_detections

    ref = Dets(np.array([[0, 0, 10, 10], [20, 20, 30, 30.0]]), np.array([0.9, 0.2505]), np.array([0, 1]))
    exp = Dets(np.array([[0.5, 0, 10, 10.0]]), np.array([0.9]), np.array([0]))
    m = match_detections(ref, exp, conf=0.25, margin=1e-3, px_tol=1.0)
    assert (m.matched, m.near, m.max_px, m.problems) == (1, 1, 0.5, [])
    exp_far = Dets(np.array([[2, 0, 10, 10.0]]), np.array([0.9]), np.array([0]))
    m = match_detections(ref, exp_far, conf=0.25, margin=1e-3, px_tol=1.0)
    assert m.matched == 0 and len(m.problems) == 2  # ref box unmatched + export box unmatched, both confident
    exp_cls = Dets(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([1]))
    m = match_detections(ref, exp_cls, conf=0.25, margin=1e-3, px_tol=1.0)
    assert m.class_mismatch == 1 and "is class 1 in the export" in m.problems[0]
    # NMS tie: each side kept a different one of two overlapping equal-score boxes that both sides produced pre-NMS
    a, b = np.array([[0, 0, 10, 10.0]]), np.array([[0, 0, 10, 11.0]])
    raw = Dets(np.concatenate([a, b]), np.array([0.5, 0.5]), np.array([0, 0]))
    ref1, exp1 = Dets(a, np.array([0.5]), np.array([0])), Dets(b, np.array([0.5002]), np.array([0]))
    m = match_detections(ref1, exp1, conf=0.25, margin=1e-3, px_tol=0.5, iou=0.7, ref_raw=raw, exp_raw=raw)
    assert (m.matched, m.near, m.problems) == (0, 2, [])
    m = match_detections(ref1, exp1, conf=0.25, margin=1e-3, px_tol=0.5, iou=0.7)  # no pre-NMS evidence: problems
    assert len(m.problems) == 2


@pytest.mark.slow
def test_yolo_predict_and_val_on_onnx(weights, dyn_onnx, tiny_data, tmp_path):
    """`yolo predict` / `yolo val` accept the ONNX export; its mAP50-95 is within 0.5 points of the .pt's."""
    src = tiny_data.parent / "images" / "val"
    r = cli("predict", f"model={dyn_onnx}", f"source={src}", f"imgsz={IMGSZ}", "save=False", tool="yolo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    maps = {}
    for name, model in (("pt", weights), ("onnx", dyn_onnx)):
        r = cli("val", f"model={model}", f"data={tiny_data}", f"imgsz={IMGSZ}", "batch=2", "plots=False", "rect=False",
                f"project={tmp_path}", f"name={name}", "workers=0", "verbose=True", tool="yolo", cwd=tmp_path,
                env={"YOLO_VERBOSE": "True"})  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        line = next(x for x in (r.stdout + r.stderr).splitlines() if x.split()[:1] == ["all"])
        maps[name] = 100 * float(line.split()[-1])  # columns: all images instances P R mAP50 mAP50-95
    assert abs(maps["onnx"] - maps["pt"]) <= 0.5, maps


@pytest.mark.slow
def test_cli_static_batch2_unsimplified_with_map(weights, tiny_data, tmp_path):
    """`yolo-ema export --check` end to end in a fresh process: static batch-2 ONNX without onnxslim."""
    out = tmp_path / "b2.onnx"
    r = cli("export", "--model", str(weights), "--imgsz", str(IMGSZ), "--batch", "2", "--no-simplify",
            "--output", str(out), "--check", "--data", str(tiny_data), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "input (2, 3, 64, 64)" in r.stdout and "PARITY OK" in r.stdout
    assert "onnx        fp32      64     2" in r.stdout and "mAP50-95: PyTorch" in r.stdout
    assert not list(tmp_path.glob(".*tmp*"))  # atomic export left no scratch folder


@pytest.mark.slow
def test_half_onnx_on_cpu(weights, images, tmp_path):
    import onnx

    res = export(weights, "onnx", imgsz=IMGSZ, dynamic=True, half=True, output=tmp_path / "half.onnx")
    assert res.precision == "fp16"
    m = onnx.load(str(res.path))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types=True
    assert sum(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer) > 50
    graph.check_onnx_standard(res.path)
    rep = check_parity(weights, res.path, images, sizes=(64, 96), batches=(2,), conf=CONF)
    print(rep.table())
    assert rep.ok, rep.failures
    assert all(1e-6 < max(r.raw_box_rel, r.raw_score) < 5e-2 for r in rep.rows)  # really FP16, within its tolerance


@pytest.mark.slow
def test_torchscript_dynamic_and_half_on_cpu(weights, images, tmp_path):
    res = export(weights, "torchscript", imgsz=IMGSZ, dynamic=True, output=tmp_path / "m.torchscript")
    kinds = graph.check_torchscript_standard(res.path)
    assert "prim::PythonOp" not in kinds and all(k.startswith(("aten::", "prim::")) for k in kinds)
    rep = check_parity(weights, res.path, images, sizes=(64, 96), batches=(1, 2), conf=CONF)
    print(rep.table())
    assert rep.ok and len(rep.rows) == 4, rep.failures
    with pytest.raises(ValueError, match="FP16 TorchScript export is only supported on GPU"):
        export(weights, "torchscript", imgsz=IMGSZ, half=True, output=tmp_path / "h.torchscript")
    assert not (tmp_path / "h.torchscript").exists()


@pytest.mark.slow
def test_openvino_dynamic(weights, images, tmp_path):
    pytest.importorskip("openvino", reason="openvino not installed (pip install 'yolo-ema[openvino]')")
    res = export(weights, "openvino", imgsz=IMGSZ, dynamic=True, output=tmp_path / "m_openvino_model")
    ops = graph.check_openvino_standard(next(res.path.glob("*.xml")))
    assert all(v.startswith("opset") for v, _ in ops)
    rep = check_parity(weights, res.path, images, sizes=(64, 96), batches=(2,), conf=CONF)
    print(rep.table())
    assert rep.ok and len(rep.rows) == 2, rep.failures


@pytest.mark.slow
def test_export_benchmark_script(tmp_path):
    import json

    script = Path(__file__).resolve().parents[1] / "scripts" / "export_benchmark.py"
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(script), "--ema", str(CFG / "yolov8n-ema.yaml"), "--base", "yolov8n.yaml",
         "--imgsz", str(IMGSZ), "--runs", "5", "--warmup", "1", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "YOLO_OFFLINE": "1"}, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    ema, base = res["models"]["ema"], res["models"]["base"]
    assert ema["params"] > base["params"]  # both nc=80; EMA adds its 1x1/3x3 convs and GroupNorm (some constant-folded)
    assert ema["bytes"] > base["bytes"] and ema["nodes"] > base["nodes"]
    assert res["latency_ratio"] == pytest.approx(ema["median_ms"] / base["median_ms"])
    assert "latency ratio EMA/baseline (medians)" in r.stdout
