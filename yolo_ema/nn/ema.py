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
spatial sizes (adaptive pooling does not). In eager training the gated branch runs as a custom autograd function that
recomputes ``y`` in backward instead of keeping it, so forward+backward holds a few copies of the input, not nine.
"""

from __future__ import annotations

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
    gx: torch.Tensor, x_h: torch.Tensor, x_w: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Spatial mean of ``conv2d(gx, weight, bias, padding=1)`` without computing the convolution.

    Tap (i, j) of a zero-padded 3x3 kernel misses the last input row (i=0) or the first (i=2), and likewise a column
    (j=0: last, j=2: first); where it misses both, the shared corner was subtracted twice and is added back.

    Args:
        gx: input (N, Cin, H, W).
        x_h: ``gx.mean(3)`` (N, Cin, H).
        x_w: ``gx.mean(2)`` (N, Cin, W).
        weight: (Cout, Cin, 3, 3). bias: (Cout,).

    Returns:
        (N, Cout) spatial mean of the convolution output.
    """
    h, w = gx.shape[-2:]
    m = x_h.mean(-1)  # (N, Cin) total mean
    zero = torch.zeros_like(m)
    miss_r = torch.stack([x_h[..., -1], zero, x_h[..., 0]], -1) / h  # (N, Cin, 3) share of the row tap i misses
    miss_c = torch.stack([x_w[..., -1], zero, x_w[..., 0]], -1) / w  # (N, Cin, 3) share of the column tap j misses
    taps = m[..., None, None] - miss_r.unsqueeze(-1) - miss_c.unsqueeze(-2)  # (N, Cin, 3, 3)
    rows = torch.cat([gx[:, :, -1:], gx[:, :, :1]], 2)  # (N, Cin, 2, W) last, first row
    corners = torch.cat([rows[..., -1:], rows[..., :1]], 3) / (h * w)  # (N, Cin, 2, 2) for taps (0|2, 0|2)
    out = taps.flatten(1) @ weight.flatten(1).t()  # (N, Cout)
    return out + corners.flatten(1) @ weight[:, :, ::2, ::2].flatten(1).t() + bias


_TAPS = tuple((i - 1, j - 1) for i in range(3) for j in range(3))  # (row, column) offset of kernel tap 3 * i + j


def _rows_cols(d: int, src: bool) -> slice:
    """Slice of the source (``src``) or destination index range for offset ``d`` under zero padding."""
    if d == 0:
        return slice(None)
    return slice(1, None) if (d > 0) == src else slice(None, -1)


def shift_sum(u: torch.Tensor) -> torch.Tensor:
    """``out[n, 0, h, w] = sum_k u[n, k, h + di_k, w + dj_k]`` (zero outside), the tap sum of a 3x3 convolution whose
    per-tap channel contractions ``u`` (N, 9, H, W) were already taken. Functional (pad + slices) for export."""
    up = F.pad(u, (1, 1, 1, 1))  # (N, 9, H+2, W+2)
    ends = (slice(0, -2), slice(1, -1), slice(2, None))
    out = up[:, 4:5, 1:-1, 1:-1]  # (N, 1, H, W) centre tap
    for k, (di, dj) in enumerate(_TAPS):
        if k != 4:
            out = out + up[:, k : k + 1, ends[di + 1], ends[dj + 1]]
    return out


def _shift_sum_(u: torch.Tensor) -> torch.Tensor:
    """Eager :func:`shift_sum` that adds each tap into its valid window of the output in place (no padded copy)."""
    out = u[:, 4:5].clone()  # (N, 1, H, W)
    for k, (di, dj) in enumerate(_TAPS):
        if k != 4:
            out[:, :, _rows_cols(di, False), _rows_cols(dj, False)] += u[
                :, k : k + 1, _rows_cols(di, True), _rows_cols(dj, True)
            ]
    return out


class _ShiftSum(torch.autograd.Function):
    """Autograd for :func:`_shift_sum_`; its backward is the opposite shift of the output gradient per tap."""

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        return _shift_sum_(u)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        n, _, h, w = g.shape
        du = g.new_zeros(n, 9, h, w)  # (N, 9, H, W)
        for k, (di, dj) in enumerate(_TAPS):
            du[:, k : k + 1, _rows_cols(di, True), _rows_cols(dj, True)] = g[
                :, :, _rows_cols(di, False), _rows_cols(dj, False)
            ]
        return du


