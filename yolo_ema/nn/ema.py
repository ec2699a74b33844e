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
    gated input ``y = gx * sigmoid(a_h) * sigmoid(a_w)``; the eager path never builds the normalized tensor (the
    export graph uses one InstanceNormalization instead, a single kernel in the runtimes).

Parameters and state_dict keys follow the authors' implementation (``conv1x1.*``, ``conv3x3.*``, ``gn.*``) so their
checkpoints load with ``strict=True``. Pooling is written as ``mean`` over an axis, which exports to ONNX with dynamic
spatial sizes (adaptive pooling does not).

Two implementations of the same algebra: the eager one (:func:`_attention`, in-place temporaries), used for inference
and by training's custom autograd function (which saves only the input and the parameters, recomputes the full-size
intermediates in backward and back-propagates the small per-channel graph with autograd); and one graph of standard
operators (:meth:`EMA._forward_graph`) used while tracing, exporting (ONNX, OpenVINO, TorchScript, NCNN, CoreML, ...)
or compiling.
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


def tap_features(x_h: torch.Tensor, x_w: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """The nine per-channel numbers identity (b) needs: [total mean, last and first row sum, last and first column
    sum, the corners (H-1, W-1), (H-1, 0), (0, W-1), (0, 0)], each divided by H*W.

    Every tensor stays 4-D, so the same function serves the eager path and the export graph (onnx2tf, behind
    TensorFlow and LiteRT, moves channels last and concatenates 3-D tensors along the wrong axis).

    Shapes: x_h ``x.mean(3, keepdim=True)`` (N, C, H, 1), x_w ``x.mean(2, keepdim=True)`` (N, C, 1, W), corners
    :func:`corners` (N, C, 2, 2) -> (N, C, 1, 9).
    """
    h, w = x_h.shape[2], x_w.shape[3]
    rows = torch.cat([x_h[:, :, -1:], x_h[:, :, :1]], 3) / h  # (N, C, 1, 2) last, first row
    cols = torch.cat([x_w[..., -1:], x_w[..., :1]], 3) / w  # (N, C, 1, 2) last, first column
    corner = torch.cat([corners[:, :, :1], corners[:, :, 1:]], 3) / (h * w)  # (N, C, 1, 4)
    return torch.cat([x_h.mean(2, keepdim=True), rows, cols, corner], 3)


def tap_weight(w3: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, 9) weights that turn :func:`tap_features` into the spatial mean of a zero-padded 3x3 convolution,
    identity (b): ``mean(conv2d(x, w3, b3, padding=1)) = tap_features . tap_weight(w3) + b3``.

    Kernel row 0 (offset -1) never sees the last input row, row 2 the first; column 0 the last column, column 2 the
    first; a corner tap misses one row and one column, so their shared corner, subtracted twice, comes back once.
    """
    return torch.stack(
        [
            w3.sum((2, 3)),  # every tap sees the whole input ...
            -w3[:, :, 0].sum(-1),  # ... minus the last row (kernel row 0)
            -w3[:, :, 2].sum(-1),  # ... minus the first row (kernel row 2)
            -w3[..., 0].sum(-1),  # ... minus the last column (kernel column 0)
            -w3[..., 2].sum(-1),  # ... minus the first column (kernel column 2)
            w3[:, :, 0, 0],  # corner (H-1, W-1)
            w3[:, :, 0, 2],  # corner (H-1, 0)
            w3[:, :, 2, 0],  # corner (0, W-1)
            w3[:, :, 2, 2],  # corner (0, 0)
        ],
        -1,
    )


def corners(x: torch.Tensor) -> torch.Tensor:
    """``x[..., (H-1, 0), (W-1, 0)]`` (N, C, 2, 2): the corner each of the four corner taps misses."""
    rows = torch.cat([x[:, :, -1:], x[:, :, :1]], 2)  # (N, C, 2, W) last, first row
    return torch.cat([rows[..., -1:], rows[..., :1]], 3)  # (N, C, 2, 2)


def collapsed_taps(w3: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Identity (a): ``s1 . conv3x3(gx)`` is one convolution with a single output channel; its (Cin, 3, 3) weight
    ``sum_c softmax(beta)_c W_c``."""
    return (beta.softmax(0).view(-1, 1, 1, 1) * w3).sum(0)  # (Cin, 3, 3)


def _descriptors(
    x_h: torch.Tensor,
    x_w: torch.Tensor,
    corner: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w3: torch.Tensor,
    b3: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Everything EMA needs that is no larger than (BG, Cg, H+W), differentiable (the hand-written backward runs
    autograd through it): the directional gates ``a``, the collapsed 3x3 taps ``w9``, the GroupNorm branch's channel
    weights ``q = s2 * gamma`` and the per-group constant ``s2 . beta + s1 . b3``.

    Shapes: x_h (N, Cg, H), x_w (N, Cg, W), corner (N, Cg, 2, 2) -> a (N, Cg, H+W), w9 (9, Cg), q (N, Cg),
    const (N, 1, 1, 1).
    """
    n, cg = x_h.shape[:2]
    pooled = torch.cat([x_h, x_w], 2)  # (N, Cg, H+W)
    # conv1x1 then sigmoid gates. (torch 2.14 inductor mis-differentiates baddbmm with an expanded batch1 w.r.t.
    # batch2 on CPU, so this is matmul + bias.)
    a = (torch.matmul(w1.view(cg, cg), pooled) + b1.view(1, cg, 1)).sigmoid()  # (N, Cg, H+W)
    s1 = beta.softmax(0)  # (Cg,) softmax of the spatial mean of the GroupNorm output, identity (a)
    feats = tap_features(x_h.unsqueeze(3), x_w.unsqueeze(2), corner).flatten(1)  # (N, Cg*9)
    s2 = (feats @ tap_weight(w3).flatten(1).t() + b3).softmax(1)  # (N, Cg), identity (b)
    w9 = collapsed_taps(w3, beta).reshape(cg, 9).t()  # (9, Cg)
    q = s2 * gamma  # (N, Cg)
    const = ((s2 * beta).sum(1) + (s1 * b3).sum()).view(n, 1, 1, 1)  # (N, 1, 1, 1)
    return a, w9, q, const


def _taps_view(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, K, 3, 3, H, W) strided view of a zero-padded (N, K, 1, H+2, W+2) tensor ``p``: window (i, j) of the
    single plane. One view instead of nine slices."""
    n, k = p.shape[:2]
    sn, sk, _, sh, sw = p.stride()
    return p.as_strided((n, k, 3, 3, h, w), (sn, sk, sh, sw, sh, sw), p.storage_offset())


def _shift_sum_(u: torch.Tensor) -> torch.Tensor:
    """``out[n, 0, h, w] = sum_k u[n, k, h + di_k, w + dj_k]`` (zero outside, tap k = 3 * (di + 1) + dj + 1): the tap
    sum of a 3x3 convolution whose per-tap channel contractions ``u`` (N, 9, H, W) are already taken. Two separable
    passes of in-place window adds (no padded copy): the three kernel rows are summed for all three kernel columns at
    once, then the three columns; ``add_`` on window views (an indexed ``+=`` would also copy each window back)."""
    r = u[:, 3:6].clone()  # (N, 3, H, W) middle kernel row (di = 0), one plane per kernel column
    r[:, :, 1:].add_(u[:, 0:3, :-1])  # top kernel row (di = -1) reads the input row above
    r[:, :, :-1].add_(u[:, 6:9, 1:])  # bottom kernel row (di = +1) reads the row below
    out = r[:, 1:2].clone()  # (N, 1, H, W) middle kernel column (dj = 0)
    out[..., 1:].add_(r[:, 0:1, :, :-1])  # left column (dj = -1) reads the input column to the left
    out[..., :-1].add_(r[:, 2:3, :, 1:])  # right column (dj = +1)
    return out


def _shift_sum_backward(g: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`_shift_sum_` w.r.t. ``u``: tap (i, j) receives the output gradient shifted back, i.e. window
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


def _attention(gx: torch.Tensor, params: tuple[torch.Tensor, ...], eps: float):
    """Eager, no autograd, few kernels, in place where possible: the (N, 1, H, W) attention map, and what the
    hand-written backward reuses (the centred gated input, its 1/std, the pooled inputs). The parameter-only algebra
    (s1, the collapsed taps, s1 . b3) is recomputed on every call: a handful of tiny kernels, never stale."""
    w1, b1, w3, b3, gamma, beta = params
    n, cg, h, w = gx.shape
    x_h, x_w, corner = gx.mean(3), gx.mean(2), corners(gx)  # (N, Cg, H), (N, Cg, W), (N, Cg, 2, 2)
    a = torch.matmul(w1.reshape(cg, cg), torch.cat([x_h, x_w], 2))  # (N, Cg, H+W) conv1x1
    a_h, a_w = _split_gates(a.add_(b1.view(1, cg, 1)).sigmoid_(), h, w)
    feats = tap_features(x_h.unsqueeze(3), x_w.unsqueeze(2), corner).flatten(1)  # (N, Cg*9)
    s2 = torch.addmm(b3, feats, tap_weight(w3).flatten(1).t()).softmax(1)  # (N, Cg), identity (b)
    s1 = beta.softmax(0)  # (Cg,) identity (a)
    w9 = collapsed_taps(w3, beta).reshape(cg, 9).t()  # (9, Cg)
    u = torch.matmul(w9, gx.reshape(n, cg, h * w)).view(n, 9, h, w)  # (N, 9, H, W) per-tap channel sums
    yc, _, rstd = _centred_gate(gx, a_h, a_w, eps)  # (N, Cg, H, W)
    att = _shift_sum_(u).view(n, 1, h * w)  # (N, 1, HW) = s1 . conv3x3(gx) - s1 . b3
    del u
    att.baddbmm_((s2 * gamma).mul_(rstd).unsqueeze(1), yc.view(n, cg, h * w))  # += s2 . GroupNorm(y) - s2 . beta
    const = torch.addmv(torch.dot(s1, b3), s2, beta)  # (N,) s2 . beta + s1 . b3
    att = att.view(n, 1, h, w).add_(const.view(n, 1, 1, 1)).sigmoid_()  # (N, 1, H, W)
    return att, yc, rstd, (x_h, x_w, corner)


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
        att = _attention(gx, params, eps)[0]
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
        att, yc, rstd, pooled = _attention(gx, params, ctx.eps)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in (*pooled, *params)]
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
        """Eager inference runs :func:`_attention` on the caller's threads (no thread-count switch, so concurrent
        callers never see each other's setting); training runs the custom autograd function; tracing, export and
        torch.compile run :meth:`_forward_graph`. An empty batch gives an empty output of the input's shape."""
        b, c, h, w = x.shape
        params, eps = self._params(), self.gn.eps
        if _autocast_enabled(x.device.type):
            # the reductions and GroupNorm statistics stay in fp32 (as autocast does for group_norm); cast back at the end
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float()).to(x.dtype)
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            return self._forward_graph(x)
        if x.numel() == 0:
            return x * 0  # (B, C, H, W) with B, H or W zero; keeps the autograd link
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _EMAFunction.apply(x, self.groups, eps, *params)
        gx = x.reshape(b * self.groups, c // self.groups, h, w).contiguous()  # (BG, Cg, H, W)
        return (gx * _attention(gx, params, eps)[0]).view(b, c, h, w)

    def _forward_graph(self, x: torch.Tensor) -> torch.Tensor:
        """The same algebra as one graph of standard operators, for tracing, every export format and torch.compile
        (plain autograd; also the reference of the hand-written backward).

        Written for what runtimes and converters handle well: grouped convolutions with weights that depend on the
        parameters only (constant-folded at export: the block-diagonal 1x1 gate, the collapsed 3x3 taps of identity
        (a) as a one-output-channel-per-group convolution, identity (b) as a 1x9 convolution of nine pooled numbers),
        one InstanceNormalization for the GroupNorm statistics, no matrix product with constant weights (converters
        turn those into ``linear``, which NCNN lacks) and no traced size cast to an integer (coremltools fails on
        those): sizes only divide the pooled numbers, reshapes use the module's own channel numbers and -1, so batch,
        height and width stay dynamic; the pooled numbers stay 4-D (onnx2tf mislays 3-D tensors).
        """
        g, c = self.groups, self.channels
        cg = c // g
        w1, b1, w3, b3, gamma, beta = self._params()
        x_h = x.mean(3, keepdim=True)  # (B, C, H, 1)
        x_w = x.mean(2, keepdim=True)  # (B, C, 1, W)
        w1g, b1g = w1.repeat(g, 1, 1, 1), b1.repeat(g)  # (C, Cg, 1, 1), (C,): conv1x1 of every group
        y = x * F.conv2d(x_h, w1g, b1g, groups=g).sigmoid() * F.conv2d(x_w, w1g, b1g, groups=g).sigmoid()
        yn = torch.instance_norm(y, None, None, None, None, True, 0.0, self.gn.eps, False)  # (B, C, H, W)
        feats = tap_features(x_h, x_w, corners(x))  # (B, C, 1, 9)
        w_tap = tap_weight(w3).unsqueeze(2).repeat(g, 1, 1, 1)  # (C, Cg, 1, 9)
        s2 = F.conv2d(feats, w_tap, b3.repeat(g), groups=g)  # (B, C, 1, 1) spatial mean of conv3x3, identity (b)
        s2 = s2.reshape(-1, g, cg).softmax(2).reshape(-1, c, 1, 1)  # (B, C, 1, 1) softmax within each group
        w9 = collapsed_taps(w3, beta).unsqueeze(0).repeat(g, 1, 1, 1)  # (G, Cg, 3, 3) identity (a)
        b9 = (beta.softmax(0) * b3).sum().reshape(1).repeat(g)  # (G,) s1 . b3
        gn_w = gamma.view(1, cg, 1, 1).repeat(g, 1, 1, 1)  # (G, Cg, 1, 1)
        gn_b = beta.view(1, cg, 1, 1).repeat(g, 1, 1, 1)  # (G, Cg, 1, 1)
        logit = (
            F.conv2d(x, w9, b9, padding=1, groups=g)  # s1 . conv3x3(x)
            + F.conv2d(yn * s2, gn_w, groups=g)  # s2 . (gamma * normalized y) ...
            + F.conv2d(s2, gn_b, groups=g)  # ... + s2 . beta
        )  # (B, G, H, W)
        return (x.unflatten(1, (g, cg)) * logit.sigmoid().unsqueeze(2)).flatten(1, 2)  # (B, C, H, W)
