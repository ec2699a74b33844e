"""The attention picture's maps are exactly what EMA multiplies its channel groups by."""

from __future__ import annotations

import pytest
import torch

from yolo_ema.nn.ema import EMA
from yolo_ema.nn.ema_paper import PaperEMA, attention_map


@pytest.mark.parametrize("cls", [EMA, PaperEMA])
def test_map_times_input_is_the_layer_output(cls):
    torch.manual_seed(0)
    m = cls(32, 4).eval()
    for p in m.parameters():  # away from the initial values, so a wrong formula cannot pass by symmetry
        p.data.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 32, 9, 7)
    with torch.no_grad():
        a = attention_map(m, x)  # (B, G, H, W)
        y = m(x)
    assert a.shape == (2, 4, 9, 7) and bool(((a > 0) & (a < 1)).all())
    want = (x.reshape(2, 4, 8, 9, 7) * a[:, :, None]).reshape(2, 32, 9, 7)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
