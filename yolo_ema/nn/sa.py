"""Shuffle Attention (SA): grouped channel and spatial attention, then a channel shuffle.

Zhang and Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021,
https://arxiv.org/abs/2102.00240

Channels are split into G groups; each group is halved. The first half gets channel attention
x * sigmoid(W1 * mean_{H,W}(x) + b1) (Eq. 1), the second spatial attention x * sigmoid(W2 * GN(x) + b2) (Eq. 2), with
per-channel W, b (C / 2G values each) shared by all groups and a GroupNorm with one group per channel. The halves
are concatenated and the channels shuffled with 2 groups. 3C / G parameters in all.

Parameters and state_dict keys follow the official code (github.com/wofmanaf/SA-Net, ``models/sa_resnet.py``:
``cweight``, ``cbias``, ``sweight``, ``sbias``, ``gn``, initialised 0, 1, 0, 1), so its weights load with
``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_ema.nn._checks import positive_int


class SA(nn.Module):
    """Shuffle attention over ``groups`` channel groups.

    Args:
        channels (int): Input (and output) channels C; must be divisible by 2 * ``groups``.
        groups (int): Number of groups G. Default 64 as in the paper.

    Examples:
        >>> m = SA(256)
        >>> m(torch.randn(2, 256, 20, 20)).shape
        torch.Size([2, 256, 20, 20])
    """

    def __init__(self, channels: int, groups: int = 64) -> None:
        super().__init__()
        positive_int("SA", "channels", channels)
        positive_int("SA", "groups", groups)
        if channels % (2 * groups):
            raise ValueError(
                f"SA channels={channels} is not divisible by 2 * groups = {2 * groups} (groups={groups}): each of the "
                f"{groups} groups is halved into a channel and a spatial branch; use groups dividing {channels // 2}"
                if channels % 2 == 0
                else f"SA channels={channels} is odd: each of the groups={groups} groups must be halved"
            )
        cg = channels // (2 * groups)  # channels per half group
        self.channels, self.groups = channels, groups
        self.cweight = nn.Parameter(torch.zeros(1, cg, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, cg, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, cg, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, cg, 1, 1))
        self.gn = nn.GroupNorm(cg, cg)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cg = self.channels // (2 * self.groups)
        if torch.onnx.is_in_onnx_export():
            # ONNX: reshapes from the traced sizes keep batch, height and width dynamic (the exporter's unflatten and
            # flatten of inner dimensions bake in the traced shape)
            b, c, h, w = x.shape
            g = x.reshape(-1, 2 * cg, h, w)  # (N*G, C/G, H, W)
        else:
            # elsewhere, only constant sizes (C, G) enter the reshapes: no arithmetic on traced shapes, which
            # converters such as coremltools cast to Python ints (its ``int`` op)
            g = x.unflatten(1, (self.groups, 2 * cg)).flatten(0, 1)  # (N*G, C/G, H, W)
        x0, x1 = g[:, :cg], g[:, cg:]  # (N*G, C/2G, H, W) each
        xc = x0 * (self.cweight * x0.mean((2, 3), keepdim=True) + self.cbias).sigmoid()  # channel branch
        xs = x1 * (self.sweight * self.gn(x1) + self.sbias).sigmoid()  # spatial branch
        out = torch.cat([xc, xs], 1)  # (N*G, C/G, H, W)
        if torch.onnx.is_in_onnx_export():
            out = out.reshape(b, c, h, w)
            return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)  # channel shuffle, 2 groups
        out = out.unflatten(0, (-1, self.groups)).flatten(1, 2)  # (N, C, H, W)
        return out.unflatten(1, (2, self.channels // 2)).transpose(1, 2).flatten(1, 2)  # channel shuffle, 2 groups
