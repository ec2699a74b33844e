"""Coordinate Attention (CA): channel attention factorised into two direction-aware 1D poolings.

Hou, Zhou and Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
https://arxiv.org/abs/2103.02907

The input is average-pooled along each spatial direction (z^h: C x H x 1, z^w: C x W x 1), both are concatenated and
transformed by a shared 1x1 convolution F1 (C -> mip, mip = max(8, C // r)), BatchNorm and h-swish (Eq. 4), split
back and turned into gates g^h = sigmoid(F_h(f^h)), g^w = sigmoid(F_w(f^w)) (Eq. 5). Output x * g^h * g^w (Eq. 6).

Parameters and state_dict keys follow the official code (github.com/houqb/CoordAttention, ``coordatt.py``:
``conv1``, ``bn1``, ``conv_h``, ``conv_w``, convolutions with biases), so its weights load with ``strict=True``.
h-swish there is ``x * relu6(x + 3) / 6``, which is ``nn.Hardswish``.
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_ema.nn._checks import positive_int


class CA(nn.Module):
    """Coordinate attention: gates along H and along W from direction-wise pooled features.

    Args:
        channels (int): Input (and output) channels C.
        reduction (int): Reduction ratio r; the middle width is max(8, C // r). Default 32 as in the paper.

    Examples:
        >>> m = CA(64)
        >>> m(torch.randn(2, 64, 20, 24)).shape
        torch.Size([2, 64, 20, 24])
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        positive_int("CA", "channels", channels)
        positive_int("CA", "reduction", reduction)
        mip = max(8, channels // reduction)
        self.channels, self.reduction = channels, reduction
        self.conv1 = nn.Conv2d(channels, mip, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mip, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(mip, channels, kernel_size=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        z_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
        z_w = x.mean(2, keepdim=True).transpose(2, 3)  # (N, C, W, 1)
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], 2))))  # (N, mip, H+W, 1)
        f_h, f_w = torch.split(f, [h, w], 2)  # (N, mip, H, 1), (N, mip, W, 1)
        g_h = self.conv_h(f_h).sigmoid()  # (N, C, H, 1)
        g_w = self.conv_w(f_w.transpose(2, 3)).sigmoid()  # (N, C, 1, W)
        return x * g_h * g_w  # (N, C, H, W)
