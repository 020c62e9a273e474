"""A reverse over several axes as one reverse per axis, for OpenVINO.

``ReverseV2`` takes a list of axes (``tf.reverse(x, axis=[1, 2])``, Keras 2's ``K.reverse(x, axes=(1, 2))``:
the reverse complement of one-hot DNA in deepac's nets). OpenVINO's TensorFlow frontend translates
only a single axis and stops on more ("unconverted ops: ReverseV2"). Reversing along several axes is
the composition of the reverses along each of them, in any order, and moves values without computing
any: each node whose axes are a constant list of two or more is replaced by a chain of single-axis
``ReverseV2`` nodes (the last keeping the node's name, so its consumers are unchanged). Exact.
Nodes of the main graph only; one with a computed axis list is left to the converter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt.graph import tensor_node as node_name
from tfopt.graph import unique_name


def split_reverses(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every multi-axis ``ReverseV2`` whose axes
    are a constant written as single-axis reverses."""
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    wanted = [n.name for n in graph_def.node if n.op == "ReverseV2" and len(_axes(n, consts)) > 1]
    if not wanted:
        return graph_def
    from tfopt._tf import make_const
    from tfopt.passes.base import copy_graph

    out = copy_graph(graph_def)
    taken = {n.name for n in out.node}
    for node in [n for n in out.node if n.name in wanted]:
        axes, index_type = _axes(node, consts), consts[node_name(node.input[1])].attr["dtype"].type
        source = node.input[0]
        controls = [r for r in node.input if r.startswith("^")]
        for i, axis in enumerate(axes):
            axis_const = unique_name(out, f"{node.name}/axis_{i}", taken)
            out.node.add().CopyFrom(make_const(axis_const, np.array([axis]), dtype=index_type))
            if i == len(axes) - 1:  # the last keeps the node (its name, attributes, control inputs)
                step = node
            else:
                step = out.node.add()
                step.CopyFrom(node)
                step.name = unique_name(out, f"{node.name}/reverse_{i}", taken)
            del step.input[:]
            step.input.extend([source, axis_const, *controls])
            source = step.name
    return out


def _axes(node: Any, consts: dict[str, Any]) -> list[int]:
    """The constant axes of a ``ReverseV2`` node, or ``[]`` when they are computed."""
    if len(node.input) < 2 or node_name(node.input[1]) not in consts:
        return []
    from tfopt._tf import const_value

    return [int(a) for a in np.atleast_1d(const_value(consts[node_name(node.input[1])]))]
