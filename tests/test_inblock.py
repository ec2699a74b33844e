"""C2f_EMA / C3k2_EMA: EMA on each bottleneck's residual branch, parent weights unchanged, parent scaling.

References are written independently of ``yolo_ema.blocks``: the bottleneck is ``x + PaperEMA(cv2(cv1(x)))`` with the
paper's step-by-step EMA (:mod:`yolo_ema.nn.ema_paper`) and Ultralytics' own Conv layers; the CSP structure around it
follows ``ultralytics/nn/modules/block.py`` (C2f, C3k2, C3k).
"""

from __future__ import annotations

import os
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml
from test_tasks import onnx_parity
from ultralytics.nn.modules.block import C2f, C3k, C3k2, PSABlock

from yolo_ema.blocks import BottleneckEMA, C2f_EMA, C3k2_EMA
from yolo_ema.configs import config_dir, ultralytics_models_dir
from yolo_ema.nn.ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA

CONFIGS = {
    "yolov8-c2f-ema.yaml": ("v8/yolov8.yaml", C2f, C2f_EMA),
    "yolo11-c3k2-ema.yaml": ("11/yolo11.yaml", C3k2, C3k2_EMA),
}


# --- the reference composition ---------------------------------------------------------------------------------------


def _paper(ema: EMA) -> PaperEMA:
    p = PaperEMA(ema.channels, ema.groups)
    p.load_state_dict(ema.state_dict())
    return p


def ref_bottleneck(b, x):
    t = _paper(b.ema)(b.cv2(b.cv1(x)))  # the residual branch, re-weighted before the addition
    return x + t if b.add else t


def ref_inner(m, x):
    if isinstance(m, C3k):  # C3: cv3(cat(m(cv1(x)), cv2(x)))
        y = m.cv1(x)
        for b in m.m:
            y = ref_bottleneck(b, y)
        return m.cv3(torch.cat((y, m.cv2(x)), 1))
    if isinstance(m, torch.nn.Sequential):  # C3k2 attention variant: Bottleneck then PSABlock
        assert isinstance(m[1], PSABlock)
        return m[1](ref_bottleneck(m[0], x))
    return ref_bottleneck(m, x)


def ref_block(blk, x):
    y = list(blk.cv1(x).chunk(2, 1))  # C2f: split, chain the inner blocks, concatenate every stage
    for m in blk.m:
        y.append(ref_inner(m, y[-1]))
    return blk.cv2(torch.cat(y, 1))


