"""The symmetric weight grid of tfopt's int8 engine: one definition for every place that quantizes
a layer's weights or simulates it (the fake quants :mod:`.fake_quant` writes, the weights
:mod:`.bias_correction` measures its shift with, the grid :mod:`.adaround` rounds on).

For a weight ``W`` of a ``Conv2D`` / ``DepthwiseConv2dNative`` / ``MatMul`` and ``L`` levels::

    L      = 2^(bits−1) − 1                       127 for 8-bit weights, 63 for 7-bit
    a_c    = max|W_c|                             per output channel c, or over the whole tensor
    s_c    = max(a_c, MIN_AMAX) / L               the step (zero-range rule below)
    q      = clip(⌊W / s_c + ½⌋, −L, L)           TensorFlow's FakeQuant rounding: half up
    W̃      = q · s_c

Output channels (:func:`channel_axes`): ``Conv2D`` ``[H, W, in, out]``: the last axis;
``DepthwiseConv2dNative`` ``[H, W, in, mult]``: ``(2, 3)``, channel ``c = i·mult + m`` (C order);
``MatMul`` weights are per tensor (:data:`PER_CHANNEL_OPS`), as are all weights with
``per_channel=False``.

**Zero-range rule.** A channel with ``a_c < MIN_AMAX`` (all zeros, or dead after BatchNorm
folding) gets the step ``MIN_AMAX / L``: its zeros stay exactly 0, and its tiny weights are on the
same grid the fake quant stores, whatever computes them.

**As a fake quant** (:meth:`WeightGrid.ranges`): ``FakeQuantWithMinMaxVars[PerChannel]`` with 8
bits stores ``[−127·s_c, 127·s_c]`` (``narrow_range``: the int8 grid −127..127 with zero point 0
TFLite's kernels require) or ``[−128·s_c, 127·s_c]``: its step is ``s_c`` either way, and
``|W / s_c| ≤ L ≤ 127``, so with ``L = 63`` every weight stays within ±63 steps of the int8 grid
(products with uint8 activations cannot saturate the int16 pair sums of CPUs without VNNI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-channel weights where the converters can carry them; MatMul's are per tensor (as TFMOT's Dense):
# TFLite transposes the [in, out] weight into FULLY_CONNECTED's [out, in] and rejects a per-channel
# axis through that transpose ("'tfl.transpose' op has mismatched quantized axes").
PER_CHANNEL_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative"})
GRID_BITS = 8  # the fake quant's grid; weights use ±levels of its ±127 steps
MIN_AMAX = 1e-6  # a channel's max|W| below this is treated as this (zero-range rule)


def levels(bits: int = GRID_BITS) -> int:
    """``L = 2^(bits−1) − 1`` steps of ``max|W|`` on each side of zero (127; 63 for 7-bit weights)."""
    return 2 ** (bits - 1) - 1


LEVELS = levels()


def channel_axes(op: str, ndim: int, *, per_channel: bool = True) -> tuple[int, ...]:
    """Axes of a ``op`` weight of rank ``ndim`` that index its output channel; ``()``: per tensor."""
    if not per_channel or op not in PER_CHANNEL_OPS:
        return ()
    return (2, 3) if op == "DepthwiseConv2dNative" else (ndim - 1,)


@dataclass(frozen=True)
class WeightGrid:
    """One weight's grid: ``amax = max(max|W_c|, MIN_AMAX)`` (float64, shaped to broadcast against
    the weight: exactly a weight's magnitude unless below ``MIN_AMAX``), ``levels`` and the
    channel ``axes`` (``()``: per tensor)."""

    amax: np.ndarray
    levels: int
    axes: tuple[int, ...]

    @property
    def scale(self) -> np.ndarray:
        """The step ``s = amax / L`` (float64, broadcastable against the weight)."""
        return self.amax / self.levels

    def steps(self, w: np.ndarray) -> np.ndarray:
        """``q = clip(⌊W/s + ½⌋, −L, L)`` (float64 integers)."""
        return np.clip(np.floor(np.asarray(w, dtype=np.float64) / self.scale + 0.5), -self.levels, self.levels)

    def quantize(self, w: np.ndarray) -> np.ndarray:
        """``W̃ = q·s``, in ``w``'s dtype: the values the fake quant lets through."""
        return (self.steps(w) * self.scale).astype(np.asarray(w).dtype)

    def ranges(self, *, narrow_range: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The fake quant's float32 ``(min, max)``: per channel (shape ``[channels]``, C order over
        :attr:`axes`) or per tensor (scalars); ``[−127·s, 127·s]`` (narrow) or ``[−128·s, 127·s]``."""
        top = levels(GRID_BITS)
        scale = self.scale.reshape(-1) if self.axes else self.scale.reshape(())
        low = -(top if narrow_range else top + 1) * scale
        return low.astype(np.float32), (top * scale).astype(np.float32)


def weight_grid(w: np.ndarray, op: str, *, per_channel: bool = True, levels: int = LEVELS) -> WeightGrid:
    """The grid ``op``'s weight ``w`` is quantized on (module docstring).

    Args:
        w: the float weight, in the op's own layout (``[H, W, in, out]``, ``[H, W, in, mult]``, ``[in, out]``).
        op: the consuming op's type; only :data:`PER_CHANNEL_OPS` get one step per output channel.
        per_channel: False: one step for the whole tensor whatever the op.
        levels: ``L``, steps of ``max|W|`` on each side of zero (:func:`levels`: 127, or 63 for 7-bit).
    """
    wf = np.abs(np.asarray(w, dtype=np.float64))
    axes = channel_axes(op, wf.ndim, per_channel=per_channel)
    other = tuple(a for a in range(wf.ndim) if a not in axes)
    amax = wf.max(axis=other, keepdims=True, initial=0.0)
    return WeightGrid(np.maximum(amax, MIN_AMAX), levels, axes)
