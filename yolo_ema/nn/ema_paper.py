"""EMA written directly from the paper's equations: the reference the optimized :class:`yolo_ema.nn.ema.EMA` is
checked and benchmarked against.

Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", ICASSP 2023,
https://arxiv.org/abs/2305.13563

Every intermediate of the formulation is materialized (the Cg-channel 3x3 convolution, the GroupNorm output, both
softmax descriptors, two matmuls), as in the authors' code; pooling is ``mean`` instead of adaptive pooling. Same
parameters and state_dict keys (``conv1x1.*``, ``conv3x3.*``, ``gn.*``) as the optimized module.
"""

from __future__ import annotations

import torch

from yolo_ema.nn.ema import EMAParameters


def attention_map(layer: EMAParameters, x: torch.Tensor) -> torch.Tensor:
    """The sigmoid spatial maps [B, G, H, W] an EMA layer multiplies its G channel groups of ``x`` [B, C, H, W] by,
    computed step by step from the layer's parameters (works for :class:`yolo_ema.nn.ema.EMA` too)."""
    b, c, h, w = x.shape
    g = layer.groups
    gx = x.reshape(b * g, c // g, h, w)  # (BG, Cg, H, W)
    x_h = gx.mean(dim=3, keepdim=True)  # (BG, Cg, H, 1)
    x_w = gx.mean(dim=2, keepdim=True).transpose(2, 3)  # (BG, Cg, W, 1)
    hw = layer.conv1x1(torch.cat([x_h, x_w], dim=2))  # (BG, Cg, H+W, 1)
    a_h, a_w = torch.split(hw, [h, w], dim=2)  # (BG, Cg, H, 1), (BG, Cg, W, 1)
    x1 = layer.gn(gx * a_h.sigmoid() * a_w.transpose(2, 3).sigmoid())  # (BG, Cg, H, W)
    x2 = layer.conv3x3(gx)  # (BG, Cg, H, W)
    s1 = x1.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)  # (BG, 1, Cg)
    s2 = x2.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)  # (BG, 1, Cg)
    weights = s1 @ x2.reshape(b * g, c // g, h * w) + s2 @ x1.reshape(b * g, c // g, h * w)  # (BG, 1, HW)
    return weights.reshape(b, g, h, w).sigmoid()  # (B, G, H, W)


class PaperEMA(EMAParameters):
    """EMA as the paper's formulation, step by step (see :class:`yolo_ema.nn.ema.EMA` for the module's description).

    Args:
        channels (int): Input (and output) channels C.
        factor (int): Number of groups G; C must be divisible by G. Default 32 as in the official code.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.groups
        gx = x.reshape(b * g, c // g, h, w)  # (BG, Cg, H, W)
        return (gx * attention_map(self, x).reshape(b * g, 1, h, w)).reshape(b, c, h, w)
