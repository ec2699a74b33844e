"""The optimized EMA against the paper: outputs, gradients, state_dict, validation, autocast, tracing, ONNX.

EMA: Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", ICASSP 2023,
https://arxiv.org/abs/2305.13563

``OfficialEMA`` below is a third, independent implementation written from the paper's equations in the style of the
authors' public code (adaptive pooling, permutes, two matmuls); :class:`yolo_ema.nn.ema.EMA` must match it.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from yolo_ema.nn.ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA

TOL = 1e-5


class OfficialEMA(nn.Module):
    """EMA as in the authors' code layout: adaptive pooling, permute, softmax of pooled descriptors, two matmuls."""

    def __init__(self, channels: int, factor: int = 32) -> None:
        super().__init__()
        self.groups = factor
        cg = channels // factor
        self.softmax = nn.Softmax(-1)
        self.agp = nn.AdaptiveAvgPool2d((1, 1))
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.gn = nn.GroupNorm(cg, cg)
        self.conv1x1 = nn.Conv2d(cg, cg, kernel_size=1, stride=1, padding=0)
        self.conv3x3 = nn.Conv2d(cg, cg, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.size()
        gx = x.reshape(b * self.groups, -1, h, w)  # (BG, Cg, H, W)
        x_h = self.pool_h(gx)  # (BG, Cg, H, 1)
        x_w = self.pool_w(gx).permute(0, 1, 3, 2)  # (BG, Cg, W, 1)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))  # (BG, Cg, H+W, 1)
        x_h, x_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(gx * x_h.sigmoid() * x_w.permute(0, 1, 3, 2).sigmoid())  # (BG, Cg, H, W)
        x2 = self.conv3x3(gx)  # (BG, Cg, H, W)
        x11 = self.softmax(self.agp(x1).reshape(b * self.groups, -1, 1).permute(0, 2, 1))  # (BG, 1, Cg)
        x12 = x2.reshape(b * self.groups, c // self.groups, -1)  # (BG, Cg, HW)
        x21 = self.softmax(self.agp(x2).reshape(b * self.groups, -1, 1).permute(0, 2, 1))  # (BG, 1, Cg)
        x22 = x1.reshape(b * self.groups, c // self.groups, -1)  # (BG, Cg, HW)
        weights = (torch.matmul(x11, x12) + torch.matmul(x21, x22)).reshape(b * self.groups, 1, h, w)
        return (gx * weights.sigmoid()).reshape(b, c, h, w)


def make_pair(channels: int, factor: int, seed: int = 0, dtype=torch.float32) -> tuple[OfficialEMA, EMA]:
    """Official-style module with random non-default parameters, and ours loaded from its state_dict (strict)."""
    torch.manual_seed(seed)
    ref = OfficialEMA(channels, factor)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.5)
    ours = EMA(channels, factor)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.to(dtype).eval(), ours.to(dtype)  # eval: GroupNorm refuses one value per group in training mode


SHAPES = [
    ((1, 64, 9, 7), 8),
    ((8, 64, 6, 7), 8),
    ((1, 64, 13, 13), 32),
    ((8, 128, 6, 5), 32),
    ((1, 64, 1, 1), 8),
    ((2, 64, 1, 1), 32),
    ((1, 32, 1, 6), 8),
    ((1, 32, 5, 1), 8),
    ((2, 16, 2, 3), 16),  # one channel per group
]


@pytest.mark.parametrize("shape,factor", SHAPES)
def test_forward_matches_official(shape, factor):
    ref, ours = make_pair(shape[1], factor)
    x = torch.randn(shape) * 2 + 0.5
    with torch.no_grad():
        expected = ref(x)
        got = ours(x)
    assert got.shape == x.shape
    assert (got - expected).abs().max().item() <= TOL
    paper = PaperEMA(shape[1], factor)
    paper.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        assert (paper(x) - expected).abs().max().item() <= TOL


def _grads(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    xi = x.clone().requires_grad_(True)
    out = module(xi)
    out.backward(g)
    return out.detach(), {"input": xi.grad, **{n: p.grad for n, p in module.named_parameters()}}


@pytest.mark.parametrize("shape,factor", SHAPES)
def test_gradients_match_official(shape, factor):
    """Input and every parameter gradient, fp32 and fp64.

    Parameter gradients are sums over B*G*H*W terms and are compared relative to max(1, |g|). At 1x1 spatial size the
    GroupNorm gradient is roundoff amplified by 1/sqrt(eps); there the fp32 official module itself is off its fp64
    value, so fp32 gradients are held to the fp64 truth and to the official fp32 up to the latter's own error.
    """
    x = torch.randn(shape, dtype=torch.float64)
    g = torch.randn(shape, dtype=torch.float64)
    ref64, ours64 = make_pair(shape[1], factor, dtype=torch.float64)
    out_t, truth = _grads(ref64, x, g)
    out64, got64 = _grads(ours64, x, g)
    assert (out_t - out64).abs().max().item() <= 1e-10
    assert set(got64) == set(truth)
    for name, t in truth.items():
        assert got64[name] is not None, name
        assert (got64[name] - t).abs().max().item() <= 1e-10 * max(1.0, t.abs().max().item()), name

    ref32, ours32 = make_pair(shape[1], factor)
    out_r, ref = _grads(ref32, x.float(), g.float())
    out_o, got = _grads(ours32, x.float(), g.float())
    assert (out_r - out_o).abs().max().item() <= TOL
    for name, t in truth.items():
        scale = max(1.0, t.abs().max().item())
        ref_err = (ref[name].double() - t).abs().max().item()
        assert (got[name].double() - t).abs().max().item() <= TOL * scale, name
        assert (got[name] - ref[name]).abs().max().item() <= TOL * scale + ref_err, name


def test_functional_path_gradients_match_custom_backward():
    """The export/compile graph (plain autograd) and the eager custom backward agree."""
    _, ours = make_pair(64, 8, dtype=torch.float64)
    x = torch.randn(2, 64, 7, 9, dtype=torch.float64)
    g = torch.randn_like(x)
    grads = []
    for fn in (ours, ours._forward_graph):
        ours.zero_grad()
        xi = x.clone().requires_grad_(True)
        fn(xi).backward(g)
        grads.append([xi.grad] + [p.grad.clone() for p in ours.parameters()])
    for a, b in zip(*grads):
        assert (a - b).abs().max().item() <= 1e-10


def test_gradcheck_small():
    _, ours = make_pair(4, 2, dtype=torch.float64)
    x = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ours, (x,), eps=1e-6, atol=1e-6, fast_mode=True)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    g=st.sampled_from([1, 2, 4]),
    cg=st.integers(1, 5),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_paper(b, g, cg, h, w, seed):
    assume(b * g > 1 or h * w > 1)  # F.group_norm rejects a batch of one single value; EMA itself handles it
    ref, ours = make_pair(g * cg, g, seed=seed)
    x = torch.randn(b, g * cg, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert (ref(x) - ours(x)).abs().max().item() <= TOL


def test_state_dict_identical_and_loads_strict():
    ref = OfficialEMA(64, 8)
    ours = EMA(64, 8)
    assert list(ref.state_dict()) == list(ours.state_dict())
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    ours.load_state_dict(ref.state_dict(), strict=True)
    PaperEMA(64, 8).load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize(
    "channels,factor",
    [(64, 7), (10, 4), (64, 0), (64, -2), (4, 8), (3, 5)],
)
def test_factor_validation_names_both_numbers(channels, factor):
    with pytest.raises(ValueError) as e:
        EMA(channels, factor)
    assert str(channels) in str(e.value) and str(factor) in str(e.value)


def test_bf16_autocast_no_nan():
    _, ours = make_pair(64, 8)
    x = torch.randn(2, 64, 12, 10)
    ref = ours(x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            y = ours(x)
        xg = x.clone().requires_grad_(True)
        yg = ours(xg)
    yg.float().sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(yg).all() and torch.isfinite(xg.grad).all()
    assert (y.float() - ref).abs().max().item() < 0.1
    # degenerate 1x1 input (GroupNorm of a single value) under autocast too
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert torch.isfinite(ours(torch.randn(1, 64, 1, 1))).all()


def test_jit_trace_parity():
    _, ours = make_pair(64, 8)
    ours.eval()
    x = torch.randn(2, 64, 11, 9)
    with torch.no_grad():
        traced = torch.jit.trace(ours, x)
        assert (traced(x) - ours(x)).abs().max().item() <= TOL


def test_onnx_dynamic_shapes_two_sizes(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    ref, ours = make_pair(64, 8)
    ours.eval()
    path = tmp_path / "ema.onnx"
    torch.onnx.export(
        ours,
        torch.randn(1, 64, 16, 16),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert not {op for op in ops if "Pool" in op}, ops  # mean pooling only, no (adaptive) pooling ops
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)  # standard ONNX ops only
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((1, 64, 16, 16), (3, 64, 9, 23), (2, 64, 1, 5)):
        x = torch.randn(shape)
        with torch.no_grad():
            expected = ref(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() <= TOL


def test_plain_module_and_ultralytics_fuse():
    """A plain nn.Module with exactly the paper's parameters; Ultralytics' fuse() leaves it working."""
    ema = EMA(64, 8)
    assert {n for n, _ in ema.named_children()} == {"gn", "conv1x1", "conv3x3"}
    pytest.importorskip("ultralytics")
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), EMA(64, 8)).eval()
    x = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        before = net(x)
    from ultralytics.nn.tasks import BaseModel

    wrapper = BaseModel()
    wrapper.model = net
    wrapper.fuse(verbose=False)
    with torch.no_grad():
        assert (net(x) - before).abs().max().item() <= TOL


@pytest.mark.slow
def test_torch_compile_parity_and_gradients():
    """torch.compile (inductor) forward at two sizes and input/parameter gradients (slow: compiles twice)."""
    ref, ours = make_pair(64, 8)
    compiled = torch.compile(ours)
    x = torch.randn(2, 64, 12, 10)
    g = torch.randn_like(x)
    with torch.no_grad():
        for shape in ((2, 64, 12, 10), (1, 64, 7, 9)):
            xi = torch.randn(shape)
            assert (compiled(xi) - ref(xi)).abs().max().item() <= TOL
    _, expected = _grads(ref, x, g)
    xi = x.clone().requires_grad_(True)
    compiled(xi).backward(g)
    got = {"input": xi.grad, **{n: p.grad for n, p in ours.named_parameters()}}
    for name, t in expected.items():
        assert (got[name] - t).abs().max().item() <= TOL * max(1.0, t.abs().max().item()), name


def test_channels_last_input_and_gradient():
    ref, ours = make_pair(64, 8)
    x = torch.randn(2, 64, 9, 7).to(memory_format=torch.channels_last)
    g = torch.randn(2, 64, 9, 7).to(memory_format=torch.channels_last)
    out_r, expected = _grads(ref, x, g)
    out_o, got = _grads(ours, x, g)
    assert (out_r - out_o).abs().max().item() <= TOL
    assert (expected["input"] - got["input"]).abs().max().item() <= TOL


@pytest.mark.parametrize("shape", [(1, 16, 7, 5), (2, 8, 1, 4), (1, 8, 3, 1), (1, 8, 2, 2)])
def test_identity_b_tap_features_give_conv3x3_mean(shape):
    """The nine pooled numbers and the folded weight give the spatial mean of the zero-padded 3x3 convolution."""
    from yolo_ema.nn.ema import corners, tap_features, tap_weight

    x = torch.randn(shape, dtype=torch.float64)
    conv = nn.Conv2d(shape[1], 5, 3, padding=1).double()
    expected = conv(x).mean((2, 3))  # (N, 5)
    feats = tap_features(x.mean(3, keepdim=True), x.mean(2, keepdim=True), corners(x)).flatten(1)  # (N, C*9)
    got = feats @ tap_weight(conv.weight).flatten(1).t() + conv.bias
    assert (got - expected).abs().max().item() <= 1e-12


@pytest.mark.parametrize("shape", [(0, 64, 9, 7), (0, 64, 1, 1), (2, 64, 0, 5)])
def test_empty_batch_gives_empty_output(shape):
    _, ours = make_pair(64, 8)
    x = torch.randn(shape)
    with torch.no_grad():
        assert ours(x).shape == shape
    xg = x.clone().requires_grad_(True)
    out = ours(xg)
    out.sum().backward()
    assert out.shape == shape and xg.grad.shape == shape


def test_graph_path_matches_official_at_every_shape():
    """The export/compile graph alone (grouped convolutions, InstanceNormalization) against the official layout;
    outputs up to ~8 in magnitude, so the fp32 tolerance is relative."""
    for shape, factor in SHAPES:
        ref, ours = make_pair(shape[1], factor)
        x = torch.randn(shape) * 2 + 0.5
        with torch.no_grad():
            expected = ref(x)
            err = (ours._forward_graph(x) - expected).abs().max().item()
        assert err <= TOL * max(1.0, expected.abs().max().item()), shape  # fp32 roundoff of outputs up to ~8


def test_concurrent_python_threads_leave_thread_count_and_match():
    """Several Python threads running inference at once: same outputs as alone, the process' thread count untouched."""
    from concurrent.futures import ThreadPoolExecutor

    ref, ours = make_pair(64, 8)
    xs = [torch.randn(1 + i % 3, 64, 5 + i, 9) for i in range(12)]
    with torch.no_grad():
        expected = [ref(x) for x in xs]
    before = torch.get_num_threads()

    def run(i: int) -> float:
        with torch.inference_mode():
            return (ours(xs[i]) - expected[i]).abs().max().item()

    with ThreadPoolExecutor(4) as pool:
        errs = list(pool.map(run, list(range(len(xs))) * 3))
    assert max(errs) <= TOL
    assert torch.get_num_threads() == before
