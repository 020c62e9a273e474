"""``ScatterNd`` as ``TensorScatterAdd`` into zeros, so that repeated indices add up in ONNX and OpenVINO.

TensorFlow's ``tf.scatter_nd(indices, updates, shape)`` *adds* the updates of repeated indices (its
documentation: "If indices contains duplicates, the duplicate values are accumulated (summed)"); TFLite's
``SCATTER_ND`` does too. tf2onnx writes ``ConstantOfShape`` + ``ScatterND`` without ``reduction`` and
OpenVINO's frontend a ``ScatterNDUpdate``: both keep one of the repeated updates (measured: two updates of
1 at index 1 give 1, not 2), where made-up or real indices repeat. ``tensor_scatter_nd_add(zeros(shape),
indices, updates)`` is the same function, and both converters map it to a summing scatter (ONNX
``ScatterND(reduction="add")``, OpenVINO ``ScatterNDUpdate`` with ``reduction=sum``). Error: the sum's
order (ulp of the summed updates); exact when no index repeats. Runs before tf2onnx
(:func:`tfopt.emitters.onnx._lower_for_tf2onnx`) and OpenVINO's frontend
(:func:`tfopt.emitters.openvino._convert_graph`); not for TFLite, whose builtin adds already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import Lowering, Operand

WHAT = "tensor_scatter_nd_add into zeros (repeated indices add up, as in TensorFlow)"


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    if len(operands) != 3:
        return "ScatterNd without its three inputs"
    return None


def scatter_nd(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    indices, updates, shape = inputs
    return [t.tensor_scatter_nd_add(t.zeros(shape, dtype=updates.dtype), indices, updates)]


def lower_scatters(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every ``ScatterNd`` of the main graph and of the
    function bodies it reaches lowered (:func:`scatter_nd`); the graph ONNX's and OpenVINO's converters read."""
    from tfopt.emitters.tflite_lower_bodies import lower_everywhere

    return lower_everywhere(graph_def, Lowering("ScatterNd", check, scatter_nd, WHAT))
