"""Argument checks shared by the comparison attention layers: a clear ValueError naming the layer and the numbers."""

from __future__ import annotations


def positive_int(layer: str, name: str, value) -> int:
    """Return ``value`` if it is a positive ``int`` (not a bool), else raise ValueError naming ``layer`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer} {name} must be a positive integer, got {name}={value!r}")
    return value


def reduced_channels(layer: str, channels: int, reduction: int) -> int:
    """``channels // reduction`` (the MLP's hidden width); ValueError when the reduction leaves no hidden channel."""
    positive_int(layer, "channels", channels)
    positive_int(layer, "reduction", reduction)
    if reduction > channels:
        raise ValueError(
            f"{layer} reduction={reduction} exceeds channels={channels}: the hidden layer would have "
            f"{channels} // {reduction} = 0 channels"
        )
    return channels // reduction


def odd_kernel(layer: str, name: str, value) -> int:
    """Return ``value`` if it is a positive odd ``int`` (so 'same' padding keeps the size), else raise ValueError."""
    positive_int(layer, name, value)
    if value % 2 == 0:
        raise ValueError(
            f"{layer} {name}={value} must be odd (even kernels cannot keep the size with padding {name}//2)"
        )
    return value
