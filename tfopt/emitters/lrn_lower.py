"""``LRN`` (``tf.nn.local_response_normalization``) for OpenVINO, as elementwise ops over channel slices.

TensorFlow, on the last axis of ``x[..., C]`` with ``r = depth_radius``::

    s[..., c] = Σ_{k = c−r}^{c+r} x[..., k]²      (channels outside [0, C) count as 0)
    y = x / (bias + alpha · s)^beta

OpenVINO's TensorFlow frontend writes its ``LRN`` op with ``alpha · (2r + 1)`` over axis ``[3]``, which
is that formula on paper; its CPU plugin computes something else there (measured on an NHWC
``6×8×3`` image, ``r = 1``, ``alpha = 0.01``, ``beta = 0.75``: 2.8e-4 off for inputs of N(0, 1),
0.82 for 3·N(0, 1), on AVX-512 and with ``ONEDNN_MAX_CPU_ISA=AVX2`` alike; neither TensorFlow's formula
nor the one with ``alpha / size``). So before OpenVINO converts the graph
(:func:`tfopt.emitters.openvino._convert_graph`) each ``LRN`` becomes the formula itself: the squares
padded with ``r`` zero channels each side, ``s`` as the sum of the ``2r + 1`` shifted slices (in the
window's order), ``y = x · exp(−beta · log(bias + alpha · s))`` (TensorFlow's CPU kernel's form for
``beta ∉ {0.5, 1}``; ``x / m`` and ``x · rsqrt(m)`` for those two). Error: a few ulp of ``|y|``
(the sum's order and the runtime's ``exp``/``log``), measured ≤ 1e-6 relative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import Lowering, Operand

WHAT = "squares summed over the channel window, then x · (bias + alpha · s)^(−beta)"


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    x = operands[0]
    if x.dtype.name != "float32":
        return f"LRN on {x.dtype.name}: lowered for float32 only"
    if x.shape is None or x.shape[-1] is None:
        return "LRN whose channel count is not static: left to OpenVINO's LRN"
    return None


def lrn(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    x = inputs[0]
    radius = int(node.attr["depth_radius"].i)
    bias, alpha, beta = (float(node.attr[k].f) for k in ("bias", "alpha", "beta"))
    channels = int(x.shape[-1])
    rank = x.shape.rank
    squares = t.pad(t.square(x), [[0, 0]] * (rank - 1) + [[radius, radius]])
    total = squares[..., 0:channels]
    for k in range(1, 2 * radius + 1):
        total = total + squares[..., k: k + channels]
    scale = bias + alpha * total
    if beta == 1.0:
        return [x / scale]
    if beta == 0.5:
        return [x * t.math.rsqrt(scale)]
    return [x * t.exp(t.math.log(scale) * -beta)]


def lower_lrns(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every ``LRN`` of the main graph and of the
    function bodies it reaches lowered (:func:`lrn`); the graph OpenVINO converts."""
    from tfopt.emitters.tflite_lower_bodies import lower_everywhere

    return lower_everywhere(graph_def, Lowering("LRN", check, lrn, WHAT))
