"""An output node read through an ``Identity`` of its own name, for converters that lose the name
of an output whose op they replace.

OpenVINO's frontend replaces a loop's ``TensorListStack`` and drops its name; tf2onnx's TensorFlow
optimisation (grappler) inlines a functional ``If``/``While``/call that is itself an output and
then cannot find it ("Inputs/Outputs Not Found": a Keras 2 ``CenterCrop`` whose ``cond`` is the
output once its ``Identity`` is removed). Both keep an ``Identity``'s name on the tensor it
forwards, so the output node ``X`` is renamed ``X/value`` and read by an ``Identity`` named ``X``:
the same value under the same name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from tfopt._tf import tf
from tfopt.graph import Model, rename_node, tensor_port, unique_name

# Ops whose body grappler inlines or lowers (its function and control-flow optimisers).
FUNCTIONAL = {"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase", "PartitionedCall",
              "StatefulPartitionedCall"}


def outputs_behind_identity(model: Model, nodes: Sequence[str]) -> Any:
    """A copy of the graph where each output node ``X`` is renamed ``X/value`` and read by an
    ``Identity`` named ``X``: the frontend keeps an Identity's name on the tensor it forwards, even
    when it replaces the op that computes it (a loop's ``TensorListStack``)."""
    graph_def = copy.deepcopy(model.graph_def)
    dtypes = {spec.node: spec.dtype for spec in model.outputs}
    for name in nodes:
        value = unique_name(graph_def, f"{name}/value")
        rename_node(graph_def, name, value)
        node = graph_def.node.add(name=name, op="Identity", input=[value])
        node.attr["T"].type = tf().as_dtype(dtypes[name]).as_datatype_enum
    return graph_def


def functional_outputs(model: Model) -> list[str]:
    """The output nodes computed by a functional op (:data:`FUNCTIONAL`) whose only output is port 0."""
    ops = {node.name: node.op for node in model.graph_def.node}
    other_ports = {spec.node for spec in model.outputs if tensor_port(spec.tensor) != 0}
    return [spec.node for spec in model.outputs if ops.get(spec.node) in FUNCTIONAL and spec.node not in other_ports]
