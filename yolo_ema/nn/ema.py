"""EMA: Efficient Multi-Scale Attention Module with Cross-Spatial Learning.

Ouyang et al., ICASSP 2023, https://arxiv.org/abs/2305.13563

Parameters and state_dict keys follow the authors' implementation (``conv1x1.*``, ``conv3x3.*``, ``gn.*``) so their
checkpoints load with ``strict=True``. Pooling is written as ``mean`` over an axis, which exports to ONNX with dynamic
spatial sizes (adaptive pooling does not).
"""

from __future__ import annotations

import torch
from torch import nn


def check_factor(channels: int, factor: int) -> None:
    """Raise ValueError unless ``factor`` groups split ``channels`` evenly (the paper's G divides C)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"EMA channels must be a positive integer, got channels={channels!r}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"EMA factor must be a positive integer, got factor={factor!r} (channels={channels})")
    if channels < factor:
        raise ValueError(f"EMA factor={factor} exceeds channels={channels}: each of the {factor} groups needs a channel")
    if channels % factor:
        raise ValueError(f"EMA channels={channels} is not divisible by factor={factor} (channels % factor = {channels % factor})")


class EMA(nn.Module):
    """Efficient Multi-Scale Attention (EMA).

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
        g = self.groups
        gx = x.reshape(b * g, c // g, h, w)  # (BG, Cg, H, W)
        x_h = gx.mean(dim=3, keepdim=True)  # (BG, Cg, H, 1)
        x_w = gx.mean(dim=2, keepdim=True).transpose(2, 3)  # (BG, Cg, W, 1)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))  # (BG, Cg, H+W, 1)
        a_h, a_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(gx * a_h.sigmoid() * a_w.transpose(2, 3).sigmoid())  # (BG, Cg, H, W)
        x2 = self.conv3x3(gx)  # (BG, Cg, H, W)
        s1 = x1.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)  # (BG, 1, Cg)
        s2 = x2.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)  # (BG, 1, Cg)
        weights = s1 @ x2.reshape(b * g, c // g, h * w) + s2 @ x1.reshape(b * g, c // g, h * w)  # (BG, 1, HW)
        return (gx * weights.reshape(b * g, 1, h, w).sigmoid()).reshape(b, c, h, w)
