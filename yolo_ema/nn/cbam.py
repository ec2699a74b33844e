"""CBAM: Convolutional Block Attention Module (channel gate, then spatial gate).

Woo, Park, Lee and Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, https://arxiv.org/abs/1807.06521

Channel gate (Eq. 2): M_c = sigmoid(MLP(AvgPool(x)) + MLP(MaxPool(x))), one MLP (C -> C/r -> C, ReLU) shared by
both pooled descriptors. Spatial gate (Eq. 3): M_s = sigmoid(f^{k x k}([channel mean; channel max])) applied to the
channel-gated map. Output M_s(x') * x' with x' = M_c(x) * x.

Parameters and state_dict keys follow the authors' code (github.com/Jongchan/attention-module, ``MODELS/cbam.py``) so
its weights load with ``strict=True``: ``ChannelGate.mlp.{1,3}`` (Linear layers with biases) and
``SpatialGate.spatial.conv`` (no bias) followed by ``SpatialGate.spatial.bn`` (a BatchNorm the paper does not
mention). As in that code, the spatial convolution's two input maps are stacked as [max, mean].
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_ema.nn._checks import odd_kernel, reduced_channels


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP over the average- and max-pooled channel descriptors.

    Args:
        channels (int): Input (and output) channels C.
        reduction (int): Reduction ratio r of the shared MLP (C // r hidden units).
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = reduced_channels("CBAM", channels, reduction)
        # index 0 is parameter-free so the Linear layers sit at .1 and .3 as in the authors' code
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3)))  # (N, C)
        mx = self.mlp(x.amax((2, 3)))  # (N, C)
        return x * (avg + mx).sigmoid()[:, :, None, None]  # (N, C, H, W)


class SpatialConv(nn.Module):
    """Convolution (2 -> 1 channel, ``kernel_size`` square, no bias) followed by BatchNorm, as the authors' BasicConv.

    Args:
        kernel_size (int): Odd kernel size k; padding k // 2 keeps the spatial size.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))  # (N, 1, H, W)


class SpatialGate(nn.Module):
    """CBAM spatial attention: a k x k convolution over the channel-wise max and mean maps.

    Args:
        kernel_size (int): Odd kernel size k of the spatial convolution.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.spatial = SpatialConv(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)  # (N, 2, H, W) [max, mean]
        return x * self.spatial(pooled).sigmoid()  # (N, C, H, W)


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel gate followed by spatial gate.

    Args:
        channels (int): Input (and output) channels C.
        kernel_size (int): Odd kernel size of the spatial gate's convolution. Default 7 as in the paper.
        reduction (int): Reduction ratio r of the channel gate's shared MLP. Default 16 as in the paper.

    Examples:
        >>> m = CBAM(64)
        >>> m(torch.randn(2, 64, 20, 20)).shape
        torch.Size([2, 64, 20, 20])
    """

    def __init__(self, channels: int, kernel_size: int = 7, reduction: int = 16) -> None:
        super().__init__()
        reduced_channels("CBAM", channels, reduction)
        odd_kernel("CBAM", "kernel_size", kernel_size)
        self.channels, self.kernel_size, self.reduction = channels, kernel_size, reduction
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate(kernel_size)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, reduction={self.reduction}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))  # (N, C, H, W)
