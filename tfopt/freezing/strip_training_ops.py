"""Remove what only matters while training.

* ``Assert`` and ``NoOp`` nodes are deleted with every control edge on them (asserts guard
  training-time invariants; NoOps group update/init ops). A node that waited on a deleted ``NoOp``
  waits on what that ``NoOp`` waited on instead (its kept control inputs, through deleted ``NoOp``
  chains): in a loop lowered to ``Enter``/``Exit`` frames (``convert_variables_to_constants_v2``'s
  default ``lower_control_flow=True``) a body's constants are inside the loop's frame only through
  such an edge (``^.../input_control_node``, a ``NoOp`` on the loop's pivot); without it TensorFlow
  refuses the graph ("has inputs from different frames").
* ``CheckNumerics``, ``StopGradient`` and ``PreventGradient`` are bypassed: at inference each is
  the identity on its first input.
* Control edges from training-only nodes (assigns, optimizer applies, savers, summaries) are
  dropped; the nodes themselves then fall to dead pruning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfopt.graph import Model, consumers, is_control, node_map, remove_nodes, set_inputs, tensor_node
from tfopt.loaders.training_nodes import is_training_node
from tfopt.passes.base import Pass, PassResult, copy_graph, protected_nodes

DELETE_OPS = frozenset({"Assert", "NoOp"})
BYPASS_OPS = frozenset({"CheckNumerics", "CheckNumericsV2", "StopGradient", "PreventGradient"})


class StripTrainingOps(Pass):
    name = "strip_training_ops"

    def run(self, model: Model) -> PassResult:
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        keep = protected_nodes(model)
        users = consumers(graph_def)
        drop = {n.name for n in graph_def.node if n.op in DELETE_OPS and n.name not in keep}
        training = {n.name for n in graph_def.node if is_training_node(n) and n.name not in keep}
        changed = False
        for node in graph_def.node:
            if node.op in BYPASS_OPS and node.name not in keep:
                source = node.input[0]
                while nodes[tensor_node(source)].op in BYPASS_OPS and tensor_node(source) not in keep:
                    source = nodes[tensor_node(source)].input[0]  # a chain of bypassed ops
                for user, idx in users.get(node.name, []):
                    if not is_control(user.input[idx]):
                        user.input[idx] = source
                        changed = True
                drop.add(node.name)
        gone = drop | training
        for node in graph_def.node:
            new = [r for r in node.input if not (is_control(r) and tensor_node(r) in gone)]
            new += [r for r in _waited_on(node, nodes, drop, gone) if r not in new]
            if new != list(node.input):
                set_inputs(node, new)
                changed = True
        if drop:
            remove_nodes(graph_def, drop)
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)


def _waited_on(node: Any, nodes: Mapping[str, Any], drop: set[str], gone: set[str]) -> list[str]:
    """The kept control inputs of the deleted ``NoOp`` nodes ``node`` waits on (through chains of them)."""
    out: list[str] = []
    seen: set[str] = set()
    stack = [tensor_node(r) for r in node.input if is_control(r) and tensor_node(r) in drop]
    while stack:
        name = stack.pop()
        if name in seen or nodes[name].op != "NoOp":
            continue
        seen.add(name)
        for r in nodes[name].input:
            if tensor_node(r) in drop:
                stack.append(tensor_node(r))
            elif tensor_node(r) not in gone:
                out.append("^" + tensor_node(r))
    return out
