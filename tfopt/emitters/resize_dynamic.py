"""``ResizeBicubic`` of an image whose height and width only the data knows, as TensorFlow computes it.

:mod:`tfopt.emitters.resize_lower` writes a resize as ``y = A · x · Bᵀ`` with ``A`` and ``B`` asked
from TensorFlow when the image's size is static. With a dynamic size, ``A[oH, H]`` is built in the
graph from ``H`` the way TensorFlow's kernel (``resize_bicubic_op.cc``) builds its weights, per
output row ``i`` (float32 throughout, as the kernel):

    scale = H / oH                       ((H − 1) / (oH − 1) with align_corners and oH > 1)
    c     = i · scale                    ((i + ½) · scale − ½ with half_pixel_centers)
    l     = ⌊c⌋,  t = round(1024 · (c − l))        (lrintf: to nearest, ties to even)
    taps  l − 1 … l + 2, clamped to [0, H − 1]
    w     = T[t, 1], T[t, 0], T[1024 − t, 0], T[1024 − t, 1]

with ``T`` TensorFlow's own 1025-entry table of Keys' cubic (``a = −0.75``; ``a = −0.5`` with
half_pixel_centers, where a tap outside the image gets weight 0 and the four are scaled by the
reciprocal of their sum), a constant here, so every weight is the kernel's float. ``A`` is
``Σₖ wₖ · onehot(tapₖ, H)``; the product is the static form's. ONNX's cubic ``Resize`` weighs the
exact offset instead of the table's (~1e-3 off at ratios that are not multiples of 1/1024); TFLite
and OpenVINO have no bicubic for TensorFlow's graph at all. Error: the sums' fp32 rounding, as in
the static form. Like it, an infinite pixel times a zero weight is NaN where TensorFlow, which skips
the zeros, gives ±inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TABLE_SIZE = 1024
WHAT = "TensorFlow's cubic weights built for the image's size, two matrix products"


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
        a = _axis(t, shape[1], out_h, align=align, half=half)  # [oH, H]
        b = _axis(t, shape[2], out_w, align=align, half=half)  # [oW, W]
        on_h = t.linalg.matmul(t.transpose(x, [0, 2, 3, 1]), t.transpose(a))  # [N, W, C, oH]
        on_w = t.linalg.matmul(t.transpose(on_h, [0, 3, 2, 1]), t.transpose(b))  # [N, oH, C, oW]
        return [t.transpose(on_w, [0, 1, 3, 2])]

    return build


def _axis(t: Any, size: Any, out: int, *, align: bool, half: bool) -> Any:
    """``A[out, size]`` of one axis (module docstring), ``size`` an int32 scalar tensor."""
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
    return t.add_n([t.one_hot(k, size, dtype=t.float32) * w[:, None] for k, w in zip(index, weights)])
