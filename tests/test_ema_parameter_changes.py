"""EMA output follows every way a parameter can change: nothing derived from the parameters is ever stale.

Each test runs the module once (so that anything it could keep is built), changes the parameters the way real code
does (pruning/quantisation through ``.data``, checkpoint loads, optimizers, Ultralytics' ``ModelEMA`` and ``fuse``),
then compares with a fresh :class:`yolo_ema.nn.ema_paper.PaperEMA` loaded from the module's current state_dict.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import CFG

from yolo_ema.nn.ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA

TOL = 1e-5
NAMES = ["conv1x1.weight", "conv1x1.bias", "conv3x3.weight", "conv3x3.bias", "gn.weight", "gn.bias"]


def _ema(seed: int = 0) -> EMA:
    torch.manual_seed(seed)
    m = EMA(32, 4).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.5)
    return m


def _x(dtype=torch.float32) -> torch.Tensor:
    return (torch.randn(2, 32, 9, 7, generator=torch.Generator().manual_seed(1)) * 2 + 0.5).to(dtype)


def assert_matches_paper(m: EMA, x: torch.Tensor, tol: float = TOL) -> None:
    """``m(x)`` equals the paper's formulation with m's current parameters, under no_grad and inference_mode."""
    ref = PaperEMA(m.channels, m.groups).to(x.dtype).eval()
    ref.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        expected = ref(x)
        got = m(x)
    with torch.inference_mode():
        got_inf = m(x)
    assert (got - expected).abs().max().item() <= tol
    assert (got_inf - expected).abs().max().item() <= tol


def _warm(m: EMA, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return m(x)


@pytest.mark.parametrize("name", NAMES)
def test_in_place_write_through_data(name):
    m, x = _ema(), _x()
    before = _warm(m, x)
    p = m.get_parameter(name)
    p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    assert_matches_paper(m, x)
    assert (_warm(m, x) - before).abs().max().item() > 1e-3  # the change is visible


@pytest.mark.parametrize("name", NAMES)
def test_assign_data_and_replace_parameter(name):
    m, x = _ema(), _x()
    _warm(m, x)
    mod_name, attr = name.rsplit(".", 1)
    mod = m.get_submodule(mod_name)
    new = torch.randn(getattr(mod, attr).shape, generator=torch.Generator().manual_seed(3))
    getattr(mod, attr).data = new.clone()
    assert_matches_paper(m, x)
    setattr(mod, attr, torch.nn.Parameter(new * 0.5))  # a new tensor object, possibly at a freed address
    assert_matches_paper(m, x)


def test_load_state_dict_and_copy_under_no_grad():
    m, x = _ema(0), _x()
    _warm(m, x)
    m.load_state_dict(_ema(5).state_dict())
    assert_matches_paper(m, x)
    _warm(m, x)
    with torch.no_grad():
        for p, q in zip(m.parameters(), _ema(6).parameters()):
            p.copy_(q)
    assert_matches_paper(m, x)
    with torch.no_grad():
        m.gn.bias.mul_(-1.0)  # in place on the Parameter itself
    assert_matches_paper(m, x)


def test_dtype_and_device_moves():
    m, x = _ema(), _x()
    _warm(m, x)
    m.double()
    assert_matches_paper(m, x.double(), tol=1e-10)
    m.half()
    m.float()  # parameters now rounded to fp16
    assert_matches_paper(m, x)
    m.to(torch.float64)
    assert_matches_paper(m, x.double(), tol=1e-10)
    m.to("cpu", torch.float32)
    assert_matches_paper(m, x)


def test_optimizer_step_between_inference_calls():
    m, x = _ema(), _x()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(2):
        _warm(m, x)
        m.train()
        opt.zero_grad()
        m(x.clone().requires_grad_(True)).square().mean().backward()
        opt.step()
        m.eval()
        assert_matches_paper(m, x)


def _ema_model():
    pytest.importorskip("ultralytics")
    from ultralytics.nn.tasks import DetectionModel

    from yolo_ema import register

    register()
    model = DetectionModel(str(CFG / "yolov8n-ema.yaml"), nc=2, verbose=False)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, EMA):
                for p in m.parameters():
                    p.normal_(0.0, 0.5)
    return model.eval()


def _check_ema_layers(model, x: torch.Tensor) -> int:
    """Run ``model`` and compare every EMA layer's output with PaperEMA on the input it got; returns the count."""
    seen = []

    def hook(mod, inp, out):
        ref = PaperEMA(mod.channels, mod.groups).eval()
        ref.load_state_dict(mod.state_dict(), strict=True)
        assert (out - ref(inp[0])).abs().max().item() <= TOL
        seen.append(mod)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, EMA)]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return len(seen)


def test_ultralytics_model_ema_update():
    from ultralytics.utils.torch_utils import ModelEMA

    model, x = _ema_model(), torch.rand(1, 3, 64, 64)
    ema = ModelEMA(model, decay=0.5, tau=1)
    assert _check_ema_layers(ema.ema, x) == 3
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, EMA):
                for p in m.parameters():
                    p.add_(1.0)
    ema.update(model)  # in-place lerp on the state_dict tensors (torch._foreach_lerp_)
    ema.update(model)
    ref = next(m for m in model.modules() if isinstance(m, EMA))
    got = next(m for m in ema.ema.modules() if isinstance(m, EMA))
    assert (got.gn.bias - ref.gn.bias).abs().max().item() < 0.9  # moved towards the model
    assert _check_ema_layers(ema.ema, x) == 3


def test_ultralytics_fuse_of_model_with_ema():
    model, x = _ema_model(), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        before = model(x)[0]
    model.fuse(verbose=False)
    assert not any(hasattr(m, "bn") for m in model.modules() if type(m).__name__ == "Conv")  # BN folded
    assert _check_ema_layers(model, x) == 3
    with torch.inference_mode():
        assert (model(x)[0] - before).abs().max().item() <= 1e-3 * before.abs().max().item()
    half = copy.deepcopy(model).half().float()  # what Model.save() stores, loaded back
    assert _check_ema_layers(half, x) == 3
