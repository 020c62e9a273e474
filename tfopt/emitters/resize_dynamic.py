"""``ResizeBicubic`` of an image whose height and width only the data knows, as TensorFlow computes it.

:mod:`tfopt.emitters.resize_lower` writes a resize as ``y = A · x · Bᵀ`` with ``A`` and ``B`` asked
from TensorFlow when the image's size is static. With a dynamic size, each axis's taps and weights
are built in the graph from its size ``H`` the way TensorFlow's kernel (``resize_bicubic_op.cc``)
builds them, per output row ``i`` (float32 throughout, as the kernel):

    scale = H / oH                       ((H − 1) / (oH − 1) with align_corners and oH > 1)
    c     = i · scale                    ((i + ½) · scale − ½ with half_pixel_centers)
    l     = ⌊c⌋,  t = round(1024 · (c − l))        (lrintf: to nearest, ties to even)
    taps  l − 1 … l + 2, clamped to [0, H − 1]
    w     = T[t, 1], T[t, 0], T[1024 − t, 0], T[1024 − t, 1]

with ``T`` TensorFlow's own 1025-entry table of Keys' cubic (``a = −0.75``; ``a = −0.5`` with
half_pixel_centers, where a tap outside the image gets weight 0 and the four are scaled by the
reciprocal of their sum), a constant here, so every weight is the kernel's float. The image is then
resized as the kernel does, one axis after the other over the same four taps: rows first,
``h = w₀ · x[tap₀] + w₁ · x[tap₁] + w₂ · x[tap₂] + w₃ · x[tap₃]`` (``Gather`` on the height axis),
then columns the same way, summed in the kernel's order, so a zero weight meets only the pixels it
meets in TensorFlow (an infinite pixel gives ±inf or NaN where TensorFlow's does, not across the
row as a dense matrix product would). ONNX's cubic ``Resize`` weighs the exact offset instead of the
table's (~1e-3 off at ratios that are not multiples of 1/1024); TFLite and OpenVINO have no bicubic
for TensorFlow's graph at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TABLE_SIZE = 1024
WHAT = "TensorFlow's cubic taps and weights built for the image's size, gathered per axis"


def coefficients(a: float) -> np.ndarray:
    """TensorFlow's ``[1025, 2]`` table: ``T[i] = (k(x), k(x + 1))`` at ``x = i/1024`` for Keys' cubic
    ``k`` with parameter ``a``, computed as the kernel does (float ``x``, double arithmetic, stored float)."""
    table = np.empty((TABLE_SIZE + 1, 2), np.float32)
    for i in range(TABLE_SIZE + 1):
        x = float(np.float32(i * 1.0 / TABLE_SIZE))
        table[i, 0] = ((a + 2) * x - (a + 3)) * x * x + 1
        x = float(np.float32(x + 1.0))
        table[i, 1] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return table


def dynamic_bicubic(node: Any, image: Any, values: list[Any]) -> Any:
    """The ``build`` for a ``ResizeBicubic`` whose image is ``[N, ?, ?, C]``-ranked and whose size
    is a constant (``values[0]``), or ``None`` when it is not such a node."""
    if node.op != "ResizeBicubic" or image.shape is None or len(image.shape) != 4 or values[0] is None:
        return None
    out_h, out_w = (int(v) for v in values[0])
    align = node.attr["align_corners"].b
    half = node.attr["half_pixel_centers"].b

    def build(node: Any, inputs: Any) -> list[Any]:
        from tfopt._tf import tf

        t = tf()
        x = inputs[0] if inputs[0].dtype == t.float32 else t.cast(inputs[0], t.float32)
        shape = t.shape(x)
        rows = _resample(t, x, *_axis(t, shape[1], out_h, align=align, half=half), axis=1)
        return [_resample(t, rows, *_axis(t, shape[2], out_w, align=align, half=half), axis=2)]

    return build


def _resample(t: Any, x: Any, taps: list[Any], weights: list[Any], *, axis: int) -> Any:
    """``Σₖ wₖ · x[tapₖ]`` along ``axis`` (1: height, 2: width), left to right as the kernel sums."""
    shape = [1, -1, 1, 1] if axis == 1 else [1, 1, -1, 1]
    total = None
    for tap, weight in zip(taps, weights):
        term = t.gather(x, tap, axis=axis) * t.reshape(weight, shape)
        total = term if total is None else total + term
    return total


def _axis(t: Any, size: Any, out: int, *, align: bool, half: bool) -> tuple[list[Any], list[Any]]:
    """The four taps (``[out]`` int32 each) and weights (``[out]`` float32 each) of one axis
    (module docstring), ``size`` an int32 scalar tensor."""
    in_f = t.cast(size, t.float32)
    scale = (in_f - 1.0) / float(out - 1) if align and out > 1 else in_f / float(out)
    i = t.range(out, dtype=t.float32)
    coord = (i + 0.5) * scale - 0.5 if half else i * scale
    floor = t.floor(coord)
    offset = t.cast(t.round((coord - floor) * float(TABLE_SIZE)), t.int32)  # ties to even, as lrintf
    table = t.constant(coefficients(-0.5 if half else -0.75))
    weights = [t.gather(table[:, 1], offset), t.gather(table[:, 0], offset),
               t.gather(table[:, 0], TABLE_SIZE - offset), t.gather(table[:, 1], TABLE_SIZE - offset)]
    loc = t.cast(floor, t.int32)
    taps = [loc - 1 + k for k in range(4)]
    index = [t.clip_by_value(tap, 0, size - 1) for tap in taps]
    if half:  # Keys' kernel: taps outside the image weigh 0, the rest scaled to sum 1
        weights = [t.where(t.equal(tap, clamped), w, t.zeros_like(w)) for tap, w, clamped in zip(taps, weights, index)]
        total = weights[0] + weights[1] + weights[2] + weights[3]
        weights = [w * (1.0 / total) for w in weights]
    return index, weights