CASES = {
    "c2f-shortcut": lambda: C2f_EMA(32, 48, n=2, shortcut=True),
    "c2f-plain": lambda: C2f_EMA(32, 48, n=1, shortcut=False),
    "c3k2": lambda: C3k2_EMA(32, 64, n=2, c3k=False),
    "c3k2-c3k": lambda: C3k2_EMA(32, 64, n=1, c3k=True),
    "c3k2-attn": lambda: C3k2_EMA(64, 64, n=1, attn=True),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_is_ema_on_each_residual_branch(case):
    torch.manual_seed(0)
    blk = CASES[case]().eval()
    with torch.no_grad():  # move every parameter off its initial value so each term matters
        for p in blk.parameters():
            p.add_(0.2 * torch.randn_like(p))
    bottlenecks = [m for m in blk.modules() if isinstance(m, BottleneckEMA)]
    assert bottlenecks and all(isinstance(b.ema, EMA) for b in bottlenecks)
    x = torch.randn(2, blk.cv1.conv.in_channels, 12, 10)
    with torch.no_grad():
        expected = ref_block(blk, x)
        fast = blk(x)  # EMA's eager inference path
    trained = blk(x.clone().requires_grad_(True))  # EMA's training path (custom autograd)
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(trained.detach(), expected, rtol=1e-4, atol=1e-4)
    without_ema = deepcopy(blk)
    for b in without_ema.modules():
        if isinstance(b, BottleneckEMA):
            b.ema = torch.nn.Identity()
    with torch.no_grad():
        assert (without_ema(x) - expected).abs().max() > 1e-2, "EMA must change the block's output"


PARENTS = {
    "c2f": (lambda: C2f(32, 48, 2, True), lambda: C2f_EMA(32, 48, 2, True)),
    "c3k2": (lambda: C3k2(32, 64, 2, False), lambda: C3k2_EMA(32, 64, 2, False)),
    "c3k2-c3k": (lambda: C3k2(64, 64, 2, True), lambda: C3k2_EMA(64, 64, 2, True)),
    "c3k2-attn": (lambda: C3k2(64, 64, 1, False, 0.5, True), lambda: C3k2_EMA(64, 64, 1, False, 0.5, True)),
}


@pytest.mark.parametrize("case", PARENTS)
def test_parent_weights_load_unchanged(case):
    make_parent, make_child = PARENTS[case]
    torch.manual_seed(1)
    parent, child = make_parent(), make_child()
    src = parent.state_dict()
    fresh = {k: v.clone() for k, v in child.state_dict().items() if ".ema." in k}
    missing, unexpected = child.load_state_dict(src, strict=False)
    assert unexpected == [] and sorted(missing) == sorted(fresh) and fresh
    dst = child.state_dict()
    assert sorted(k for k in dst if ".ema." not in k) == sorted(src)  # every parent name kept, none renamed
    for k, v in src.items():
        assert torch.equal(dst[k], v), k
    assert all(torch.equal(dst[k], v) for k, v in fresh.items())  # EMA tensors untouched by the load


def test_factor_defaults_to_8_and_divides_custom_widths():
    assert {b.ema.groups for b in C2f_EMA(64, 64, 2).modules() if isinstance(b, BottleneckEMA)} == {8}
    assert C2f_EMA(40, 40, 1).m[0].ema.groups == 4  # 20 bottleneck channels: gcd(20, 8)
    assert C2f_EMA(64, 128, 1, factor=32).m[0].ema.groups == 32
    with pytest.raises(ValueError, match="factor must be a positive integer, got 0"):
        C2f_EMA(64, 64, 1, factor=0)


def test_yaml_row_takes_the_factor_last():
    d = yaml.safe_load((config_dir() / "yolov8-c2f-ema.yaml").read_text())
    d["head"][2][3] = [512, False, 1, 0.5, 16]  # row 12: C2f's four args, then the factor
    layers = _parse(d, "s")
    assert {m.ema.groups for m in layers[12].modules() if isinstance(m, BottleneckEMA)} == {16}
    assert {m.ema.groups for m in layers[15].modules() if isinstance(m, BottleneckEMA)} == {8}
    d["head"][2][3] = [512, False, 1, 0.5, 16, 3]
    with pytest.raises(
        ValueError, match=r"C2f_EMA layer 12: C2f_EMA takes at most 5 args .* got \[512, False, 1, 0.5, 16, 3\]"
    ):
        _parse(d, "s")
    d["head"][2][3] = [512, False, 1, 0.5, "x"]
    with pytest.raises(ValueError, match=r"C2f_EMA layer 12: EMA factor must be a positive integer, got 'x'"):
        _parse(d, "s")


# --- configs: every scale scales like the parent ------------------------------------------------------------------------


def _parse(d: dict, scale: str):
    from ultralytics.nn.tasks import parse_model

    d = deepcopy(d)
    d["scale"] = scale
    with torch.device("meta"):
        return parse_model(d, 3, verbose=False)[0]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_scale_builds_with_the_parents_channels(name):
    baseline, parent, variant = CONFIGS[name]
    d = yaml.safe_load((config_dir() / name).read_text())
    base = yaml.safe_load((ultralytics_models_dir() / baseline).read_text())
    rows = d["backbone"] + d["head"]
    changed = [i for i, r in enumerate(rows) if r[2] == variant.__name__]
    assert changed == [len(d["backbone"]) + j for j, r in enumerate(base["head"]) if r[2] == parent.__name__]
    for scale in "nsmlx":
        layers, ref = _parse(d, scale), _parse(base, scale)
        assert len(layers) == len(ref)
        for i, (a, b) in enumerate(zip(layers, ref)):
            sa = {k: v.shape for k, v in a.state_dict().items() if ".ema." not in k}
            assert sa == {k: v.shape for k, v in b.state_dict().items()}, f"{name} {scale} layer {i}"
            if i in changed:
                assert type(a) is variant and type(b) is parent and a.type == f"yolo_ema.blocks.{variant.__name__}"
                inner = [m for m in a.modules() if isinstance(m, BottleneckEMA)]
                assert inner and all(m.ema.channels == m.cv2.conv.out_channels for m in inner)
                assert len(inner) == sum(type(m).__name__ == "Bottleneck" for m in b.modules())
                c3k = any(isinstance(m, C3k) for m in a.modules())
                assert c3k == any(isinstance(m, C3k) for m in b.modules()), f"{name} {scale} layer {i}: C3k as in C3k2"
                assert c3k or not (variant is C3k2_EMA and scale in "mlx"), "C3k2 switches to C3k at m/l/x"
            else:
                assert type(a) is type(b) and not any(isinstance(m, EMA) for m in a.modules())


@pytest.mark.parametrize(
    "name,baseline", [("yolov8n-c2f-ema.yaml", "yolov8n.yaml"), ("yolo11n-c3k2-ema.yaml", "yolo11n.yaml")]
)
def test_baseline_checkpoint_loads_unchanged(name, baseline, tmp_path):
    from ultralytics import YOLO

    torch.manual_seed(0)
    ckpt = tmp_path / "baseline.pt"
    YOLO(baseline).save(ckpt)
    src = torch.load(ckpt, weights_only=False)["model"].float().state_dict()
    model = YOLO(name)  # the bare name, as users type it
    assert model.model.yaml["head"][2][2].endswith("_EMA")  # the model keeps the variant's name
    fresh = {k: v.clone() for k, v in model.model.state_dict().items() if ".ema." in k}
    model.load(str(ckpt))
    dst = model.model.state_dict()
    assert sorted(k for k in dst if ".ema." not in k) == sorted(src)
    assert all(torch.equal(dst[k].float(), v) for k, v in src.items())
    assert fresh and all(torch.equal(dst[k], v) for k, v in fresh.items())


# --- checkpoints in a fresh process, export --------------------------------------------------------------------------


@pytest.mark.slow
def test_trains_and_exports_through_the_yolo_cli_in_fresh_processes(tiny_data, tmp_path):
    """``yolo train model=yolov8n-c2f-ema.yaml`` then ``yolo export`` of its checkpoint, each a new interpreter that never
    imports yolo_ema itself, under restricted (safe) checkpoint loading; the dynamic ONNX matches PyTorch."""
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "1", "YOLO_OFFLINE": "1"}
    yolo = str(Path(sys.executable).with_name("yolo"))

    def run(*args):
        done = subprocess.run([yolo, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    run(
        "train", "model=yolov8n-c2f-ema.yaml", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
        "device=cpu", "amp=False", "plots=False", f"project={tmp_path}", "name=run",
    )  # fmt: skip
    pt = tmp_path / "run" / "weights" / "best.pt"
    model = torch.load(pt, weights_only=False)["model"]
    blocks = [m for m in model.model if isinstance(m, C2f_EMA)]
    assert [m.i for m in blocks] == [12, 15, 18, 21] and all(isinstance(b.m[0], BottleneckEMA) for b in blocks)
    assert model.yaml["head"][2][2] == "C2f_EMA"

    run("export", f"model={pt}", "format=onnx", "dynamic=True", "imgsz=64")
    onnx_file = pt.with_suffix(".onnx")
    errors = onnx_parity(pt, str(onnx_file), ((1, 3, 64, 64), (2, 3, 96, 128)))
    assert max(max(e) for e in errors) < 1e-4, errors


def test_importing_the_blocks_first_registers_everything(tmp_path):
    """A checkpoint unpickled in a fresh process imports yolo_ema.blocks before Ultralytics: registration still
    completes and the block classes are on the safe-load allow-list."""
    code = (
        "import yolo_ema.blocks, torch\n"
        "from yolo_ema.seam import registration_status\n"
        "s = registration_status(); assert s['registered'] and s['problem'] is None, s\n"
        "names = {c.__name__ for c in torch.serialization.get_safe_globals()}\n"
        "assert {'BottleneckEMA', 'C2f_EMA', 'C3k2_EMA', 'EMA'} <= names, names\n"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "registration failed" not in done.stderr + done.stdout
