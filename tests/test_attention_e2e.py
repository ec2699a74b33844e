"""Every comparison attention (SE, CBAM, CA, ECA, SA, SimAM) in every config family, at scales n and s, through
Ultralytics alone: processes that never import yolo_ema build each shipped config by bare name, train it one step with
Ultralytics' own loss, save it with ``YOLO.save``, export it with ``YOLO.export`` (dynamic ONNX, onnxruntime parity at
two input sizes) and load the saved checkpoint again under ``ULTRALYTICS_SAFE_LOAD=1``.

Cost: two worker processes side by side do the builds, steps and exports (64-pixel inputs, about a second per
export); a third loads all the checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

LAYERS = {"se": "SE", "cbam": "CBAM", "ca": "CA", "eca": "ECA", "sa": "SA", "simam": "SimAM"}
FAMILIES = ("yolov5", "yolov8", "yolov8-p2", "yolo11", "yolo26")


def config_name(family: str, scale: str, layer: str) -> str:
    """What a user types: yolov8s-cbam.yaml, yolov8s-p2-cbam.yaml (the scale follows the version digits)."""
    head, _, tail = family.partition("-")
    return f"{head}{scale}{'-' + tail if tail else ''}-{layer}.yaml"


# Every layer in every family, at scales n and s in turn (layer i, family j: scale "ns"[(i + j) % 2]), so each layer
# and each family is built at both scales: every pair of (layer, family, scale) values meets, at half the cost of
# the full product.
JOBS = [
    {
        "cfg": config_name(family, "ns"[(i + j) % 2], layer),
        "family": family,
        "scale": "ns"[(i + j) % 2],
        "cls": cls,
    }
    for i, (layer, cls) in enumerate(LAYERS.items())
    for j, family in enumerate(FAMILIES)
]

# Builds, trains one step, saves, exports. Knows nothing of yolo_ema: the layers come from the installed plugin.
TRAIN_EXPORT = textwrap.dedent(
    """
    import copy, json, sys, traceback
    import numpy as np, onnx, onnxruntime as ort, torch
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    torch.set_num_threads(1)
    torch.manual_seed(0)
    jobs = json.loads(sys.argv[1])
    batch = {
        "img": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        "batch_idx": torch.tensor([0.0, 1.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [0.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2], [0.7, 0.7, 0.25, 0.3]]),
    }
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for job in jobs:
        r = {"cfg": job["cfg"]}
        try:
            y = YOLO(job["cfg"])
            m = y.model
            layers = [k for k in m.modules() if type(k).__name__ == job["cls"]]
            rows = [row for row in m.yaml["backbone"] + m.yaml["head"] if row[2] == job["cls"]]
            r["layers"], r["rows"] = len(layers), len(rows)
            r["modules"] = sorted({type(k).__module__ for k in layers})
            seen = []
            hooks = [k.register_forward_pre_hook(lambda mod, a: seen.append((a[0].shape[1], mod.channels))) for k in layers]
            m.eval()
            with torch.no_grad():
                m(x)
            for h in hooks:
                h.remove()
            r["channels"] = seen  # (input channels in the graph, channels the layer was built for)

            args, m.args = m.args, get_cfg()  # loss hyper-parameters, as the trainer sets them
            m.train()
            loss, _ = m.loss(batch)
            loss.sum().backward()
            r["loss"] = float(loss.sum())
            r["grads_finite"] = all(bool(torch.isfinite(p.grad).all()) for p in m.parameters() if p.grad is not None)
            r["layer_grads"] = [
                float(sum(p.grad.abs().sum() for p in k.parameters())) for k in layers if any(True for _ in k.parameters())
            ]
            before = [p.detach().clone() for p in m.parameters()]
            torch.optim.SGD(m.parameters(), lr=0.01).step()
            r["stepped"] = any(not torch.equal(a, p) for a, p in zip(before, m.parameters()))
            m.args = args
            m.zero_grad(set_to_none=True)

            y.save(job["ckpt"])
            with torch.no_grad():
                r["reference"] = copy.deepcopy(m).half().float().eval()(x)[0].flatten()[:2000].tolist()

            f = y.export(format="onnx", dynamic=True, imgsz=64, simplify=False, verbose=False)
            graph = onnx.load(f).graph
            r["onnx_domains"] = sorted({n.domain for n in graph.node})
            r["onnx_input_dims"] = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
            session = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
            m.eval()
            r["parity"] = []
            for shape in [(1, 3, 64, 64), (2, 3, 96, 64)]:
                xi = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
                with torch.no_grad():
                    ref = m(xi)[0].numpy()
                out = session.run(None, {session.get_inputs()[0].name: xi.numpy()})[0]
                worst = float((np.abs(out - ref) / (1e-4 + 1e-5 * np.abs(ref))).max())  # <= 1: allclose(1e-5, 1e-4)
                r["parity"].append([list(out.shape), list(ref.shape), worst])
            del session
            __import__("os").remove(f)
        except Exception:
            r["error"] = traceback.format_exc()
        print("RESULT " + json.dumps(r), flush=True)
    """
)

# Loads every saved checkpoint under ULTRALYTICS_SAFE_LOAD=1 (weights_only) and repeats the reference forward.
SAFE_LOAD = textwrap.dedent(
    """
    import json, os, sys, traceback
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)
    assert os.environ["ULTRALYTICS_SAFE_LOAD"] == "1"
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for job in json.loads(sys.argv[1]):
        r = {"cfg": job["cfg"]}
        try:
            m = YOLO(job["ckpt"]).model
            r["layers"] = sum(type(k).__name__ == job["cls"] for k in m.modules())
            with torch.no_grad():
                r["output"] = m.float().eval()(x)[0].flatten()[:2000].tolist()
            os.remove(job["ckpt"])
        except Exception:
            r["error"] = traceback.format_exc()
        print("RESULT " + json.dumps(r), flush=True)
    """
)


def _start(code: str, jobs: list, cwd, env_extra: dict) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ULTRALYTICS_SAFE_LOAD"}
    env.update({"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", **env_extra})
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(jobs)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(procs: list) -> dict:
    out = {}
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[7:])
                out[r["cfg"]] = r
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """``(train_export results, safe_load results)`` keyed by config name."""
    work = tmp_path_factory.mktemp("attention_e2e")
    jobs = [{**j, "ckpt": str(work / j["cfg"].replace(".yaml", ".pt"))} for j in JOBS]
    procs = [_start(TRAIN_EXPORT, jobs[k::2], work, {}) for k in range(2)]  # two halves side by side
    trained = _results(procs)
    saved = [j for j in jobs if os.path.exists(j["ckpt"])]
    loaded = _results([_start(SAFE_LOAD, saved, work, {"ULTRALYTICS_SAFE_LOAD": "1"})])
    return trained, loaded


def _ok(results: dict) -> dict:
    errors = {k: r["error"] for k, r in results.items() if "error" in r}
    assert not errors, "\n\n".join(f"{k}:\n{e}" for k, e in errors.items())
    return results


def test_every_config_builds_with_inferred_channels_and_trains_a_step(sweep):
    trained = _ok(sweep[0])
    assert sorted(trained) == sorted(j["cfg"] for j in JOBS)
    for job in JOBS:
        r = trained[job["cfg"]]
        layer = job["cls"].lower()
        assert r["rows"] >= 3 and r["layers"] == r["rows"], r  # one built layer per YAML row
        assert r["modules"] == [f"yolo_ema.nn.{layer}"], r
        assert len(r["channels"]) == r["rows"] and all(a == b for a, b in r["channels"]), r
        assert r["loss"] > 0 and r["grads_finite"] and r["stepped"], r
        if job["cls"] != "SimAM":
            assert len(r["layer_grads"]) == r["rows"] and all(g > 0 for g in r["layer_grads"]), r


def test_every_layer_and_family_exports_dynamic_onnx_with_parity(sweep):
    trained = _ok(sweep[0])
    pairs = lambda a, b: {(j[a], j[b]) for j in JOBS}  # noqa: E731
    assert pairs("cls", "family") == {(c, f) for c in LAYERS.values() for f in FAMILIES}  # every layer x family
    assert pairs("cls", "scale") == {(c, s) for c in LAYERS.values() for s in "ns"}  # every layer at both scales
    assert pairs("family", "scale") == {(f, s) for f in FAMILIES for s in "ns"}  # every family at both scales
    for job in JOBS:
        r = trained[job["cfg"]]
        assert r["onnx_domains"] == [""], r["onnx_domains"]  # standard operators only
        assert r["onnx_input_dims"][0] == "batch" and all(isinstance(d, str) for d in r["onnx_input_dims"][2:]), r
        for out_shape, ref_shape, worst in r["parity"]:
            assert out_shape == ref_shape
            assert worst <= 1, (job["cfg"], worst)  # |onnx - torch| <= 1e-4 + 1e-5 |torch| everywhere


def test_every_checkpoint_loads_under_safe_load(sweep):
    trained, loaded = _ok(sweep[0]), _ok(sweep[1])
    assert sorted(loaded) == sorted(trained)
    for name, r in loaded.items():
        assert r["layers"] == trained[name]["layers"], name
        ref, out = trained[name]["reference"], r["output"]
        assert len(out) == len(ref) > 0
        assert all(abs(a - b) <= 1e-4 + 1e-5 * abs(b) for a, b in zip(out, ref)), name
