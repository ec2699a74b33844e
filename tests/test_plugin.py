"""The Ultralytics seam: EMA rows in YAMLs at every scale, errors, pretrained transfer, registration."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CFG, REPO, free_port
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

from yolo_ema import EMA, register
from yolo_ema.configs import shipped_names
from yolo_ema.nn.registry import INBLOCK, LAYERS
from yolo_ema.seam.transfer import align_layers, is_plugin

FAMILIES = {  # EMA config -> (baseline yaml name at scale s, number of EMA rows)
    "yolov8-ema.yaml": ("yolov8{s}.yaml", 3),
    "yolov5-ema.yaml": ("yolov5{s}.yaml", 3),
    "yolov8-p2-ema.yaml": ("yolov8{s}-p2.yaml", 4),
    "yolo11-ema.yaml": ("yolo11{s}.yaml", 3),
    "yolo26-ema.yaml": ("yolo26{s}.yaml", 3),
}


def scaled(cfg: str, s: str) -> Path:
    """cfg/yolov8-ema.yaml -> cfg/yolov8s-ema.yaml (Ultralytics' name rule puts the scale after the digits)."""
    return CFG / re.sub(r"^(yolov?\d+)", rf"\g<1>{s}", cfg)


def layer_channels(model) -> list[int]:
    """Output channels of each layer, measured by a forward pass (independent of the parser's bookkeeping)."""
    outs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: outs.__setitem__(k, o)) for k, m in enumerate(model.model)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return [o.shape[1] if torch.is_tensor(o) else None for _, o in sorted(outs.items())]


def _layers(cfg: str, s: str):
    """The layer list a config builds at scale ``s`` (the parser's layers alone: no weight init, no forward)."""
    from ultralytics.nn import tasks

    return tasks.parse_model(tasks.yaml_model_load(cfg), ch=3, verbose=False)[0]


@pytest.mark.parametrize("cfg", sorted(FAMILIES))
@pytest.mark.parametrize("s", "nsmlx")
def test_config_builds_at_every_scale_with_inferred_channels(cfg, s):
    layers = _layers(str(scaled(cfg, s)), s)
    baseline = _layers(FAMILIES[cfg][0].format(s=s), s)
    emas = [(k, m) for k, m in enumerate(layers) if isinstance(m, EMA)]
    assert len(emas) == FAMILIES[cfg][1]
    # EMA rows read the layer right before them; their channels equal that layer's output channels
    ch = layer_channels(DetectionModel(str(scaled(cfg, s)), verbose=False)) if s == "n" else None
    for k, m in emas:
        assert m.f == -1 and m.groups == 8
        if ch is not None:
            assert m.channels == ch[k - 1]
    # every other row keeps the baseline's semantics: same types, same parameter counts, in the same order
    rest = [m for m in layers if not isinstance(m, EMA)]
    assert [type(m).__name__ for m in rest] == [type(m).__name__ for m in baseline]
    assert [m.np for m in rest] == [m.np for m in baseline]
    # Detect reads the EMA outputs
    assert list(layers[-1].f) == [k for k, _ in emas]


def test_ema_model_trains_a_step():
    model = DetectionModel(str(scaled("yolov8-ema.yaml", "n")), nc=2, verbose=False)
    from ultralytics.cfg import get_cfg

    model.args = get_cfg()  # loss hyper-parameters, as the trainer sets them
    model.train()
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2]]),
    }
    loss, items = model.loss(batch)
    assert torch.isfinite(loss).all() and loss.sum() > 0
    loss.sum().backward()
    emas = [m for m in model.model if isinstance(m, EMA)]
    assert all(m.conv3x3.weight.grad is not None and m.conv3x3.weight.grad.abs().sum() > 0 for m in emas)


def _yaml_with_ema_row(tmp_path: Path, row: list, name: str = "yolov8n-custom-ema.yaml") -> Path:
    d = yaml.safe_load((CFG / "yolov8-ema.yaml").read_text())
    d["head"][6] = row  # row 16: the first EMA
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


def test_bad_factor_names_layer_channels_and_factor(tmp_path):
    p = _yaml_with_ema_row(tmp_path, [-1, 1, "EMA", [24]])
    with pytest.raises(ValueError, match=r"EMA layer 16 \(input channels 64, factor 24\)"):
        DetectionModel(str(p), verbose=False)  # scale n: 64 channels at P3


@pytest.mark.parametrize("factor", [0, -2, 128, 7])
def test_bad_factor_values(tmp_path, factor):
    p = _yaml_with_ema_row(tmp_path, [-1, 1, "EMA", [factor]])
    with pytest.raises(ValueError, match=rf"EMA layer 16 .*factor {factor}"):
        DetectionModel(str(p), verbose=False)


