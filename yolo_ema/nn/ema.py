"""EMA: Efficient Multi-Scale Attention Module with Cross-Spatial Learning.

Ouyang et al., ICASSP 2023, https://arxiv.org/abs/2305.13563

This module computes exactly the paper's output (see :mod:`yolo_ema.nn.ema_paper` for the step-by-step
formulation it is tested against) with far less work, using three identities of the formulation:

(a) The GroupNorm has one group per channel, so the spatial mean of its output is ``gn.bias`` whatever the input:
    ``s1 = softmax(gn.bias)``. The 3x3 branch is only used through ``s1 . conv3x3(gx)``, which is one convolution
    with a single output channel of weight ``sum_c s1_c W_c`` and bias ``sum_c s1_c b_c``.
(b) ``s2`` needs only the spatial mean of ``conv3x3(gx)``. With zero padding, kernel tap (i, j) sees the whole input
    minus one border row and/or column, so that mean is a small contraction of the per-channel total, first/last
    row and column means (the directional poolings already computed) and the four corner values.
(c) ``s2 . GroupNorm(y) = sum_c s2_c gamma_c rstd_c (y_c - mu_c) + s2 . beta``: a channel-weighted sum of the centred
    gated input ``y = gx * sigmoid(a_h) * sigmoid(a_w)``; the normalized tensor is never built.

Parameters and state_dict keys follow the authors' implementation (``conv1x1.*``, ``conv3x3.*``, ``gn.*``) so their
checkpoints load with ``strict=True``. Pooling is written as ``mean`` over an axis, which exports to ONNX with dynamic
spatial sizes (adaptive pooling does not).

Three execution paths share the same algebra: eager inference (in-place temporaries), eager training (a custom autograd
function that saves only the input and the parameters, recomputes the full-size intermediates in backward and
back-propagates the small per-channel graph with autograd) and a purely functional graph used while tracing,
exporting or compiling.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F


def check_factor(channels: int, factor: int) -> None:
    """Raise ValueError unless ``factor`` groups split ``channels`` evenly (the paper's G divides C)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"EMA channels must be a positive integer, got channels={channels!r}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"EMA factor must be a positive integer, got factor={factor!r} (channels={channels})")
    if channels < factor:
        raise ValueError(
            f"EMA factor={factor} exceeds channels={channels}: each of the {factor} groups needs a channel"
        )
    if channels % factor:
        raise ValueError(
            f"EMA channels={channels} is not divisible by factor={factor} (channels % factor = {channels % factor})"
        )


def conv3x3_mean(
    x_h: torch.Tensor, x_w: torch.Tensor, corners: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Spatial mean of ``conv2d(gx, weight, bias, padding=1)`` without computing the convolution.

    Tap (i, j) of a zero-padded 3x3 kernel misses the last input row (i=0) or the first (i=2), and likewise a column
    (j=0: last, j=2: first); where it misses both, the shared corner was subtracted twice and is added back.

    Args:
        x_h: ``gx.mean(3)`` (N, Cin, H).
        x_w: ``gx.mean(2)`` (N, Cin, W).
        corners: ``gx`` at rows (H-1, 0) x columns (W-1, 0), see :func:`_corners` (N, Cin, 2, 2).
        weight: (Cout, Cin, 3, 3). bias: (Cout,).

    Returns:
        (N, Cout) spatial mean of the convolution output.
    """
    h, w = x_h.shape[-1], x_w.shape[-1]
    m = x_h.mean(-1)  # (N, Cin) total mean
    zero = torch.zeros_like(m)
    miss_r = torch.stack([x_h[..., -1], zero, x_h[..., 0]], -1) / h  # (N, Cin, 3) share of the row tap i misses
    miss_c = torch.stack([x_w[..., -1], zero, x_w[..., 0]], -1) / w  # (N, Cin, 3) share of the column tap j misses
    taps = m[..., None, None] - miss_r.unsqueeze(-1) - miss_c.unsqueeze(-2)  # (N, Cin, 3, 3)
    w_corner = torch.stack([weight[:, :, 0, 0], weight[:, :, 0, 2], weight[:, :, 2, 0], weight[:, :, 2, 2]], -1)
    out = taps.flatten(1) @ weight.flatten(1).t()  # (N, Cout)
    return out + (corners.flatten(1) / (h * w)) @ w_corner.flatten(1).t() + bias  # w_corner (Cout, Cin, 4)


def _corners(gx: torch.Tensor) -> torch.Tensor:
    """``gx[..., (H-1, 0), (W-1, 0)]`` (N, C, 2, 2): the corner each of the four corner taps misses."""
    rows = torch.cat([gx[:, :, -1:], gx[:, :, :1]], 2)  # (N, C, 2, W) last, first row
    return torch.cat([rows[..., -1:], rows[..., :1]], 3)  # (N, C, 2, 2)


def _descriptors(
    x_h: torch.Tensor,
    x_w: torch.Tensor,
    corners: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w3: torch.Tensor,
    b3: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Everything EMA needs that is no larger than (BG, Cg, H+W): the directional gates ``a``, the collapsed 3x3
    taps ``w9``, the GroupNorm branch's channel weights ``q = s2 * gamma`` and the per-group constant.

    Shapes: x_h (N, Cg, H), x_w (N, Cg, W), corners (N, Cg, 2, 2) -> a (N, Cg, H+W), w9 (9, Cg), q (N, Cg),
    const (N, 1, 1, 1).
    """
    n, cg = x_h.shape[:2]
    pooled = torch.cat([x_h, x_w], 2)  # (N, Cg, H+W)
    # conv1x1 then sigmoid gates. (torch 2.14 inductor mis-differentiates baddbmm with an expanded batch1 w.r.t.
    # batch2 on CPU, so this is matmul + bias.)
    a = (torch.matmul(w1.view(cg, cg), pooled) + b1.view(1, cg, 1)).sigmoid()  # (N, Cg, H+W)
    s1 = beta.softmax(0)  # (Cg,) softmax of the spatial mean of the GroupNorm output, identity (a)
    s2 = conv3x3_mean(x_h, x_w, corners, w3, b3).softmax(1)  # (N, Cg), identity (b)
    w9 = (s1[:, None, None, None] * w3).sum(0).permute(1, 2, 0).reshape(9, cg)  # (9, Cg) collapsed taps
    q = s2 * gamma  # (N, Cg)
    const = ((s2 * beta).sum(1) + (s1 * b3).sum()).view(n, 1, 1, 1)  # (N, 1, 1, 1)
    return a, w9, q, const


_TAPS = tuple((i - 1, j - 1) for i in range(3) for j in range(3))  # (row, column) offset of kernel tap 3 * i + j


def shift_sum(u: torch.Tensor) -> torch.Tensor:
    """``out[n, 0, h, w] = sum_k u[n, k, h + di_k, w + dj_k]`` (zero outside): the tap sum of a 3x3 convolution
    whose per-tap channel contractions ``u`` (N, 9, H, W) are already taken. Functional (pad + slices), for export."""
    up = F.pad(u, (1, 1, 1, 1))  # (N, 9, H+2, W+2)
    ends = (slice(0, -2), slice(1, -1), slice(2, None))
    out = up[:, 4:5, 1:-1, 1:-1]  # (N, 1, H, W) centre tap
    for k, (di, dj) in enumerate(_TAPS):
        if k != 4:
            out = out + up[:, k : k + 1, ends[di + 1], ends[dj + 1]]
    return out


def _taps_view(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, K, 3, 3, H, W) strided view of a zero-padded (N, K, 9 or 1, H+2, W+2) tensor ``p``: window (i, j) of
    plane ``3 * i + j`` (or of the single plane). One view instead of nine slices."""
    n, k, planes = p.shape[:3]
    sn, sk, sp, sh, sw = p.stride()
    tap = sp if planes == 9 else 0
    return p.as_strided((n, k, 3, 3, h, w), (sn, sk, 3 * tap + sh, tap + sw, sh, sw), p.storage_offset())


def _shift_sum_(u: torch.Tensor) -> torch.Tensor:
    """Eager :func:`shift_sum` in two separable passes of in-place window adds (no padded copy): the three kernel rows
    are summed for all three kernel columns at once, then the three columns. Six kernels instead of nine; ``add_`` on
    window views (an indexed ``+=`` would also copy each window back onto itself)."""
    r = u[:, 3:6].clone()  # (N, 3, H, W) middle kernel row (di = 0), one plane per kernel column
    r[:, :, 1:].add_(u[:, 0:3, :-1])  # top kernel row (di = -1) reads the input row above
    r[:, :, :-1].add_(u[:, 6:9, 1:])  # bottom kernel row (di = +1) reads the row below
    out = r[:, 1:2].clone()  # (N, 1, H, W) middle kernel column (dj = 0)
    out[..., 1:].add_(r[:, 0:1, :, :-1])  # left column (dj = -1) reads the input column to the left
    out[..., :-1].add_(r[:, 2:3, :, 1:])  # right column (dj = +1)
    return out


def _shift_sum_backward(g: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`shift_sum` w.r.t. ``u``: tap (i, j) receives the output gradient shifted back, i.e. window
    (2 - i, 2 - j) of the padded gradient (N, 9, H, W)."""
    n, _, h, w = g.shape
    gp = F.pad(g, (1, 1, 1, 1)).unsqueeze(2)  # (N, 1, 1, H+2, W+2)
    return _taps_view(gp, h, w).flip(2, 3).reshape(n, 9, h, w)


def _centred_gate(
    gx: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eager, no autograd: ``y - mu`` (a new tensor), mu and 1/sqrt(var + eps) per channel of ``y = gx * a_h * a_w``.

    Shapes: gx (N, Cg, H, W), a_h (N, Cg, H, 1), a_w (N, Cg, 1, W) -> (N, Cg, H, W), (N, Cg), (N, Cg).
    """
    y = gx * a_w  # (N, Cg, H, W)
    y.mul_(a_h)
    mu = y.mean((2, 3))  # (N, Cg)
    y.sub_(mu[..., None, None])
    sq = torch.linalg.vector_norm(y, dim=(2, 3))  # (N, Cg)
    rstd = (sq * sq / (y.shape[2] * y.shape[3]) + eps).rsqrt()  # (N, Cg)
    return y, mu, rstd


def _split_gates(a: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, Cg, H+W) gates -> a_h (N, Cg, H, 1), a_w (N, Cg, 1, W)."""
    a_h, a_w = torch.split(a, [h, w], dim=2)
    return a_h.unsqueeze(3), a_w.unsqueeze(2)


def _attention_eager(gx: torch.Tensor, params: tuple[torch.Tensor, ...], eps: float):
    """Eager, no autograd: the (N, 1, H, W) attention map and what backward reuses."""
    n, cg, h, w = gx.shape
    x_h, x_w, corners = gx.mean(3), gx.mean(2), _corners(gx)  # (N, Cg, H), (N, Cg, W), (N, Cg, 2, 2)
    a, w9, q, const = _descriptors(x_h, x_w, corners, *params)
    a_h, a_w = _split_gates(a, h, w)
    u = torch.bmm(w9.expand(n, 9, cg), gx.reshape(n, cg, h * w)).view(n, 9, h, w)  # (N, 9, H, W) per-tap sums
    yc, _, rstd = _centred_gate(gx, a_h, a_w, eps)  # (N, Cg, H, W)
    att = _shift_sum_(u).view(n, 1, h * w)  # (N, 1, HW) = s1 . conv3x3(gx)
    del u
    att.baddbmm_((q * rstd).unsqueeze(1), yc.view(n, cg, h * w))  # += s2 . GroupNorm(y) - const
    att = att.view(n, 1, h, w).add_(const).sigmoid_()  # (N, 1, H, W)
    return att, yc, rstd, (x_h, x_w, corners, a, w9, q, const)


@functools.lru_cache(maxsize=64)
def _tap_constants(h: int, w: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape-only constants of :func:`_tap_means` (no parameter enters them, so caching them is always valid):
    flat indices of the corners (H-1, W-1), (H-1, 0), (0, W-1), (0, 0), and the (9 features, 9 taps) matrix that turns
    [total mean, last row, first row, last column, first column, four corners] into each tap's window mean."""
    t = [[0.0] * 9 for _ in range(9)]  # t[feature][tap], tap = 3 * i + j
    for i in range(3):
        for j in range(3):
            k = 3 * i + j
            t[0][k] = 1.0  # total mean
            t[1][k] = -1.0 / h if i == 0 else 0.0  # tap row 0 misses the last input row
            t[2][k] = -1.0 / h if i == 2 else 0.0  # tap row 2 misses the first input row
            t[3][k] = -1.0 / w if j == 0 else 0.0  # tap column 0 misses the last input column
            t[4][k] = -1.0 / w if j == 2 else 0.0  # tap column 2 misses the first input column
    for f, k in zip(range(5, 9), (0, 2, 6, 8)):  # corner missed twice, added back once
        t[f][k] = 1.0 / (h * w)
    idx = torch.tensor([h * w - 1, (h - 1) * w, w - 1, 0], device=device)
    return idx, torch.tensor(t, dtype=dtype, device=device)


def _tap_means(gx: torch.Tensor, x_h: torch.Tensor, x_w: torch.Tensor) -> torch.Tensor:
    """(N, Cin*9) mean of the zero-padded input window that each 3x3 tap sees, identity (b), in few kernels (eager);
    ``tap_means @ conv3x3.weight.view(Cout, Cin*9).t() + bias`` is :func:`conv3x3_mean`."""
    n, c, h, w = gx.shape
    idx, t = _tap_constants(h, w, gx.dtype, gx.device)
    corners = gx.reshape(n, c, h * w).index_select(2, idx)  # (N, Cin, 4) x[-1,-1], x[-1,0], x[0,-1], x[0,0]
    f = torch.cat([x_h.mean(-1, keepdim=True), x_h[..., -1:], x_h[..., :1], x_w[..., -1:], x_w[..., :1], corners], 2)
    return torch.matmul(f, t).view(n, c * 9)  # (N, Cin, 9 features) @ (9, 9 taps)


def _attention_fast(gx: torch.Tensor, params: tuple[torch.Tensor, ...], eps: float) -> torch.Tensor:
    """Eager, no autograd, fewest kernels: the (N, 1, H, W) attention map. The parameter-only algebra (s1, the
    collapsed taps, s1 . b3) is recomputed on every call: a handful of tiny kernels, never stale."""
    w1, b1, w3, b3, gamma, beta = params
    n, cg, h, w = gx.shape
    w3f = w3.reshape(cg, cg * 9)  # (Cout, Cin*9)
    x_h, x_w = gx.mean(3), gx.mean(2)  # (N, Cg, H), (N, Cg, W)
    a = torch.matmul(w1.reshape(cg, cg), torch.cat([x_h, x_w], 2))  # (N, Cg, H+W) conv1x1
    a_h, a_w = _split_gates(a.add_(b1.view(1, cg, 1)).sigmoid_(), h, w)
    s2 = torch.addmm(b3, _tap_means(gx, x_h, x_w), w3f.t()).softmax(1)  # (N, Cg), identity (b)
    s1 = beta.softmax(0)  # (Cg,) identity (a)
    w9 = torch.mv(w3f.t(), s1).view(cg, 9).t()  # (9, Cg) collapsed taps sum_c s1_c W_c
    u = torch.matmul(w9, gx.reshape(n, cg, h * w)).view(n, 9, h, w)  # (N, 9, H, W) per-tap channel sums
    yc, _, rstd = _centred_gate(gx, a_h, a_w, eps)  # (N, Cg, H, W)
    att = _shift_sum_(u).view(n, 1, h * w)  # (N, 1, HW) = s1 . conv3x3(gx)
    del u
    att.baddbmm_((s2 * gamma).mul_(rstd).unsqueeze(1), yc.view(n, cg, h * w))  # += s2 . GroupNorm(y) - const
    const = torch.addmv(torch.dot(s1, b3), s2, beta)  # (N,) s2 . beta + s1 . b3
    return att.view(n, 1, h, w).add_(const.view(n, 1, 1, 1)).sigmoid_()  # (N, 1, H, W)


SERIAL_NUMEL = 1 << 17  # eager inference on fewer input elements runs on one intra-op thread (CPU)


@functools.cache
def _openmp() -> bool:
    """True when ATen's intra-op pool is OpenMP, where the thread count can change between calls at no cost."""
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


class _EMAFunction(torch.autograd.Function):
    """Eager training: forward saves only the input and the parameters; backward recomputes the full-size
    intermediates, differentiates them by hand (GroupNorm, collapsed 3x3, gating) and lets autograd handle the
    small per-channel graph of :func:`_descriptors`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, groups: int, eps: float, *params: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gx = x.reshape(b * groups, c // groups, h, w).contiguous()  # (BG, Cg, H, W)
        att = _attention_fast(gx, params, eps)
        ctx.save_for_backward(x, *params)
        ctx.groups, ctx.eps = groups, eps
        return (gx * att).view(b, c, h, w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, *params = ctx.saved_tensors
        b, c, h, w = x.shape
        n, cg, hw = b * ctx.groups, c // ctx.groups, h * w
        gx = x.reshape(n, cg, h, w).contiguous()  # (BG, Cg, H, W)
        gout = grad.reshape(n, cg, h, w).contiguous()  # (BG, Cg, H, W)
        att, yc, rstd, (x_h, x_w, corners, _, _, _, _) = _attention_eager(gx, params, ctx.eps)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in (x_h, x_w, corners, *params)]
            a, w9, q, const = _descriptors(*leaves)
        a_h, a_w = _split_gates(a.detach(), h, w)  # (BG, Cg, H, 1), (BG, Cg, 1, W)
        k = q.detach() * rstd  # (BG, Cg)

        # out = gx * att
        tmp = gout * gx  # (BG, Cg, H, W)
        dlogit = tmp.sum(1, keepdim=True).mul_(att * (1 - att))  # (BG, 1, H, W) through the sigmoid
        dgx = gout * att  # (BG, Cg, H, W)
        dconst = dlogit.sum((2, 3), keepdim=True)  # (BG, 1, 1, 1)
        # collapsed 3x3: logit += shift_sum(w9 @ gx)
        du = _shift_sum_backward(dlogit).reshape(n, 9, hw)  # (BG, 9, HW)
        dw9 = torch.bmm(du, gx.reshape(n, cg, hw).transpose(1, 2)).sum(0)  # (9, Cg)
        dgx.view(n, cg, hw).baddbmm_(w9.detach().t().expand(n, cg, 9), du)
        del du
        # GroupNorm branch: logit += sum_c k_c (y_c - mu_c), y = gx * a_h * a_w
        gz = dlogit.view(n, 1, hw)  # (BG, 1, HW)
        gyc = torch.bmm(yc.view(n, cg, hw), gz.transpose(1, 2)).squeeze(-1)  # (BG, Cg) sum_p gz (y - mu)
        dq = rstd * gyc
        coef = -k * rstd * rstd * gyc / hw  # (BG, Cg)
        dy = yc.mul_(coef[..., None, None])  # (BG, Cg, H, W), reuses yc
        dy.view(n, cg, hw).baddbmm_(k.unsqueeze(-1), gz - gz.mean(-1, keepdim=True))  # GroupNorm backward
        torch.mul(dy, gx, out=tmp)
        da_h = torch.matmul(tmp, a_w.transpose(2, 3))  # (BG, Cg, H, 1)
        da_w = torch.matmul(a_h.transpose(2, 3), tmp)  # (BG, Cg, 1, W)
        del tmp
        dgx.addcmul_(dy.mul_(a_w), a_h)
        del dy
        da = torch.cat([da_h.squeeze(3), da_w.squeeze(2)], 2)  # (BG, Cg, H+W)
        grads = torch.autograd.grad([a, w9, q, const], leaves, [da, dw9, dq, dconst], allow_unused=True)
        dx_h, dx_w, dcorners = grads[:3]
        if dx_h is not None:
            dgx.add_((dx_h / w).unsqueeze(3))
        if dx_w is not None:
            dgx.add_((dx_w / h).unsqueeze(2))
        if dcorners is not None:
            dgx[:, :, -1, -1] += dcorners[..., 0, 0]
            dgx[:, :, -1, 0] += dcorners[..., 0, 1]
            dgx[:, :, 0, -1] += dcorners[..., 1, 0]
            dgx[:, :, 0, 0] += dcorners[..., 1, 1]
        pgrads = [None if g is None else g.to(p.dtype) for g, p in zip(grads[3:], params)]
        return (dgx.view(b, c, h, w), None, None, *pgrads)


class EMAParameters(nn.Module):
    """The parameters of EMA as in the authors' code (``conv1x1``, ``conv3x3``, ``gn`` of one group's Cg channels),
    shared by :class:`EMA` and :class:`yolo_ema.nn.ema_paper.PaperEMA`; subclasses give the forward."""

    def __init__(self, channels: int, factor: int = 32) -> None:
        super().__init__()
        check_factor(channels, factor)
        self.channels = channels
        self.groups = factor
        cg = channels // factor
        self.gn = nn.GroupNorm(cg, cg)
        self.conv1x1 = nn.Conv2d(cg, cg, kernel_size=1, stride=1, padding=0)
        self.conv3x3 = nn.Conv2d(cg, cg, kernel_size=3, stride=1, padding=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.groups}"


class EMA(EMAParameters):
    """Efficient Multi-Scale Attention (EMA), computed with the exact reductions described in the module docstring.

    Channels are split into ``factor`` groups. Per group, a 1x1 branch gates the input with directional (H and W)
    pooled sigmoid attention followed by GroupNorm, a 3x3 branch models local context, and cross-spatial learning
    combines each branch's softmax-pooled channel descriptor with the other branch's map into one spatial attention
    map that re-weights the group's input.

    Args:
        channels (int): Input (and output) channels C.
        factor (int): Number of groups G; C must be divisible by G. Default 32 as in the official code.

    Examples:
        >>> m = EMA(64, factor=8)
        >>> m(torch.randn(2, 64, 20, 20)).shape
        torch.Size([2, 64, 20, 20])
    """

    def _params(self) -> tuple[torch.Tensor, ...]:
        return (
            self.conv1x1.weight,
            self.conv1x1.bias,
            self.conv3x3.weight,
            self.conv3x3.bias,
            self.gn.weight,
            self.gn.bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, cg = b * self.groups, c // self.groups
        params, eps = self._params(), self.gn.eps
        if _autocast_enabled(x.device.type):
            # the reductions and GroupNorm statistics stay in fp32 (as autocast does for group_norm); cast back at the end
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float()).to(x.dtype)
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            return self._forward_functional(x)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _EMAFunction.apply(x, self.groups, eps, *params)
        gx = x.reshape(n, cg, h, w).contiguous()  # (BG, Cg, H, W)
        threads = torch.get_num_threads()
        if threads == 1 or x.numel() >= SERIAL_NUMEL or x.device.type != "cpu" or not _openmp():
            att = _attention_fast(gx, params, eps)  # (BG, 1, H, W), nothing derived from the parameters is kept
            return (gx * att).view(b, c, h, w)
        torch.set_num_threads(1)  # small input: ~40 tiny kernels, each thread hand-off costs more than it saves
        try:
            return (gx * _attention_fast(gx, params, eps)).view(b, c, h, w)
        finally:
            torch.set_num_threads(threads)

    def _forward_functional(self, x: torch.Tensor) -> torch.Tensor:
        """Same algebra as the eager paths, out of place and without custom autograd: for tracing, ONNX export and
        torch.compile (and a reference for the hand-written backward)."""
        b, c, h, w = x.shape
        n, cg = b * self.groups, c // self.groups
        gx = x.reshape(n, cg, h, w)  # (BG, Cg, H, W)
        a, w9, q, const = _descriptors(gx.mean(3), gx.mean(2), _corners(gx), *self._params())
        a_h, a_w = _split_gates(a, h, w)  # (BG, Cg, H, 1), (BG, Cg, 1, W)
        u = torch.matmul(w9, gx.reshape(n, cg, h * w)).view(n, 9, h, w)  # (BG, 9, H, W) per-tap channel sums
        y = gx * a_w * a_h  # (BG, Cg, H, W)
        yc = y - y.mean((2, 3), keepdim=True)  # (BG, Cg, H, W)
        k = q * ((yc * yc).mean((2, 3)) + self.gn.eps).rsqrt()  # (BG, Cg)
        z1 = torch.matmul(k.unsqueeze(1), yc.reshape(n, cg, h * w)).view(n, 1, h, w)  # s2 . GroupNorm(y) - const
        att = (shift_sum(u) + z1 + const).sigmoid()  # (BG, 1, H, W)
        return (gx * att).view(b, c, h, w)
