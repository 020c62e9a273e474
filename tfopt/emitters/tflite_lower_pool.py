"""Pools TFLite has no builtin for, as 2-D pools, strided slices and elementwise ops.

``MaxPool3D`` / ``AvgPool3D`` (NDHWC, VALID or SAME, any strides) on ``x[N, D, H, W, C]``, with
TensorFlow's SAME padding per dimension (``out = ⌈in/s⌉``, ``pad = max((out − 1)s + k − in, 0)``,
``pad_before = ⌊pad/2⌋``), which is what the 2-D pool does on H and W::

    max3d(x) = maxpool2d_HW( max_{j<kd} x_d[:, j :: sd] )                  exact (max commutes)
    avg3d(x) = avgpool2d_HW( Σ_{j<kd} x_d[:, j :: sd] ) / n_d[o]           a few ulp (summation order)

where ``x_d`` is ``x`` padded on D (SAME only: zeros for the sum; for the max the edge slice
repeated, which every window holding a pad also holds, so ±inf and NaN stay TensorFlow's: TFLite
stores an inf constant as the largest float), each depth slice is
``[N, Do, H, W, C]``, reshaped to ``[N·Do, H, W, C]`` for the 2-D pool and back. TensorFlow's
average divides by the number of *valid* elements of the window, which for a box clipped by a box
is ``n_d · n_h · n_w``: the 2-D pool divides by ``n_h · n_w`` itself, and ``n_d[o]`` (the valid
depths of output depth ``o``) is a constant.

``MaxPoolWithArgmax`` (NHWC; ``include_batch_in_index`` either way; ``Targmax`` int32 or int64) on
``x[N, H, W, C]``: the window's ``kh·kw`` positions as strided slices ``v_ij`` of the padded input
(each ``[N, Ho, Wo, C]``), walked in TensorFlow's CPU kernel's order (rows, then columns), with its
rule: the first valid position is taken, then a later one only when strictly greater
(``output < input``: the first maximum wins a tie, a NaN never displaces a value)::

    take = valid_ij ∧ (¬have ∨ v_ij > best);  best = take ? v_ij : best;  off = take ? i·W + j : off
    argmax = (base[o] + off)·C + c  (+ b·H·W·C with include_batch_in_index),
    base[o] = (o_h·s_h − pad_top)·W + (o_w·s_w − pad_left)

``valid_ij`` (the position is inside the unpadded input) and ``base`` are constants, so H, W and C
must be static (the batch need not be); ``best`` is the pooled output. Exact: only comparisons and
integer arithmetic (an index past 2³¹ needs ``Targmax`` int64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.emitters.tflite_lowering import Operand, registry


def _t() -> Any:
    from tfopt._tf import tf

    return tf()


def _window(size: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) of one dimension, as TensorFlow pools compute them."""
    if padding == "VALID":
        return (size - k) // s + 1, 0
    out = -(-size // s)
    return out, max((out - 1) * s + k - size, 0) // 2


def _pool_check(rank: int, data_format: str | None) -> Any:
    def check(node: Any, operands: Sequence[Operand]) -> str | None:
        x = operands[0]
        if x.dtype.name != "float32":
            return f"{node.op} on {x.dtype.name}: lowered for float32 only"
        if data_format and node.attr["data_format"].s.decode() not in ("", data_format):
            return f"{node.op} with data_format {node.attr['data_format'].s.decode()}: lowered for {data_format} only"
        padding = node.attr["padding"].s.decode()
        if padding not in ("VALID", "SAME"):
            return f"{node.op} with padding {padding}: lowered for VALID and SAME only"
        k, s = list(node.attr["ksize"].list.i), list(node.attr["strides"].list.i)
        if len(k) != rank or len(s) != rank or k[0] != 1 or k[-1] != 1 or s[0] != 1 or s[-1] != 1:
            return f"{node.op} pooling over the batch or channels (ksize {k}, strides {s}): not lowered"
        if x.shape is None or len(x.shape) != rank or None in x.shape[1:]:
            dims = "unknown rank" if x.shape is None else "x".join("?" if d is None else str(d) for d in x.shape)
            return (f"{node.op} on a tensor of shape {dims}: lowering needs every dimension but the batch static "
                    "(give the input's shape with --inputs NAME:SHAPE)")
        if any(size < kk and padding == "VALID" for size, kk in zip(x.shape[1:-1], k[1:-1])):
            return f"{node.op}: window larger than the input with VALID padding"
        return None

    return check


def _depth_slices(x: Any, k: int, s: int, out: int, before: int, *, average: bool) -> list[Any]:
    """The ``k`` depth slices ``x_d[:, j :: s]`` of ``x[N, D, ...]`` padded on D (see module docstring)."""
    t = _t()
    size = int(x.shape[1])
    after = max((out - 1) * s + k - size - before, 0)
    if average and (before or after):
        x = t.pad(x, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]])
    elif before or after:  # the edge slice repeated: a window holding a pad holds that edge too
        x = t.concat([x[:, :1]] * before + [x] + [x[:, -1:]] * after, axis=1)
    return [x[:, j: j + (out - 1) * s + 1: s] for j in range(k)]


