"""EMA's export graph in the mobile converters: `yolo export format=ncnn` of a yolov8n-ema model loads in ncnn and
gives PyTorch's raw head output; `format=coreml` converts (coremltools' MIL program with the exported input and output
shapes; prediction needs macOS). Skipped where a converter is not installed."""

from __future__ import annotations

import pytest
import torch

IMGSZ = 64


@pytest.fixture(scope="module")
def ema_pt(tmp_path_factory):
    """A yolov8n-ema checkpoint with random non-default EMA parameters (so no branch is trivially constant)."""
    from ultralytics import YOLO

    import yolo_ema
    from yolo_ema.nn.ema import EMA

    yolo_ema.register()
    model = YOLO("yolov8n-ema.yaml")
    torch.manual_seed(0)
    with torch.no_grad():
        for e in model.model.modules():
            if isinstance(e, EMA):
                for p in e.parameters():
                    p.normal_(0.0, 0.3)
    pt = tmp_path_factory.mktemp("ema") / "ema.pt"
    torch.save({"model": model.model.float()}, pt)  # float32, unlike Model.save()
    return pt


def _reference(pt, x: torch.Tensor) -> torch.Tensor:
    from ultralytics import YOLO

    model = YOLO(str(pt)).model.float().eval().fuse(verbose=False)
    with torch.inference_mode():
        return model(x)[0]  # (1, 4 + nc, anchors)


def test_export_graph_has_no_constant_matmul_and_no_shape_arithmetic():
    """What the converters need from the traced graph: no matmul (pnnx turns one with constant weights into
    F.linear, which ncnn lacks) and no traced size cast to an integer (coremltools' int() fails on those)."""
    from yolo_ema.nn.ema import EMA

    m = EMA(64, 8).eval()
    graph = torch.jit.trace(m, torch.randn(1, 64, 12, 10)).inlined_graph
    kinds = {n.kind() for n in graph.nodes()}
    assert not kinds & {"aten::matmul", "aten::linear", "aten::bmm", "aten::baddbmm", "aten::addmm"}, kinds
    assert "aten::Int" not in kinds  # no traced size cast to an integer
    assert "aten::instance_norm" in kinds and "aten::_convolution" in kinds
    # onnx2tf (TensorFlow, LiteRT from ONNX) moves channels last and concatenates 3-D tensors along the wrong axis
    ranks = {n.output().type().dim() for n in graph.nodes() if n.kind() == "aten::cat"}
    assert ranks == {4}, ranks


def test_tap_features_are_the_nine_pooled_numbers():
    """The one tap-feature function (eager path and export graph) against the definition, element by element."""
    from yolo_ema.nn.ema import corners, tap_features

    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    hw = 5 * 7
    ref = torch.stack([x.mean((2, 3)), x[:, :, -1].sum(-1) / hw, x[:, :, 0].sum(-1) / hw, x[..., -1].sum(-1) / hw,
                       x[..., 0].sum(-1) / hw, x[:, :, -1, -1] / hw, x[:, :, -1, 0] / hw, x[:, :, 0, -1] / hw,
                       x[:, :, 0, 0] / hw], -1)  # fmt: skip
    got = tap_features(x.mean(3, keepdim=True), x.mean(2, keepdim=True), corners(x))  # (2, 8, 1, 9)
    torch.testing.assert_close(got.squeeze(2), ref)


@pytest.mark.slow
def test_ncnn_export_loads_and_matches_pytorch(ema_pt):
    ncnn = pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    import numpy as np
    from ultralytics import YOLO

    out = YOLO(str(ema_pt)).export(format="ncnn", imgsz=IMGSZ)
    param = (pytest.importorskip("pathlib").Path(out) / "model.ncnn.param").read_text()
    assert "F.linear" not in param and "pnnx." not in param  # every layer is a native ncnn layer
    net = ncnn.Net()
    assert net.load_param(f"{out}/model.ncnn.param") == 0 and net.load_model(f"{out}/model.ncnn.bin") == 0
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x[0].numpy()).clone())
    rc, mat = ex.extract("out0")
    assert rc == 0
    got, ref = np.array(mat), _reference(ema_pt, x)[0].numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.slow
def test_coreml_export_converts(ema_pt):
    ct = pytest.importorskip("coremltools")
    from ultralytics import YOLO

    out = YOLO(str(ema_pt)).export(format="coreml", imgsz=IMGSZ, nms=False)
    spec = ct.utils.load_spec(str(out))
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), outs = spec.description.input, spec.description.output
    assert inp.type.WhichOneof("Type") in ("imageType", "multiArrayType")
    if inp.type.WhichOneof("Type") == "imageType":
        assert (inp.type.imageType.height, inp.type.imageType.width) == (IMGSZ, IMGSZ)
    ref = _reference(ema_pt, torch.rand(1, 3, IMGSZ, IMGSZ))
    shapes = [tuple(o.type.multiArrayType.shape) for o in outs]
    assert tuple(ref.shape) in shapes, shapes
