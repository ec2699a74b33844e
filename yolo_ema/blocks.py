"""C2f and C3k2 with EMA inside every bottleneck (the "C2f_EMA" in-block variants).

EMA (Ouyang et al., ICASSP 2023, arXiv:2305.13563) re-weights each bottleneck's residual branch before the shortcut
addition, the placement SE and coordinate attention use in residual blocks:

    BottleneckEMA(x) = x + EMA(cv2(cv1(x)))   (shortcut)      EMA(cv2(cv1(x)))   (no shortcut)

The CSP structure around the bottlenecks is Ultralytics' own (``ultralytics/nn/modules/block.py``: ``C2f``,
``C3k2``, ``C3k``, ``Bottleneck``); the classes here subclass it, so every existing tensor keeps its name
(``m.0.cv1.conv.weight`` ...) and C2f / C3k2 checkpoints load unchanged; each bottleneck gains one ``ema``
submodule (``m.0.ema.*``), which starts fresh. Inside a C3k (C3k2 at m/l/x scales) and in C3k2's attention variant,
every inner Bottleneck gets its EMA the same way.

Factor (groups): the official default is 32, chosen for ResNet bottlenecks of 64-512 channels. YOLO bottlenecks are
narrower (32 channels in YOLOv8n/YOLO11n neck blocks, where 32 groups would leave one channel per group and
collapse EMA's channel softmax to a constant), so the default here is 8, the factor of the neck EMA configs: at
every official scale each group keeps at least 4 channels. For a custom width whose bottleneck channels are not
divisible by the factor, the factor drops to ``gcd(channels, factor)`` (a divisor, so every group stays equal).

YAML rows read like their parents' (``[-1, 3, C2f_EMA, [256]]``, ``[-1, 2, C3k2_EMA, [512, False]]``) and are scaled
exactly as the parents are; the yolo-ema plugin arranges that in Ultralytics' parser. The factor is the last
constructor argument (after C2f's ``e`` / C3k2's ``shortcut``) and, the same way, an optional last YAML arg:
``[-1, 3, C2f_EMA, [256, False, 1, 0.5, 16]]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from ultralytics.nn.modules.block import Bottleneck, C2f, C3k2

from yolo_ema.nn.ema import EMA

DEFAULT_FACTOR = 8


def ema_factor(channels: int, factor: int = DEFAULT_FACTOR) -> int:
    """Groups EMA uses on ``channels``: ``factor`` when it divides them, else their greatest common divisor."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"EMA factor must be a positive integer, got {factor!r}")
    return math.gcd(channels, factor)


class BottleneckEMA(Bottleneck):
    """Ultralytics' ``Bottleneck`` with EMA on the residual branch, before the shortcut addition.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels (EMA's channels).
        shortcut (bool): Add the input when ``c1 == c2``.
        g (int): Groups of the second convolution.
        k (tuple): Kernel sizes of cv1 and cv2.
        e (float): Expansion ratio.
        factor (int): EMA groups (see :func:`ema_factor`).
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        shortcut: bool = True,
        g: int = 1,
        k: tuple = (3, 3),
        e: float = 0.5,
        factor: int = DEFAULT_FACTOR,
    ):
        super().__init__(c1, c2, shortcut, g, k, e)
        _attach_ema(self, factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ema(self.cv2(self.cv1(x)))  # (N, c2, H, W)
        return x + y if self.add else y


def _attach_ema(b: Bottleneck, factor: int) -> None:
    channels = b.cv2.conv.out_channels  # the residual branch's output channels
    b.ema = EMA(channels, ema_factor(channels, factor)).to(b.cv2.conv.weight.device)


def add_ema(block: nn.Module, factor: int = DEFAULT_FACTOR) -> nn.Module:
    """Turn every plain ``Bottleneck`` inside ``block`` into a :class:`BottleneckEMA`, in place; return ``block``.

    Existing submodules (and so their tensors and names) are kept; each bottleneck gains a fresh ``ema``.
    """
    for b in block.modules():
        if type(b) is Bottleneck:
            b.__class__ = BottleneckEMA  # same attributes plus ema: the subclass adds no other state
            _attach_ema(b, factor)
    return block


class C2f_EMA(C2f):  # noqa: N801 (the YAML name users type)
    """Ultralytics' ``C2f`` whose bottlenecks carry EMA on their residual branch.

    Args:
        c1, c2, n, shortcut, g, e: as ``C2f``.
        factor (int): EMA groups in each bottleneck (default 8, see the module docstring).

    Examples:
        >>> m = C2f_EMA(64, 64, n=1)
        >>> m(torch.randn(1, 64, 16, 16)).shape
        torch.Size([1, 64, 16, 16])
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = False,
        g: int = 1,
        e: float = 0.5,
        factor: int = DEFAULT_FACTOR,
    ):
        super().__init__(c1, c2, n, shortcut, g, e)
        add_ema(self, factor)