def _pool3d(node: Any, inputs: Sequence[Any], *, average: bool) -> list[Any]:
    t = _t()
    x = inputs[0]
    k, s = list(node.attr["ksize"].list.i), list(node.attr["strides"].list.i)
    padding = node.attr["padding"].s.decode()
    depth, height, width, channels = (int(d) for d in x.shape[1:])
    out_d, before = _window(depth, k[1], s[1], padding)
    out_h, _ = _window(height, k[2], s[2], padding)
    out_w, _ = _window(width, k[3], s[3], padding)
    slices = _depth_slices(x, k[1], s[1], out_d, before, average=average)
    reduced = slices[0]
    for part in slices[1:]:
        reduced = reduced + part if average else t.maximum(reduced, part)
    planes = t.reshape(reduced, [-1, height, width, channels])
    pool = t.nn.avg_pool2d if average else t.nn.max_pool2d
    pooled = t.reshape(pool(planes, k[2:4], s[2:4], padding), [-1, out_d, out_h, out_w, channels])
    if not average:
        return [pooled]
    starts = np.arange(out_d) * s[1] - before
    counts = np.minimum(starts + k[1], depth) - np.maximum(starts, 0)
    return [pooled / t.constant(counts.reshape(1, out_d, 1, 1, 1).astype(np.float32))]


registry.register("MaxPool3D", what="depth max of strided slices, then MaxPool 2-D",
                  check=_pool_check(5, "NDHWC"))(lambda node, inputs: _pool3d(node, inputs, average=False))
registry.register("AvgPool3D", what="depth sum of strided slices, then AvgPool 2-D, over the valid depth count",
                  check=_pool_check(5, "NDHWC"))(lambda node, inputs: _pool3d(node, inputs, average=True))


@registry.register("MaxPoolWithArgmax", what="first-max-wins select chain over the window's strided slices",
                   check=_pool_check(4, None))
def _max_pool_with_argmax(node: Any, inputs: Sequence[Any]) -> list[Any]:
    t = _t()
    x = inputs[0]
    (kh, kw), (sh, sw) = node.attr["ksize"].list.i[1:3], node.attr["strides"].list.i[1:3]
    padding = node.attr["padding"].s.decode()
    height, width, channels = (int(d) for d in x.shape[1:])
    out_h, top = _window(height, kh, sh, padding)
    out_w, left = _window(width, kw, sw, padding)
    bottom = max((out_h - 1) * sh + kh - height - top, 0)
    right = max((out_w - 1) * sw + kw - width - left, 0)
    padded = t.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=-np.inf) \
        if top or bottom or left or right else x
    rows = np.arange(out_h) * sh - top
    cols = np.arange(out_w) * sw - left
    best = have = offset = None
    for i in range(kh):
        for j in range(kw):
            value = padded[:, i: i + (out_h - 1) * sh + 1: sh, j: j + (out_w - 1) * sw + 1: sw, :]
            inside = ((rows + i >= 0) & (rows + i < height))[:, None] & ((cols + j >= 0) & (cols + j < width))[None, :]
            valid = None if inside.all() else t.constant(inside.reshape(1, out_h, out_w, 1))
            here = t.constant(i * width + j, t.int32)
            if best is None:  # the window's first position: taken wherever it is valid
                best, have = value, valid
                offset = t.fill(t.shape(value), here)
                continue
            take = t.greater(value, best)
            if have is not None:
                take = t.logical_or(take, t.logical_not(have))
            if valid is None:  # valid everywhere: from here on every window has a value
                have = None
            else:
                take = t.logical_and(take, valid)
                have = None if have is None else t.logical_or(have, valid)
            best = t.where(take, value, best)
            offset = t.where(take, here, offset)
    dtype = t.as_dtype(node.attr["Targmax"].type)
    base = ((rows[:, None] * width + cols[None, :]) * channels).reshape(1, out_h, out_w, 1)
    index = t.cast(offset, dtype) * channels + t.constant(base, dtype) + t.constant(
        np.arange(channels).reshape(1, 1, 1, channels), dtype)
    if node.attr["include_batch_in_index"].b:
        batch = t.reshape(t.range(t.shape(x, out_type=dtype)[0], dtype=dtype), [-1, 1, 1, 1])
        index = index + batch * (height * width * channels)
    return [best, index]
