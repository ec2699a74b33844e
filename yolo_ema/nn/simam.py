"""SimAM: a parameter-free attention from an energy function of each neuron.

Yang, Zhang, Li and Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks",
ICML 2021, https://proceedings.mlr.press/v139/yang21o.html

The minimal energy of neuron t (Eq. 5) is e_t = 4 (sigma^2 + lambda) / ((t - mu)^2 + 2 sigma^2 + 2 lambda), with mu and
sigma^2 the mean and variance of the channel's M = H * W neurons (variance over M - 1, as in the official code).
Output x * sigmoid(1 / e_t) (Eq. 6), i.e. sigmoid((t - mu)^2 / (4 (sigma^2 + lambda)) + 1 / 2).

As the official code (github.com/ZjjConan/SimAM, ``networks/attentions/simam_module.py``) the layer has no
parameters and no state. A 1 x 1 map (M = 1, variance undefined) has t = mu, so its gate is sigmoid(1/2) (the code
divides 0 by 0 there).
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_ema.nn._checks import positive_int


class SimAM(nn.Module):
    """Parameter-free attention weighting each neuron by its energy-based distinctiveness within its channel.

    Args:
        channels (int | None): Input (and output) channels C; unused (no parameters), accepted for a uniform
            ``(channels, *hyperparameters)`` signature.
        e_lambda (float): Regulariser lambda (> 0). Default 1e-4 as in the paper.

    Examples:
        >>> m = SimAM(64)
        >>> m(torch.randn(2, 64, 20, 20)).shape
        torch.Size([2, 64, 20, 20])
    """

    def __init__(self, channels: int | None = None, e_lambda: float = 1e-4) -> None:
        super().__init__()
        if channels is not None:
            positive_int("SimAM", "channels", channels)
        if isinstance(e_lambda, bool) or not isinstance(e_lambda, (int, float)) or not e_lambda > 0:
            raise ValueError(f"SimAM e_lambda must be a positive number, got e_lambda={e_lambda!r}")
        self.channels, self.e_lambda = channels, float(e_lambda)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, e_lambda={self.e_lambda}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.shape[2] * x.shape[3]  # M neurons per channel (a tensor while tracing: dynamic sizes export)
        n = m.clamp(min=2) - 1 if isinstance(m, torch.Tensor) else max(m, 2) - 1  # M - 1, at least 1
        d = (x - x.mean((2, 3), keepdim=True)).square()  # (N, C, H, W) (t - mu)^2
        var = d.sum((2, 3), keepdim=True) / n  # (N, C, 1, 1) sigma^2 over M - 1
        return x * (d / (4 * (var + self.e_lambda)) + 0.5).sigmoid()  # (N, C, H, W)
