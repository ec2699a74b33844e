"""Mobile formats: NCNN and MNN exports load and match PyTorch (raw head, post-NMS boxes, ``yolo val`` mAP), CoreML
converts with the program's structure and the traced graph it came from checked (prediction needs macOS).

One small network carries every plugin layer (SE, CBAM, CA, ECA, SA, SimAM, EMA and the in-block C2f_EMA and
C3k2_EMA), so each format is exported once: an n-scale backbone with two classes, trained one epoch at 64 px on the
tiny set. Such a model scores every box low, so the class-logit biases are raised by 5 (as in test_export.py): the
NMS comparison then has confident, overlapping boxes. The shipped configs, one by one, are covered by
``python -m yolo_ema.export.matrix`` (README, export section).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yolo_ema.export import graph
from yolo_ema.export.parity import check_parity, load_images

IMGSZ = 64
BIN = Path(sys.executable).parent
ALL_LAYERS = """
nc: 2
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
  - [-1, 1, C2f_EMA, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 1, SE, []]
  - [-1, 1, CBAM, []] # 5 P3
  - [-1, 1, Conv, [512, 3, 2]]
  - [-1, 1, C3k2_EMA, [512, False, 0.25]]
  - [-1, 1, CA, []]
  - [-1, 1, ECA, []] # 9 P4
  - [-1, 1, Conv, [1024, 3, 2]]
  - [-1, 1, SA, [16]]
  - [-1, 1, SimAM, []]
  - [-1, 1, EMA, [8]] # 13 P5
head:
  - [[5, 9, 13], 1, Detect, [nc]]