class _GatedNormSum(torch.autograd.Function):
    """``z[n, p] = sum_c q[n, c] * rstd[n, c] * (y[n, c, p] - mu[n, c])`` with ``y = gx * a_h * a_w``, where mu and
    rstd are the per-channel spatial mean and 1/sqrt(var + eps) of y (GroupNorm with one channel per group).

    Shapes: gx (N, Cg, H, W), a_h (N, Cg, H, 1), a_w (N, Cg, 1, W), q (N, Cg) -> z (N, 1, H, W). Only the inputs
    and per-channel statistics are saved; y is recomputed in backward.
    """

    @staticmethod
    def forward(
        ctx, gx: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, q: torch.Tensor, eps: float
    ) -> torch.Tensor:
        n, cg, h, w = gx.shape
        yc, mu, rstd = _centred_gate(gx, a_h, a_w, eps)  # (N, Cg, H, W), (N, Cg), (N, Cg)
        z = torch.bmm((q * rstd).unsqueeze(1), yc.view(n, cg, h * w))  # (N, 1, HW)
        ctx.save_for_backward(gx, a_h, a_w, q, mu, rstd)
        return z.view(n, 1, h, w)

    @staticmethod
    def backward(ctx, gz: torch.Tensor):
        gx, a_h, a_w, q, mu, rstd = ctx.saved_tensors
        n, cg, h, w = gx.shape
        hw = h * w
        gz = gz.reshape(n, 1, hw)  # (N, 1, HW)
        gxa_w = gx * a_w  # (N, Cg, H, W)
        yc = gxa_w * a_h  # (N, Cg, H, W)
        yc.sub_(mu[..., None, None])
        # d z / d q_c = rstd_c * sum_p gz_p (y_c - mu_c)
        gyc = torch.bmm(yc.view(n, cg, hw), gz.transpose(1, 2)).squeeze(-1)  # (N, Cg)
        dq = rstd * gyc
        # GroupNorm backward: dy_c = k_c (gz - mean(gz)) - k_c rstd_c^2 (y_c - mu_c) mean(gz (y_c - mu_c)), k = q rstd
        k = q * rstd  # (N, Cg)
        coef = -k * rstd * rstd * gyc / hw  # (N, Cg)
        gzc = gz - gz.mean(-1, keepdim=True)  # (N, 1, HW)
        dy = yc.mul_(coef[..., None, None])  # (N, Cg, H, W), reuses yc
        dy.view(n, cg, hw).baddbmm_(k.unsqueeze(-1), gzc)  # += k_c * gzc
        # y = (gx * a_w) * a_h
        da_h = gxa_w.mul_(dy).sum(3, keepdim=True)  # (N, Cg, H, 1)
        dgxa_w = dy.mul_(a_h)  # (N, Cg, H, W)
        da_w = (dgxa_w * gx).sum(2, keepdim=True)  # (N, Cg, 1, W)
        dgx = dgxa_w.mul_(a_w)
        return dgx, da_h, da_w, dq, None


def _centred_gate(
    gx: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eager, no autograd: ``y - mu`` (a new tensor), mu and 1/sqrt(var + eps) of ``y = gx * a_h * a_w`` per channel."""
    y = gx * a_w  # (N, Cg, H, W)
    y.mul_(a_h)
    mu = y.mean((2, 3))  # (N, Cg)
    y.sub_(mu[..., None, None])
    sq = torch.linalg.vector_norm(y, dim=(2, 3))  # (N, Cg)
    rstd = (sq * sq / (y.shape[2] * y.shape[3]) + eps).rsqrt()  # (N, Cg)
    return y, mu, rstd


class EMA(nn.Module):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, cg = b * self.groups, c // self.groups
        gx = x.reshape(n, cg, h, w)  # (BG, Cg, H, W)
        x_h = gx.mean(3)  # (BG, Cg, H)
        x_w = gx.mean(2)  # (BG, Cg, W)
        a = self.conv1x1(torch.cat([x_h, x_w], 2).unsqueeze(-1)).sigmoid()  # (BG, Cg, H+W, 1)
        a_h, a_w = torch.split(a, [h, w], dim=2)  # (BG, Cg, H, 1), (BG, Cg, W, 1)
        a_w = a_w.transpose(2, 3)  # (BG, Cg, 1, W)

        w3, b3 = self.conv3x3.weight, self.conv3x3.bias
        s1 = self.gn.bias.softmax(0)  # (Cg,) = softmax of the spatial mean of the GroupNorm output, identity (a)
        s2 = conv3x3_mean(gx, x_h, x_w, w3, b3).softmax(1)  # (BG, Cg), identity (b)
        w9 = (s1[:, None, None, None] * w3).sum(0).permute(1, 2, 0).reshape(9, cg)  # (9, Cg) collapsed taps
        u = torch.matmul(w9, gx.reshape(n, cg, h * w)).view(n, 9, h, w)  # (BG, 9, H, W) per-tap channel sums
        q = s2 * self.gn.weight  # (BG, Cg)
        const = ((s2 * self.gn.bias).sum(1) + (s1 * b3).sum()).view(n, 1, 1, 1)  # (BG, 1, 1, 1)
        eps = self.gn.eps

        if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            # functional graph for tracing / export / compilers
            y = gx * a_w * a_h  # (BG, Cg, H, W)
            mu = y.mean((2, 3), keepdim=True)  # (BG, Cg, 1, 1)
            yc = y - mu  # (BG, Cg, H, W)
            var = (yc * yc).mean((2, 3))  # (BG, Cg)
            k = q * (var + eps).rsqrt()  # (BG, Cg)
            z1 = torch.bmm(k.unsqueeze(1), yc.reshape(n, cg, h * w)).view(n, 1, h, w)  # (BG, 1, H, W) = s2 . x1 - const
            att = (shift_sum(u) + z1 + const).sigmoid()  # (BG, 1, H, W)
        elif not torch.is_grad_enabled() or not (x.requires_grad or a.requires_grad or q.requires_grad):
            # eager inference: temporaries are private, update them in place
            yc, _, rstd = _centred_gate(gx, a_h, a_w, eps)  # (BG, Cg, H, W)
            att = _shift_sum_(u).view(n, 1, h * w)  # (BG, 1, HW) = s1 . conv3x3(gx)
            att.baddbmm_((q * rstd).unsqueeze(1), yc.view(n, cg, h * w))  # += s2 . x1 - const
            att = att.view(n, 1, h, w).add_(const).sigmoid_()  # (BG, 1, H, W)
        else:
            # eager training: custom backward recomputes y instead of keeping it
            att = (_ShiftSum.apply(u) + _GatedNormSum.apply(gx, a_h, a_w, q, eps) + const).sigmoid()  # (BG, 1, H, W)
        return (gx * att).view(b, c, h, w)
