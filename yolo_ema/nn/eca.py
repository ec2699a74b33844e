"""Efficient Channel Attention (ECA): local cross-channel interaction by a 1D convolution, no dimension reduction.

Wang, Wu, Zhu, Li, Zuo and Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
CVPR 2020, https://arxiv.org/abs/1910.03151

Global average pooling gives y (C values); a 1D convolution of size k across channels (no bias) and a sigmoid give
the channel weights (Eq. 7). k adapts to the channels (Eq. 12): k = |log2(C) / gamma + b / gamma|_odd, with
gamma = 2, b = 1 (``t = int(abs((log2(C) + b) / gamma))``, ``k = t`` if odd else ``t + 1``, as in the official code).

State_dict key ``conv.weight`` follows the official code (github.com/BangguWu/ECANet, ``models/eca_module.py``), so
its weights load with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yolo_ema.nn._checks import odd_kernel, positive_int


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The paper's adaptive kernel size ``|log2(C) / gamma + b / gamma|_odd`` (Eq. 12)."""
    positive_int("ECA", "channels", channels)
    positive_int("ECA", "gamma", gamma)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention: sigmoid of a k-tap 1D convolution across the globally pooled channels.

    Args:
        channels (int): Input (and output) channels C.
        k_size (int | None): Odd kernel size; None (default) computes it from C with ``gamma`` and ``b``.
        gamma (int): gamma of the adaptive kernel size. Default 2 as in the paper.
        b (int): b of the adaptive kernel size. Default 1 as in the paper.

    Examples:
        >>> m = ECA(256)
        >>> m.k_size, m(torch.randn(2, 256, 20, 20)).shape
        (5, torch.Size([2, 256, 20, 20]))
    """

    def __init__(self, channels: int, k_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if k_size is None else odd_kernel("ECA", "k_size", k_size)
        self.channels, self.k_size = channels, k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k_size={self.k_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C)
        y = self.conv(y).sigmoid()  # (N, 1, C)
        return x * y.transpose(1, 2).unsqueeze(3)  # (N, C, H, W)
