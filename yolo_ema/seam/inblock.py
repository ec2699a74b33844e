"""In-block variants (C2f_EMA, C3k2_EMA): the classes, and their rows in Ultralytics' parser.

The design (EMA on each bottleneck's residual branch, the factor rule) is described in :mod:`yolo_ema.blocks`, the
public import path of these classes and the one checkpoints name (``__module__``). They subclass Ultralytics'
``Bottleneck``, ``C2f`` and ``C3k2`` (``ultralytics/nn/modules/block.py``), so they live in the seam; the YAML names,
parents and argument counts come from :data:`yolo_ema.nn.registry.INBLOCK`.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn
from ultralytics.nn.modules.block import Bottleneck, C2f, C3k2
from ultralytics.utils import LOGGER

from yolo_ema.nn.ema import EMA
from yolo_ema.nn.registry import INBLOCK

DEFAULT_FACTOR = 8
PUBLIC_MODULE = "yolo_ema.blocks"  # where users import these classes and checkpoints find them


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

    __module__ = PUBLIC_MODULE

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
        factor (int): EMA groups in each bottleneck (default 8, see :mod:`yolo_ema.blocks`).

    Examples:
        >>> m = C2f_EMA(64, 64, n=1)
        >>> m(torch.randn(1, 64, 16, 16)).shape
        torch.Size([1, 64, 16, 16])
    """

    __module__ = PUBLIC_MODULE

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
        factor (int): EMA groups in each bottleneck (default 8, see :mod:`yolo_ema.blocks`).
    """

    __module__ = PUBLIC_MODULE

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


def split_row_args(name: str, args: list, where: str) -> tuple[list, int]:
    """A variant row's YAML args as (the parent's args, EMA factor): ``[256, False, 1, 0.5, 16]`` -> factor 16.

    The factor follows the parent's own arguments, as in the constructor; without it the default (8) applies.
    """
    spec = INBLOCK[name]
    k = spec.parent_args
    if len(args) > k + 1:
        raise ValueError(
            f"{where}: {name} takes at most {k + 1} args ({spec.parent}'s {k}, then the EMA factor), got {list(args)}"
        )
    factor = args[k] if len(args) > k else DEFAULT_FACTOR
    try:
        ema_factor(1, factor)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return list(args[:k]), factor


def upgrade(layer: nn.Module, name: str, factor: int = DEFAULT_FACTOR) -> nn.Module:
    """Make a parser-built parent layer (``C2f`` / ``C3k2``, or a Sequential of them) the in-block variant ``name``.

    Equivalent to constructing the variant with the arguments the parser gave the parent: the parent's submodules
    are kept (the object's ``__class__`` becomes the variant's) and each bottleneck gains an EMA.
    """
    cls = INBLOCK[name].cls
    parent = cls.__base__
    for m in layer if isinstance(layer, nn.Sequential) else [layer]:
        if type(m) is not parent:
            raise TypeError(f"{name}: expected the parser to build {parent.__name__}, got {type(m).__name__}")
        m.__class__ = cls
        add_ema(m, factor)
    return layer


def parse_with_blocks(parse_model, d, ch, verbose=True):
    """Parse ``d`` with rows naming an in-block variant built as their Ultralytics parent, then upgraded in place.

    ``parse_model`` scales only classes in its local ``base_modules`` / ``repeat_modules`` sets (and gives C3k2 its
    m/l/x ``c3k`` switch by identity), so a ``C2f_EMA`` row is parsed as ``C2f`` (same width, repeats and arguments)
    and the built layer then gains its EMA (:func:`upgrade`). ``d`` itself (the model's ``yaml``) keeps the
    variant's name.
    """
    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    names = {i: r[2] for i, r in enumerate(rows) if isinstance(r, (list, tuple)) and len(r) >= 3 and r[2] in INBLOCK}
    if not names:
        return parse_model(d, ch, verbose)

    d, factors = deepcopy(d), {}
    for i, name in names.items():
        section, j = ("backbone", i) if i < len(d.get("backbone") or []) else ("head", i - len(d["backbone"]))
        row = d[section][j]
        row[2] = INBLOCK[name].parent
        row[3], factors[i] = split_row_args(name, row[3] if len(row) > 3 else [], f"{name} layer {i}")
    model, save = parse_model(d, ch, verbose)
    for i, name in names.items():
        layer = upgrade(model[i], name, factors[i])
        layer.type, layer.np = f"{PUBLIC_MODULE}.{name}", sum(p.numel() for p in layer.parameters())
    if verbose:
        LOGGER.info(f"yolo-ema: layers {sorted(names)} built as {sorted(set(names.values()))} (EMA in each bottleneck)")
    return model, save
