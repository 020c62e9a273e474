"""A reverse over several axes as one reverse per axis, for OpenVINO.

``ReverseV2`` takes a list of axes (``tf.reverse(x, axis=[1, 2])``, Keras 2's ``K.reverse(x, axes=(1, 2))``:
the reverse complement of one-hot DNA in deepac's nets). OpenVINO's TensorFlow frontend translates
only a single axis and stops on more ("unconverted ops: ReverseV2"). Reversing along several axes is
the composition of the reverses along each of them, in any order, and moves values without computing
any::

    reverse(x, [a₁, …, aₙ]) = reverse(… reverse(x, [a₁]) …, [aₙ])

So before OpenVINO converts the graph (:func:`tfopt.emitters.openvino._convert_graph`) each node whose
axes the graph decides (a constant, or computed from constants and static shapes) and number two or
more becomes that chain, spliced under the node's own name by the shared lowering
(:func:`tfopt.emitters.tflite_lower_bodies.lower_everywhere`: in the main graph and in every
``While``/``If``/``Case``/call body it reaches; the axes reach the lowering as values through
``Lowering.constants``). Exact. A reverse whose axes the data decides is left to the converter,
which names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.emitters.tflite_lowering import Lowering, Operand

WHAT = "one reverse per axis"


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    axes = operands[1].value
    if axes is None:
        return "ReverseV2 whose axes the data decides: left to OpenVINO's frontend"
    if np.size(axes) < 2:
        return "ReverseV2 over one axis: OpenVINO translates it"
    return None


def reverse_per_axis(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    x, axes = inputs
    for axis in np.atleast_1d(axes):
        x = tf().reverse(x, axis=np.array([axis], dtype=axes.dtype))
    return [x]


def split_reverses(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every multi-axis ``ReverseV2`` of the main
    graph and of the function bodies it reaches whose axes the graph decides written as single-axis
    reverses (:func:`reverse_per_axis`); the graph OpenVINO converts."""
    from tfopt.emitters.tflite_lower_bodies import lower_everywhere

    return lower_everywhere(graph_def, Lowering("ReverseV2", check, reverse_per_axis, WHAT, constants=(1,)))
