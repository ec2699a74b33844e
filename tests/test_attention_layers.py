"""SE, CBAM, CA, ECA, SA and SimAM against references written from the papers' equations, their parameter counts,
argument errors, the official implementations' state_dict keys, gradients and dynamic ONNX export."""

from __future__ import annotations

import io
import math

import pytest
import torch

from yolo_ema.nn import CA, CBAM, ECA, SA, SE, SimAM
from yolo_ema.nn.eca import eca_kernel_size

SIZES = [(1, 7, 9), (3, 8, 6), (3, 5, 5)]  # (batch, H, W): odd, even and square maps, batch 1 and 3
C = 64


def randomize(m: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic a random value (the default initialisations hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                v = (
                    torch.rand(t.shape, generator=g) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=g)
                )
                t.copy_(v * (0.3 if "running" not in name else 1.0))
    return m


def sd(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    """float64 copies of the module's tensors, for the references."""
    return {k: v.double() for k, v in m.state_dict().items() if v.is_floating_point()}


def sigmoid(t):
    return 1 / (1 + torch.exp(-t))


def bn_eval(t, p, prefix, eps=1e-5):
    """BatchNorm with running statistics over dim 1, written out."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    mean, var = p[prefix + "running_mean"].view(shape), p[prefix + "running_var"].view(shape)
    return (t - mean) / torch.sqrt(var + eps) * p[prefix + "weight"].view(shape) + p[prefix + "bias"].view(shape)


# --- references from the papers' equations (float64, loops or plain formulas) --------------------------------------


def ref_se(x, p):
    """Hu et al. Eq. 2-4: z = mean over H, W; s = sigmoid(W2 relu(W1 z)); out = s * x."""
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        z = torch.stack([x[n, c].sum() / x[n, c].numel() for c in range(x.shape[1])])  # (C,)
        s = sigmoid(p["fc.2.weight"] @ torch.clamp(p["fc.0.weight"] @ z, min=0))
        out[n] = x[n] * s[:, None, None]
    return out


def ref_cbam(x, p, k):
    """Woo et al. Eq. 2-3 with the authors' MLP biases, [max, mean] input order and BatchNorm (eval mode)."""

    def mlp(v):  # (N, C)
        h = torch.clamp(v @ p["ChannelGate.mlp.1.weight"].T + p["ChannelGate.mlp.1.bias"], min=0)
        return h @ p["ChannelGate.mlp.3.weight"].T + p["ChannelGate.mlp.3.bias"]

    flat = x.flatten(2)  # (N, C, HW)
    mc = sigmoid(mlp(flat.sum(2) / flat.shape[2]) + mlp(flat.max(2).values))  # (N, C)
    x1 = x * mc[:, :, None, None]
    maps = torch.stack([x1.max(1).values, x1.sum(1) / x1.shape[1]], 1)  # (N, 2, H, W)
    r = k // 2
    padded = torch.nn.functional.pad(maps, (r, r, r, r))
    h, w = x.shape[2:]
    conv = sum(
        p["SpatialGate.spatial.conv.weight"][0, c, i, j] * padded[:, c, i : i + h, j : j + w]
        for c in range(2)
        for i in range(k)
        for j in range(k)
    )  # (N, H, W) cross-correlation tap by tap
    ms = sigmoid(bn_eval(conv[:, None], p, "SpatialGate.spatial.bn."))
    return x1 * ms


def ref_ca(x, p):
    """Hou et al. Eq. 2-6: direction-wise means, shared 1x1 conv + BN + h-swish, per-direction 1x1 conv gates."""
    n, c, h, w = x.shape
    z_h = torch.stack([x[:, :, i, :].sum(-1) / w for i in range(h)], -1)  # (N, C, H)
    z_w = torch.stack([x[:, :, :, j].sum(-1) / h for j in range(w)], -1)  # (N, C, W)
    z = torch.cat([z_h, z_w], -1)  # (N, C, H+W)
    f = torch.einsum("mc,ncl->nml", p["conv1.weight"][:, :, 0, 0], z) + p["conv1.bias"][None, :, None]
    f = bn_eval(f, p, "bn1.")
    f = f * torch.clamp(f + 3, 0, 6) / 6  # h-swish
    g_h = sigmoid(torch.einsum("cm,nml->ncl", p["conv_h.weight"][:, :, 0, 0], f[..., :h]) + p["conv_h.bias"][:, None])
    g_w = sigmoid(torch.einsum("cm,nml->ncl", p["conv_w.weight"][:, :, 0, 0], f[..., h:]) + p["conv_w.bias"][:, None])
    return x * g_h[:, :, :, None] * g_w[:, :, None, :]


def ref_eca(x, p):
    """Wang et al. Eq. 7: w_i = sigmoid(sum_j k_j y_{i+j}) over the zero-padded pooled channels, out = w * x."""
    wk = p["conv.weight"].flatten()
    k, c = wk.numel(), x.shape[1]
    y = x.mean((2, 3))  # (N, C)
    out = torch.empty_like(x)
    for i in range(c):
        acc = sum(wk[j] * y[:, i + j - k // 2] for j in range(k) if 0 <= i + j - k // 2 < c)
        out[:, i] = x[:, i] * sigmoid(acc)[:, None, None]
    return out


def ref_sa(x, p, groups):
    """Zhang and Yang Eq. 1-2 group by group, then the 2-group channel shuffle as an explicit index map."""
    n, c, h, w = x.shape
    half = c // (2 * groups)
    before = torch.empty_like(x)
    for g in range(groups):
        lo = g * 2 * half
        for j in range(half):
            xc = x[:, lo + j]  # (N, H, W) channel branch
            s = p["cweight"][0, j, 0, 0] * xc.mean((1, 2)) + p["cbias"][0, j, 0, 0]
            before[:, lo + j] = xc * sigmoid(s)[:, None, None]
            xs = x[:, lo + half + j]  # spatial branch: per-channel normalisation over H, W
            mu = xs.mean((1, 2), keepdim=True)
            var = ((xs - mu) ** 2).mean((1, 2), keepdim=True)
            gn = (xs - mu) / torch.sqrt(var + 1e-5) * p["gn.weight"][j] + p["gn.bias"][j]
            before[:, lo + half + j] = xs * sigmoid(p["sweight"][0, j, 0, 0] * gn + p["sbias"][0, j, 0, 0])
    order = [(k % 2) * (c // 2) + k // 2 for k in range(c)]  # shuffle: output k takes input (k mod 2) C/2 + k div 2
    return before[:, order]


def ref_simam(x, lam):
    """Yang et al. Eq. 5-6: e_t = 4 (var + lambda) / ((t - mu)^2 + 2 var + 2 lambda), out = x * sigmoid(1 / e_t)."""
    mu = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), unbiased=True, keepdim=True)  # over M - 1, as the official code
    e = 4 * (var + lam) / ((x - mu) ** 2 + 2 * var + 2 * lam)
    return x * sigmoid(1 / e)


CASES = {
    "SE": (lambda: SE(C), lambda x, m: ref_se(x, sd(m))),
    "SE-r4": (lambda: SE(C, 4), lambda x, m: ref_se(x, sd(m))),
    "CBAM": (lambda: CBAM(C), lambda x, m: ref_cbam(x, sd(m), 7)),
    "CBAM-k3-r8": (lambda: CBAM(C, 3, 8), lambda x, m: ref_cbam(x, sd(m), 3)),
    "CA": (lambda: CA(C), lambda x, m: ref_ca(x, sd(m))),
    "CA-r4": (lambda: CA(C, 4), lambda x, m: ref_ca(x, sd(m))),
    "ECA": (lambda: ECA(C), lambda x, m: ref_eca(x, sd(m))),
    "ECA-k7": (lambda: ECA(C, 7), lambda x, m: ref_eca(x, sd(m))),
    "SA-g8": (lambda: SA(C, 8), lambda x, m: ref_sa(x, sd(m), 8)),
    "SA-g32": (lambda: SA(C, 32), lambda x, m: ref_sa(x, sd(m), 32)),
    "SA-128": (lambda: SA(128), lambda x, m: ref_sa(x, sd(m), 64)),
    "SimAM": (lambda: SimAM(C), lambda x, m: ref_simam(x, 1e-4)),
    "SimAM-0.1": (lambda: SimAM(C, 0.1), lambda x, m: ref_simam(x, 0.1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_paper_reference(name):
    make, ref = CASES[name]
    m = randomize(make()).eval()
    g = torch.Generator().manual_seed(1)
    for b, h, w in SIZES:
        x = torch.randn(b, m.channels, h, w, generator=g) * 2 + 0.5
        with torch.no_grad():
            y = m(x)
        assert y.shape == x.shape and y.dtype == torch.float32
        torch.testing.assert_close(y.double(), ref(x.double(), m), rtol=0, atol=1e-5)


def test_training_mode_batchnorm_uses_batch_statistics():
    """CA and CBAM normalise with the batch's statistics while training, like any BatchNorm (reference: eval mode
    given those statistics as running ones)."""
    x = torch.randn(3, C, 6, 5, generator=torch.Generator().manual_seed(2))
    for m, prefix, ref in [
        (CA(C), "bn1.", ref_ca),
        (CBAM(C), "SpatialGate.spatial.bn.", lambda x, p: ref_cbam(x, p, 7)),
    ]:
        randomize(m).train()
        bn = m.get_submodule(prefix[:-1])
        stats: dict[str, torch.Tensor] = {}
        bn.register_forward_hook(lambda mod, inp, out, stats=stats: stats.update(x=inp[0].detach().double()))
        with torch.no_grad():
            y = m(x)
        t = stats["x"]
        p = sd(m)
        p[prefix + "running_mean"] = t.mean((0, 2, 3))
        p[prefix + "running_var"] = t.var((0, 2, 3), unbiased=False)
        torch.testing.assert_close(y.double(), ref(x.double(), p), rtol=0, atol=1e-5)


def test_simam_one_pixel_map_is_half_gate():
    """A 1 x 1 map has t = mu: the energy term vanishes and the gate is sigmoid(1/2), never NaN."""
    x = torch.randn(2, 8, 1, 1)
    torch.testing.assert_close(SimAM(8)(x), x * torch.sigmoid(torch.tensor(0.5)))


def test_eca_kernel_size_formula():
    """k = |log2(C) / gamma + b / gamma| made odd (Wang et al. Eq. 12); worked values for gamma 2, b 1."""
    worked = {1: 1, 16: 3, 32: 3, 64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    for c, k in worked.items():
        t = int(abs(math.log2(c) / 2 + 1 / 2))
        assert k == (t if t % 2 else t + 1)
        assert eca_kernel_size(c) == k and ECA(c).k_size == k and ECA(c).conv.weight.shape == (1, 1, k)
    assert eca_kernel_size(256, gamma=1, b=0) == 9 and ECA(256, gamma=3, b=2).k_size == 3


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("c", [32, 64, 256])
def test_parameter_counts_match_formulas(c):
    """Counts from the papers' formulas; CBAM and CA add the biases and BatchNorm of the official code."""
    assert n_params(SE(c)) == 2 * c * (c // 16)  # 2 C^2 / r
    assert n_params(SE(c, 4)) == 2 * c * (c // 4)
    h = c // 16
    assert n_params(CBAM(c)) == (2 * c * h + h + c) + 2 * 7 * 7 + 2  # shared MLP + 7x7 conv (2 -> 1) + BN affine
    assert n_params(CBAM(c, 3, 8)) == (2 * c * (c // 8) + c // 8 + c) + 2 * 3 * 3 + 2
    mip = max(8, c // 32)
    assert n_params(CA(c)) == (c * mip + mip) + 2 * mip + 2 * (mip * c + c)  # conv1 + bn1 + conv_h, conv_w
    assert n_params(ECA(c)) == eca_kernel_size(c)  # k, no bias
    for groups in (1, c // 32, c // 2):
        assert n_params(SA(c, groups)) == 3 * c // groups  # 6 vectors of C / 2G
    assert n_params(SimAM(c)) == 0 and len(SimAM(c).state_dict()) == 0


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: SE(8), ["SE", "reduction=16", "channels=8"]),
        (lambda: SE(64, 0), ["SE", "reduction=0"]),
        (lambda: CBAM(8), ["CBAM", "reduction=16", "channels=8"]),
        (lambda: CBAM(64, 6), ["CBAM", "kernel_size=6", "odd"]),
        (lambda: CBAM(64, 7, 65), ["CBAM", "reduction=65", "channels=64"]),
        (lambda: CA(0), ["CA", "channels=0"]),
        (lambda: CA(64, 2.5), ["CA", "reduction=2.5"]),
        (lambda: ECA(64, 4), ["ECA", "k_size=4", "odd"]),
        (lambda: ECA(True), ["ECA", "channels=True"]),
        (lambda: SA(96), ["SA", "channels=96", "2 * groups = 128", "groups=64"]),
        (lambda: SA(64, 3), ["SA", "channels=64", "2 * groups = 6"]),
        (lambda: SA(63, 1), ["SA", "channels=63", "odd"]),
        (lambda: SimAM(64, 0), ["SimAM", "e_lambda=0"]),
        (lambda: SimAM(-1), ["SimAM", "channels=-1"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_impossible_settings_name_the_numbers(make, words):
    with pytest.raises(ValueError) as e:
        make()
    for word in words:
        assert word in str(e.value)


# Official implementations' state_dict keys and shapes for C = 64 (written from the cited files).
OFFICIAL = {
    # github.com/moskomule/senet.pytorch senet/se_module.py SELayer; github.com/ZjjConan/SimAM se_module
    "SE": (SE(64), {"fc.0.weight": (4, 64), "fc.2.weight": (64, 4)}),
    # github.com/Jongchan/attention-module MODELS/cbam.py CBAM(64)
    "CBAM": (
        CBAM(64),
        {
            "ChannelGate.mlp.1.weight": (4, 64),
            "ChannelGate.mlp.1.bias": (4,),
            "ChannelGate.mlp.3.weight": (64, 4),
            "ChannelGate.mlp.3.bias": (64,),
            "SpatialGate.spatial.conv.weight": (1, 2, 7, 7),
            "SpatialGate.spatial.bn.weight": (1,),
            "SpatialGate.spatial.bn.bias": (1,),
            "SpatialGate.spatial.bn.running_mean": (1,),
            "SpatialGate.spatial.bn.running_var": (1,),
            "SpatialGate.spatial.bn.num_batches_tracked": (),
        },
    ),
    # github.com/houqb/CoordAttention coordatt.py CoordAtt(64, 64)
    "CA": (
        CA(64),
        {
            "conv1.weight": (8, 64, 1, 1),
            "conv1.bias": (8,),
            "bn1.weight": (8,),
            "bn1.bias": (8,),
            "bn1.running_mean": (8,),
            "bn1.running_var": (8,),
            "bn1.num_batches_tracked": (),
            "conv_h.weight": (64, 8, 1, 1),
            "conv_h.bias": (64,),
            "conv_w.weight": (64, 8, 1, 1),
            "conv_w.bias": (64,),
        },
    ),
    # github.com/BangguWu/ECANet models/eca_module.py eca_layer(64, k_size=3)
    "ECA": (ECA(64), {"conv.weight": (1, 1, 3)}),
    # github.com/wofmanaf/SA-Net models/sa_resnet.py sa_layer(64, groups=8)
    "SA": (
        SA(64, 8),
        {
            "cweight": (1, 4, 1, 1),
            "cbias": (1, 4, 1, 1),
            "sweight": (1, 4, 1, 1),
            "sbias": (1, 4, 1, 1),
            "gn.weight": (4,),
            "gn.bias": (4,),
        },
    ),
    # github.com/ZjjConan/SimAM networks/attentions/simam_module.py: no parameters, no buffers
    "SimAM": (SimAM(64), {}),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_state_dict_loads_strictly(name):
    m, keys = OFFICIAL[name]
    g = torch.Generator().manual_seed(3)
    official = {
        k: torch.tensor(5) if k.endswith("num_batches_tracked") else torch.rand(s, generator=g) + 0.1
        for k, s in keys.items()
    }
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == keys
    m.load_state_dict(official, strict=True)
    for k, v in m.state_dict().items():
        assert torch.equal(v, official[k]), k


@pytest.mark.parametrize(
    "make",
    [lambda: SE(C), lambda: CBAM(C), lambda: CA(C), lambda: ECA(C), lambda: SA(C, 8)],
    ids=["SE", "CBAM", "CA", "ECA", "SA"],
)
def test_gradients_finite_and_reach_every_parameter(make):
    m = randomize(make()).train()
    x = torch.randn(3, C, 7, 6, requires_grad=True)
    (m(x) * torch.randn(3, C, 7, 6)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "make",
    [lambda: SE(16, 4), lambda: CBAM(16, 3, 4), lambda: CA(16, 4), lambda: ECA(16), lambda: SA(16, 2), lambda: SimAM()],
    ids=["SE", "CBAM", "CA", "ECA", "SA", "SimAM"],
)
def test_gradcheck(make):
    """Autograd gradients equal finite differences (float64, random projections; BatchNorm layers in eval mode)."""
    m = randomize(make()).double().eval()
    x = torch.randn(2, 16, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


STANDARD_OPS = {
    "Add", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Flatten", "Gather", "Gemm", "HardSwish",
    "Identity", "InstanceNormalization", "MatMul", "Mod", "Mul", "ReduceMax", "ReduceMean", "ReduceSum", "Relu",
    "Reshape", "Shape", "Sigmoid", "Slice", "Split", "Sub", "Transpose", "Unsqueeze",
}  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [lambda: SE(C), lambda: CBAM(C), lambda: CA(C), lambda: ECA(C), lambda: SA(C, 8), lambda: SimAM(C)],
    ids=["SE", "CBAM", "CA", "ECA", "SA", "SimAM"],
)
def test_dynamic_onnx_export_matches_torch(make):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m = randomize(make()).eval()
    f = io.BytesIO()
    torch.onnx.export(
        m,
        (torch.randn(1, C, 16, 16),),
        f,
        dynamo=False,  # the exporter Ultralytics uses
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}},
    )
    graph = onnx.load_from_string(f.getvalue()).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}
    assert {n.op_type for n in graph.node} <= STANDARD_OPS
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(1, C, 16, 16), (3, C, 9, 21)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = m(x).numpy()
        (y,) = session.run(None, {"x": x.numpy()})
        assert y.shape == shape
        assert abs(y - expected).max() <= 1e-5