"""


def run(tool: str, *argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``tool`` of this venv in a fresh process (Ultralytics offline, no auto-install)."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "YOLO_AUTOINSTALL": "false", **(env or {})}
    exe = shutil.which(tool) or str(BIN / tool)
    return subprocess.run([exe, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def allnet(tmp_path_factory, tiny_data) -> Path:
    """Weights of the every-layer network (see module docstring), saved as an Ultralytics checkpoint."""
    from ultralytics import YOLO

    d = tmp_path_factory.mktemp("allnet")
    (d / "all-layers.yaml").write_text(ALL_LAYERS)
    YOLO(str(d / "all-layers.yaml")).train(
        data=str(tiny_data), epochs=1, imgsz=IMGSZ, batch=4, workers=0, device="cpu", plots=False, amp=False,
        val=False, project=str(d), name="run", exist_ok=True, seed=0, deterministic=False, verbose=False,
    )  # fmt: skip
    m = YOLO(str(d / "run" / "weights" / "last.pt"))
    names = {type(x).__name__ for x in m.model.modules()}
    assert {"SE", "CBAM", "CA", "ECA", "SA", "SimAM", "EMA", "C2f_EMA", "C3k2_EMA"} <= names
    for seq in m.model.model[-1].cv3:
        seq[-1].bias.data += 5.0
    m.save(str(d / "all.pt"))
    return d / "all.pt"


@pytest.fixture(scope="module")
def images(tiny_data):
    return load_images(data=tiny_data, n=3)


def assert_parity(report, min_matched: int = 3):
    """Parity passed, with boxes compared after NMS (the raw-head check covers every anchor's box and scores)."""
    print(report.table())
    assert report.ok, report.failures
    assert sum(r.det.matched for r in report.rows) >= min_matched  # one box per image at least: not an empty check
    assert report.map_pt is None or abs(report.map_pt - report.map_exp) <= report.map_tol


@pytest.mark.slow
def test_ncnn_loads_and_matches_pytorch(allnet, images, tiny_data):
    """``yolo export format=ncnn``: only ncnn layers, ncnn loads it, same raw head, same boxes (1 px), same mAP."""
    pytest.importorskip("ncnn")
    r = run("yolo", "export", f"model={allnet}", "format=ncnn", f"imgsz={IMGSZ}", cwd=allnet.parent)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    folder = allnet.parent / "all_ncnn_model"
    layers = graph.check_ncnn_standard(folder / "model.ncnn.param")
    assert {"InstanceNorm", "Reduction", "Sigmoid"} <= set(layers)  # SA's GroupNorm, the layers' poolings, gates
    rep = check_parity(allnet, folder, images, sizes=(IMGSZ,), batches=(1,), data=tiny_data)
    assert rep.rows[0].fmt == "ncnn" and rep.rows[0].precision == "fp32"
    assert_parity(rep)


def test_ncnn_check_names_operators_pnnx_left_behind(tmp_path):
    param = tmp_path / "model.ncnn.param"
    head = "7767517\n3 3\nInput in0 0 1 in0\n"
    param.write_text(head + "MemoryData w 0 1 w 0=8\nF.linear lin 2 1 in0 w out0\n")
    with pytest.raises(graph.NonStandardGraphError, match=r"model\.ncnn\.param: .*pnnx.*: F\.linear x1"):
        graph.check_ncnn_standard(param)
    param.write_text(head + "Convolution c 1 1 in0 out0 0=8\nSigmoid s 1 1 out0 out1\n")
    assert graph.check_ncnn_standard(param) == {"Input": 1, "Convolution": 1, "Sigmoid": 1}
    param.write_text("not a param file\n")
    with pytest.raises(ValueError, match="magic 7767517"):
        graph.ncnn_layers(param)


@pytest.mark.slow
def test_mnn_matches_pytorch_and_leaves_packages_alone(allnet, images, monkeypatch):
    """MNN through the export wrapper: same raw head and boxes; its converter's pip self-install is blocked."""
    pytest.importorskip("MNN")
    from importlib import metadata

    from yolo_ema.export.exporting import export

    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    before = metadata.version("protobuf")
    res = export(allnet, "mnn", imgsz=IMGSZ)
    assert res.path == allnet.with_suffix(".mnn") and res.path.is_file() and res.precision == "fp32"
    assert "PIP_NO_INDEX" not in os.environ  # restored after the export
    assert metadata.version("protobuf") == before
    assert_parity(check_parity(allnet, res.path, images, sizes=(IMGSZ,), batches=(1,)))


@pytest.mark.slow
def test_coreml_converts_and_its_traced_graph_matches(allnet, tmp_path):
    """``yolo-ema export --format coreml --check``: converts; program shapes and ops agree with the traced graph."""
    pytest.importorskip("coremltools")
    from yolo_ema.export.coreml import describe, structure_problems, user_metadata

    out = tmp_path / "all.mlpackage"
    r = run("yolo-ema", "export", "--model", str(allnet), "--format", "coreml", f"--imgsz={IMGSZ}", "--check",
            "--output", str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "COREML CHECK OK" in r.stdout and "max |d|" in r.stdout
    s = describe(out)
    assert s.input_kind == "imageType" and list(s.inputs.values()) == [(1, 3, IMGSZ, IMGSZ)]
    anchors = (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2
    assert list(s.outputs.values()) == [(1, 4 + 2, anchors)]
    assert {"conv", "instance_norm", "reduce_mean", "sigmoid"} <= set(s.ops)
    assert user_metadata(out)["args"]["quantize"] is None
    # the same check fails loudly when the program lost a convolution
    ops = {"aten::_convolution": s.ops["conv"] + 1, "aten::linear": s.ops["linear"] + s.ops["matmul"]}
    problems = structure_problems(s, ops, (1, 6, anchors))
    assert problems == [f"{s.ops['conv']} MIL conv ops for {s.ops['conv'] + 1} convolutions in the traced graph"]


def test_traced_gap_catches_a_branch_baked_into_the_trace(tmp_path):
    """A data-dependent branch traced on a zero image is frozen in the graph: the gap on other inputs shows it."""
    import torch

    from yolo_ema.export.coreml import traced_gap

    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    m = Branchy().eval()
    path = tmp_path / "b.torchscript"
    torch.jit.trace(m, torch.zeros(1, 3, 8, 8), check_trace=False).save(str(path))
    gap, shape = traced_gap(path, m, imgsz=8)
    assert shape == (1, 3, 8, 8) and gap > 0.5


def test_bad_output_names_and_coreml_runner_are_refused(allnet, tmp_path):
    from yolo_ema.export.backends import Runner, export_kind
    from yolo_ema.export.exporting import export

    with pytest.raises(ValueError, match=r"ncnn export must be named \*_ncnn_model"):
        export(allnet, "ncnn", imgsz=IMGSZ, output=tmp_path / "model.ncnn")
    with pytest.raises(ValueError, match=r"coreml export must be named \*\.mlpackage"):
        export(allnet, "coreml", imgsz=IMGSZ, output=tmp_path / "model.coreml")
    (tmp_path / "m.mlpackage").mkdir()
    assert export_kind(tmp_path / "m.mlpackage") == "coreml"
    with pytest.raises(ValueError, match="CoreML predicts on macOS only"):
        Runner(tmp_path / "m.mlpackage")
    with pytest.raises(FileNotFoundError, match="no such export"):
        Runner(tmp_path / "missing.mnn")


def test_ort_session_is_the_shared_builder(tmp_path):
    """One onnxruntime builder: file path or bytes, thread settings applied."""
    import onnx
    from onnx import TensorProto, helper

    from yolo_ema.export.backends import ort_session

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.save(model, tmp_path / "s.onnx")
    for src in (tmp_path / "s.onnx", model.SerializeToString()):
        s = ort_session(src, threads=1)
        assert s.get_session_options().intra_op_num_threads == 1
        (out,) = s.run(None, {"x": np.array([0.0, 2.0], np.float32)})
        np.testing.assert_allclose(out, 1 / (1 + np.exp(-np.array([0.0, 2.0]))), rtol=1e-6)
