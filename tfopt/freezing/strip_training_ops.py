"""Remove what only matters while training.

* ``Assert`` and ``NoOp`` nodes are deleted with every control edge on them (asserts guard
  training-time invariants; NoOps group update/init ops).
* ``CheckNumerics``, ``StopGradient`` and ``PreventGradient`` are bypassed: at inference each is
  the identity on its first input.
* Control edges from training-only nodes (assigns, optimizer applies, savers, summaries) are
  dropped; the nodes themselves then fall to dead pruning.
"""

from __future__ import annotations

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
        for node in graph_def.node:
            new = [r for r in node.input
                   if not (is_control(r) and (tensor_node(r) in drop or tensor_node(r) in training))]
            if len(new) != len(node.input):
                set_inputs(node, new)
                changed = True
        if drop:
            remove_nodes(graph_def, drop)
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)