class C3k2_EMA(C3k2):  # noqa: N801 (the YAML name users type)
    """Ultralytics' ``C3k2`` whose bottlenecks (also those inside C3k and the attention variant) carry EMA.

    Args:
        c1, c2, n, c3k, e, attn, g, shortcut: as ``C3k2``.
        factor (int): EMA groups in each bottleneck (default 8, see the module docstring).
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        c3k: bool = False,
        e: float = 0.5,
        attn: bool = False,
        g: int = 1,
        shortcut: bool = True,
        factor: int = DEFAULT_FACTOR,
    ):
        super().__init__(c1, c2, n, c3k, e, attn, g, shortcut)
        add_ema(self, factor)


PARENTS = {"C2f_EMA": C2f, "C3k2_EMA": C3k2}  # YAML name -> Ultralytics parent the parser scales it as
BLOCKS = {"C2f_EMA": C2f_EMA, "C3k2_EMA": C3k2_EMA}
SAFE_CLASSES = (BottleneckEMA, C2f_EMA, C3k2_EMA)  # classes a checkpoint of these blocks references
PARENT_ARGS = {
    "C2f_EMA": 4,
    "C3k2_EMA": 6,
}  # YAML args the parent takes: C2f [c2, shortcut, g, e], C3k2 [c2, ..., shortcut]


def split_row_args(name: str, args: list, where: str) -> tuple[list, int]:
    """A variant row's YAML args as (the parent's args, EMA factor): ``[256, False, 1, 0.5, 16]`` -> factor 16.

    The factor follows the parent's own arguments, as in the constructor; without it the default (8) applies.
    """
    k = PARENT_ARGS[name]
    if len(args) > k + 1:
        raise ValueError(
            f"{where}: {name} takes at most {k + 1} args ({PARENTS[name].__name__}'s {k}, then the EMA "
            f"factor), got {list(args)}"
        )
    factor = args[k] if len(args) > k else DEFAULT_FACTOR
    try:
        ema_factor(1, factor)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return list(args[:k]), factor


def upgrade(layer: nn.Module, name: str, factor: int = DEFAULT_FACTOR) -> nn.Module:
    """Make a parser-built parent layer (``C2f`` / ``C3k2``, or a Sequential of them) the in-block variant ``name``.

    Equivalent to constructing ``BLOCKS[name]`` with the arguments the parser gave the parent: the parent's
    submodules are kept and each bottleneck gains an EMA.
    """
    parent, cls = PARENTS[name], BLOCKS[name]
    for m in layer if isinstance(layer, nn.Sequential) else [layer]:
        if type(m) is not parent:
            raise TypeError(f"{name}: expected the parser to build {parent.__name__}, got {type(m).__name__}")
        m.__class__ = cls
        add_ema(m, factor)
    return layer


# When this module is imported before Ultralytics (a checkpoint unpickled in a fresh process), its own import of
# Ultralytics runs the plugin's registration before SAFE_CLASSES exists; the blocks allow themselves here.
if hasattr(torch.serialization, "add_safe_globals"):
    torch.serialization.add_safe_globals(list(SAFE_CLASSES))