def test_from_list_and_bad_index_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"EMA layer 16: 'from' must be one layer index"):
        DetectionModel(str(_yaml_with_ema_row(tmp_path, [[-1, 4], 1, "EMA", [8]])), verbose=False)
    with pytest.raises(ValueError, match=r"EMA layer 16: 'from' index 40 does not name an earlier layer"):
        DetectionModel(str(_yaml_with_ema_row(tmp_path, [40, 1, "EMA", [8]])), verbose=False)


def test_from_earlier_index_infers_that_layers_channels(tmp_path):
    # row 16 reads layer 4 (backbone P3 C2f, 64 ch at n) instead of -1, and Detect keeps reading it
    model = DetectionModel(str(_yaml_with_ema_row(tmp_path, [4, 1, "EMA", [8]])), verbose=False)
    assert model.model[16].channels == layer_channels(model)[4] == 64


def test_legacy_channel_argument_is_overridden_by_graph(tmp_path):
    model = DetectionModel(str(_yaml_with_ema_row(tmp_path, [-1, 1, "EMA", [256, 8]])), verbose=False)
    assert model.model[16].channels == 64 and model.model[16].groups == 8


def test_register_is_idempotent_and_thread_safe():
    results = []
    threads = [threading.Thread(target=lambda: results.append(register())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8
    from ultralytics.nn import tasks

    assert getattr(tasks.BaseModel.load, "_yolo_ema", False)
    # wrapping once only: the wrapped function is not itself a yolo-ema wrapper
    assert not getattr(tasks.BaseModel.load.__closure__[0].cell_contents, "_yolo_ema", False)


def _capture_ultralytics_log(fn) -> str:
    import io
    import logging

    from ultralytics.utils import LOGGER

    buf, level = io.StringIO(), LOGGER.level
    handler = logging.StreamHandler(buf)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        fn()
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
    return buf.getvalue()


@pytest.mark.parametrize(
    "cfg,base",
    [
        ("yolov8-ema.yaml", "yolov8n.yaml"),
        ("yolov5-ema.yaml", "yolov5n.yaml"),
        ("yolov8-p2-ema.yaml", "yolov8n-p2.yaml"),
        ("yolo11-cbam-paper.yaml", "yolo11n.yaml"),
    ],
)
def test_pretrained_transfer_across_inserted_layers(tmp_path, cfg, base):
    torch.manual_seed(0)
    baseline = YOLO(base, verbose=False)
    ckpt = tmp_path / "baseline.pt"
    baseline.save(str(ckpt))
    src = YOLO(str(ckpt)).model  # what the checkpoint holds (saved in half precision, reloaded as fp32)
    model = YOLO(scaled(cfg, "n").name, verbose=False)  # by bare name
    fresh = {k: v.clone() for k, v in model.model.state_dict().items()}
    log = _capture_ultralytics_log(lambda: model.load(str(ckpt)))
    dst = model.model
    src_layers = [m for m in src.model]
    dst_plain = [m for m in dst.model if not is_plugin(m)]
    assert len(src_layers) == len(dst_plain)
    moved = 0
    for s_m, d_m in zip(src_layers, dst_plain):
        for (ks, vs), (kd, vd) in zip(s_m.state_dict().items(), d_m.state_dict().items()):
            assert ks == kd
            assert torch.equal(vs.float(), vd.float()), f"layer {d_m.i} ({d_m.type}) {kd} not transferred"
            moved += 1
    # plugin layers start fresh
    plugins = [m for m in dst.model if is_plugin(m)]
    for m in plugins:
        for k, v in m.state_dict().items():
            assert torch.equal(v, fresh[f"model.{m.i}.{k}"])
    n_plugin = sum(len(m.state_dict()) for m in plugins)
    assert moved == len(dst.state_dict()) - n_plugin
    assert f"Transferred {moved}/{len(dst.state_dict())} items" in log
    assert f"inserted {type(plugins[0]).__name__} layers {[m.i for m in plugins]}" in log


def test_load_into_a_model_with_plain_torch_layers_and_another_layer_count():
    """Plain torch layers have no Ultralytics ``.type`` string (``m.type`` is torch's method): load as without us."""
    from ultralytics.nn.tasks import BaseModel

    class Plain(BaseModel):
        def __init__(self, n):
            super().__init__()
            self.model = torch.nn.Sequential(*(torch.nn.Conv2d(3, 3, 1) for _ in range(n)))

    torch.manual_seed(0)
    dst, src = Plain(2), Plain(3)
    assert callable(dst.model[0].type) and not is_plugin(dst.model[0])
    dst.load(src, verbose=False)  # Ultralytics transfers matching names: layers 0 and 1
    for k in (0, 1):
        assert torch.equal(dst.model[k].weight, src.model[k].weight)


def test_align_layers_refuses_a_different_network():
    a = DetectionModel("yolov8n.yaml", verbose=False)
    b = DetectionModel(str(scaled("yolo11-ema.yaml", "n")), verbose=False)
    assert align_layers(list(b.model), list(a.model)) is None
    c = DetectionModel(str(scaled("yolov8-ema.yaml", "n")), verbose=False)
    mapping = align_layers(list(c.model), list(a.model))
    assert mapping[:16] == list(range(16)) and mapping[16] is None and mapping[-1] == 22


def _run(code: str, env_extra: dict | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "YOLO_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_startup_hook_is_lazy():
    r = _run("import sys; import yolo_ema; print('torch' in sys.modules, 'ultralytics' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


BY_NAME = """
import re, sys
from ultralytics import YOLO
for name in sys.argv[1:]:
    for s in "ns":
        typed = re.sub(r"^(yolov?\\d+)", rf"\\g<1>{s}", name)  # what users type: yolov8s-ema.yaml
        model = YOLO(typed, verbose=False).model
        d = model.yaml
        want = sum(r[2] in PLUGIN for r in d["backbone"] + d["head"])
        got = sum(type(m).__name__ in PLUGIN for m in model.model)
        plain = name == "yolov5-p2.yaml"  # the paper model's baseline: no plugin rows
        assert (d["scale"], got) == (s, want) and (want == 0) == plain, (typed, d["scale"], got, want)
print("BUILT", len(sys.argv) - 1, "yolo_ema" in sys.modules)
print("LOCAL", YOLO("yolov8n-ema.yaml").model.yaml["nc"])
"""


def test_every_shipped_config_builds_by_bare_name_from_an_empty_folder(tmp_path):
    """A fresh process that never imports yolo_ema builds the shipped configs at n and s by the name users type.

    The comparison-attention configs are built the same way (and trained, exported, safe-loaded) by
    test_attention_e2e.py; here every other config: EMA at both placements, the VisDrone model, tasks, in-block.
    """
    names = [n for n in shipped_names() if not re.search(r"-(se|cbam|ca|eca|sa|simam)(-paper)?\.yaml$", n)]
    code = BY_NAME.replace("PLUGIN", repr(set(LAYERS) | set(INBLOCK)))
    local = tmp_path / "local"
    local.mkdir()
    (local / "yolov8-ema.yaml").write_text(  # a user's own file of a shipped name wins
        (CFG / "yolov8-ema.yaml").read_text().replace("nc: 80", "nc: 3")
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "YOLO_OFFLINE": "1"},
        cwd=local,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.split()
    assert out[out.index("BUILT") + 1 :][:2] == [str(len(names)), "True"]  # yolo_ema loaded by the start-up hook
    assert out[out.index("LOCAL") + 1] == "3"


def test_checkout_paths_and_switch_off(tmp_path):
    code = (
        "from ultralytics import YOLO; m = YOLO('cfg/yolov8n-ema.yaml'); "
        "print(sum(type(x).__name__ == 'EMA' for x in m.model.modules()))"
    )
    r = _run(code, cwd=tmp_path)  # cfg/<name> resolves to the shipped file outside a checkout as well
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "3"
    off = _run(code.replace("yolov8n-ema", "yolov8n-cbam"), {"YOLO_EMA_AUTOLOAD": "0"}, cwd=REPO)
    assert off.returncode != 0
    assert "CBAM layer 16 (args []): yolo-ema is installed but its automatic registration is switched off" in off.stderr


@pytest.mark.slow
def test_torch_distributed_worker_knows_ema(tmp_path):
    """A worker started by torch.distributed.run (Ultralytics' DDP launcher) unpickles EMA models and builds them by name."""
    model = YOLO(str(scaled("yolov8-ema.yaml", "n")), verbose=False).model
    state = tmp_path / "state.pt"
    torch.save({"model": model}, state)  # what Ultralytics' DDP state file carries
    script = tmp_path / "worker.py"
    script.write_text(
        "import os, sys, torch\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('yolo_ema'))\n"
        "assert loaded == ['yolo_ema', 'yolo_ema._autoload'], loaded  # only the lazy start-up hook, no plugin yet\n"
        f"state = torch.load({str(state)!r}, weights_only=False)\n"
        "from ultralytics.nn.tasks import DetectionModel\n"
        "m = DetectionModel('yolov8s-ema.yaml', verbose=False)  # by bare name, in a folder without it\n"
        "n = sum(type(x).__name__ == 'EMA' for x in m.modules())\n"
        "k = sum(type(x).__name__ == 'EMA' for x in state['model'].modules())\n"
        "print('RANK', os.environ['RANK'], n, k, 'yolo_ema.seam' in sys.modules)\n"
    )
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1"]
    r = subprocess.run(
        [*launch, "--master_port", str(free_port()), str(script)],  # a fixed port may be taken by another run
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "RANK 0 3 3 True" in r.stdout  # the start-up hook registered the plugin in the worker


@pytest.mark.parametrize("autoload", ["1", "0"])
def test_register_before_ultralytics_import_returns(autoload):
    """register() imports the parser, which runs the start-up hook's register(): must not deadlock."""
    r = _run("from yolo_ema import register; print(register())", {"YOLO_EMA_AUTOLOAD": autoload})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "True"
