"""Random EMA configurations: a correct finite output or a ValueError naming channels and factor, nothing
else, both for ``yolo_ema.EMA`` directly and for an EMA row of a model YAML parsed by Ultralytics."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from yolo_ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA

FACTORS = st.one_of(
    st.integers(-3, 80),
    st.sampled_from([2.5, 0.5, 1.0, 4.0, -1.5, 80.25]),
    st.booleans(),
)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.bfloat16])
# max |ours - fp64 truth| / max(1, max |x|), with the paper module in the same dtype given the same slack
ATOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 0.1}


@st.composite
def configs(draw) -> tuple[int, object]:
    """(channels, factor): half the draws a divisor of channels (a valid layer), half anything in FACTORS."""
    channels = draw(st.integers(1, 64))
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    factor = draw(st.one_of(st.sampled_from(divisors), FACTORS))
    event("valid" if _valid(channels, factor) else f"ValueError ({type(factor).__name__} factor)")
    return channels, factor


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(channels: int, factor) -> bool:
    return type(factor) is int and 1 <= factor <= channels and channels % factor == 0


def _assert_names_both(msg: str, channels: int, factor) -> None:
    assert re.search(rf"channels[= ]{channels}(?![\d.])", msg), msg
    assert re.search(rf"factor[= ]{re.escape(repr(factor))}(?![\d.])", msg), msg


@pytest.mark.parametrize("shape", [(1, 1, 4, 2), (2, 8, 9, 3), (2, 64, 20, 3)])
def test_training_backward_tall_narrow_input(shape):
    """Regression: H >= 4 with W in {2, 3} used to fail in the custom backward ('view size is not compatible')."""
    torch.manual_seed(0)
    ours = EMA(shape[1], 1 if shape[1] == 1 else 8).double()
    ref = PaperEMA(ours.channels, ours.groups).double()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(shape, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours(xa).square().sum().backward()
    ref(xb).square().sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-10)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-9), name


def _check_output(ours: torch.nn.Module, shape: tuple, dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-default GroupNorm affine so that every identity of the fast path is exercised
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    sd = {k: v.double() for k, v in ours.state_dict().items()}
    truth_m = PaperEMA(ours.channels, ours.groups).double().eval()
    truth_m.load_state_dict(sd, strict=True)
    same_m = PaperEMA(ours.channels, ours.groups).to(dtype).eval()
    same_m.load_state_dict(ours.state_dict(), strict=True)
    ours = ours.to(dtype)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 0.5).to(dtype)
    # the references see every sample twice: torch's GroupNorm refuses a batch of one 1x1 single-group input, which
    # EMA handles (samples are independent, so the first copy is the reference output)
    x2 = torch.cat([x, x])
    with torch.no_grad():
        truth = truth_m(x2.double())[: shape[0]]
        got = ours.eval()(x)
        same = same_m(x2)[: shape[0]]
    assert got.shape == x.shape and got.dtype == dtype
    assert torch.isfinite(got).all()
    scale = max(1.0, x.double().abs().max().item())
    err = (got.double() - truth).abs().max().item() / scale
    paper_err = (same.double() - truth).abs().max().item() / scale
    assert err <= ATOL[dtype] + 2 * paper_err, (err, paper_err)
    # training path (custom autograd function): same output, finite gradients
    xg = x.clone().requires_grad_(True)
    out = ours.train()(xg)
    out.float().square().sum().backward()
    assert (out.detach().double() - got.double()).abs().max().item() / scale <= ATOL[dtype]
    assert torch.isfinite(xg.grad).all() and all(torch.isfinite(p.grad).all() for p in ours.parameters())


RANDOM_INPUTS = given(
    config=configs(),
    batch=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    dtype=DTYPES,
    seed=st.integers(0, 2**31 - 1),
)


@SETTINGS
@RANDOM_INPUTS
def test_ema_random_config(config, batch, h, w, dtype, seed):
    channels, factor = config
    if not _valid(channels, factor):
        with pytest.raises(ValueError) as e:
            EMA(channels, factor)
        _assert_names_both(str(e.value), channels, factor)
        return
    _check_output(EMA(channels, factor), (batch, channels, h, w), dtype, seed)


def _yaml_model(channels: int, factor_text: str):
    from ultralytics.nn.tasks import DetectionModel

    text = f"nc: 1\nbackbone:\n  - [-1, 1, EMA, [{factor_text}]]\nhead:\n  - [-1, 1, nn.Identity, []]\n"
    return DetectionModel(yaml.safe_load(text), ch=channels, verbose=False)


@SETTINGS
@RANDOM_INPUTS
def test_yaml_ema_row_random_config(config, batch, h, w, dtype, seed):
    """The factor goes through YAML text (bools as true/false) and Ultralytics' parse_model; the input channels are
    inferred from the graph (``ch`` of the model)."""
    channels, factor = config
    factor_text = str(factor).lower() if isinstance(factor, bool) else repr(factor)
    assert yaml.safe_load(factor_text) == factor and type(yaml.safe_load(factor_text)) is type(factor)
    if not _valid(channels, factor):
        with pytest.raises(ValueError) as e:
            _yaml_model(channels, factor_text)
        msg = str(e.value)
        assert msg.startswith(f"EMA layer 0 (input channels {channels}, factor {factor!r}): "), msg
        _assert_names_both(msg, channels, factor)
        return
    model = _yaml_model(channels, factor_text)
    layer = model.model[0]
    assert type(layer) is EMA and (layer.channels, layer.groups) == (channels, factor)
    _check_output(layer, (batch, channels, h, w), dtype, seed)
    x = torch.randn(batch, channels, h, w, dtype=dtype)
    with torch.no_grad():  # the whole parsed model runs the row
        assert torch.equal(model.eval().to(dtype)(x), layer(x))
