"""Squeeze-and-Excitation (SE) channel attention.

Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507

Squeeze: global average pooling z = mean_{H,W}(x). Excitation: s = sigmoid(W2 relu(W1 z)) with W1 (C/r x C) and
W2 (C x C/r), biases omitted as in the paper's Eq. 3, so the layer has 2 C^2 / r parameters. Output x * s.

The official release (github.com/hujie-frank/SENet) is Caffe; the state_dict keys (``fc.0.weight``, ``fc.2.weight``)
follow the widely used PyTorch port's ``SELayer`` (github.com/moskomule/senet.pytorch, ``senet/se_module.py``), also
used as ``se_module`` by the SimAM authors (github.com/ZjjConan/SimAM, ``networks/attentions/se_module.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_ema.nn._checks import reduced_channels


class SE(nn.Module):
    """Squeeze-and-Excitation: re-weight channels by an MLP of their global average.

    Args:
        channels (int): Input (and output) channels C.
        reduction (int): Reduction ratio r of the bottleneck (C // r hidden units). Default 16 as in the paper.

    Examples:
        >>> m = SE(64)
        >>> m(torch.randn(2, 64, 20, 20)).shape
        torch.Size([2, 64, 20, 20])
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels("SE", channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),  # W1
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),  # W2
            nn.Sigmoid(),
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean((2, 3))  # (N, C) squeeze
        s = self.fc(z)  # (N, C) excitation
        return x * s[:, :, None, None]  # (N, C, H, W)
