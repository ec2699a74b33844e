"""The layer registry is the one table: every reader agrees with it, a new entry is a working layer, no import cycle."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
from conftest import REPO

from yolo_ema.nn.registry import INBLOCK, LAYERS


def test_entries_match_their_classes():
    for name, layer in LAYERS.items():
        params = list(inspect.signature(layer.cls).parameters)
        assert params[0] == "channels" and tuple(params[1 : 1 + len(layer.hyper)]) == layer.hyper, name
        assert {"neck", "paper"} <= set(layer.args) and layer.cls.__name__ == name
    assert LAYERS["CBAM"].defaults == {"kernel_size": 7, "reduction": 16}
    assert LAYERS["EMA"].defaults == {"factor": 32}
    for name, block in INBLOCK.items():
        assert block.cls.__name__ == name and block.cls.__base__.__name__ == block.parent and block.layer in LAYERS
        params = list(inspect.signature(block.cls.__base__).parameters)  # c1 (from the graph), c2, n (the row's
        assert len(params) - 2 == block.parent_args  # repeats field), then the rest: YAML args are those but c1, n
        assert block.defaults == {"factor": 8}


def test_readers_take_their_names_from_the_registry():
    import yolo_ema
    import yolo_ema.nn
    from yolo_ema.configs import shipped_specs
    from yolo_ema.seam.parser import BUILDERS

    assert yolo_ema.nn.__all__ == sorted(LAYERS) and all(getattr(yolo_ema.nn, n) is LAYERS[n].cls for n in LAYERS)
    assert yolo_ema.EMA is LAYERS["EMA"].cls
    assert list(BUILDERS) == list(LAYERS)
    assert {s.layer for s in shipped_specs()} - {None} == set(LAYERS) | set(INBLOCK)


NEW_LAYER = '''
import sys, torch
from torch import nn


class Gate(nn.Module):
    """A toy channel gate: x * sigmoid(w * mean(x) + b), one weight per channel."""

    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"Gate scale must be positive, got {scale}")
        self.w = nn.Parameter(torch.full((channels, 1, 1), scale))

    def forward(self, x):
        return x * torch.sigmoid(self.w * x.mean((2, 3), keepdim=True))
'''

ADD_AND_USE = """
import sys, torch
from yolo_ema.nn.registry import LAYERS, Layer
LAYERS["Gate"] = Layer("gate:Gate", ("scale",), "Gate (a test)", {"neck": (0.5,), "paper": ()})  # the one entry

from ultralytics.nn.tasks import DetectionModel
from yolo_ema.configs import Spec, generate
from yolo_ema.seam.transfer import is_plugin
import yolo_ema.nn

text = generate(Spec("yolov8-gate.yaml", "v8/yolov8.yaml", "Gate", (0.5,), "neck"))
open("yolov8n-gate.yaml", "w").write(text)
m = DetectionModel("yolov8n-gate.yaml", verbose=False)
gates = [x for x in m.model if type(x).__name__ == "Gate"]
print("GATES", [g.i for g in gates], [g.w.shape[0] for g in gates], [round(g.w.flatten()[0].item(), 2) for g in gates])
print("PLUGIN", all(is_plugin(g) for g in gates), yolo_ema.nn.Gate is type(gates[0]))
print("SAFE", type(gates[0]) in torch.serialization.get_safe_globals())
try:
    open("yolov8n-bad.yaml", "w").write(text.replace("Gate, [0.5]", "Gate, [-1]"))
    DetectionModel("yolov8n-bad.yaml", verbose=False)
except ValueError as e:
    print("ERROR", e)
"""


def test_a_new_layer_is_one_file_and_one_registry_entry(tmp_path):
    """A layer file outside the package plus one ``LAYERS`` entry: YAML rows build it with their channels inferred,
    the config generator places it, transfer and safe loading know it, bad values are named."""
    (tmp_path / "gate.py").write_text(NEW_LAYER)
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", ADD_AND_USE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.split(" ")[0].isupper())
    assert out["GATES"] == "[16, 20, 24] [64, 128, 256] [0.5, 0.5, 0.5]"  # yolov8n neck P3/P4/P5 widths
    assert out["PLUGIN"] == "True True" and out["SAFE"] == "True"
    assert "Gate layer 16 (input channels 64, scale -1): Gate scale must be positive, got -1" in out["ERROR"]


SEAM_MODULES = ["yolo_ema.blocks", "yolo_ema.seam.inblock", "yolo_ema.seam.parser", "yolo_ema.seam.registration"]


@pytest.mark.parametrize("module", SEAM_MODULES)
def test_any_seam_module_imported_first_completes_registration(module):
    """Whichever module a fresh process imports first (a checkpoint unpickled names yolo_ema.blocks), Ultralytics and
    the registration load completely: no import cycle, nothing half-imported."""
    code = (
        f"import {module}\n"
        "from yolo_ema.seam import registration_status\n"
        "s = registration_status()\n"
        "assert s['registered'] and s['problem'] is None and s['safe_globals'] and s['nan_guard'], s\n"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "registration failed" not in r.stderr, r.stderr[-2000:]
