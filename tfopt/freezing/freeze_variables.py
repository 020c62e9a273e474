"""Variables become constants.

TF1 reference variables: ``VariableV2(name=v)`` => ``Const(name=v, value=checkpoint[v])``; its
``v/read`` Identity then reads the constant. Resource variables:
``VarHandleOp(v) -> ReadVariableOp(r)`` => ``Const(v) -> Identity(r)``, and
``ResourceGather(v, ids)`` => ``GatherV2(Const(v), ids, axis=0)``. Any other consumer of a
resource handle (an Assign, an optimizer apply) is training-only and is left for pruning.
TF2 sources arrive with their variables already converted (TensorFlow's own converter resolves
captured resources inside function bodies), so this pass then changes nothing.
"""

from __future__ import annotations

from typing import Any

from tfopt._tf import make_const
from tfopt.errors import GraphError
from tfopt.graph import DT_INT32, VARIABLE_OPS, Model, consumers, rewrite_node
from tfopt.loaders.training_nodes import is_training_node
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph


class FreezeVariables(Pass):
    name = "freeze_variables"

    def run(self, model: Model) -> PassResult:
        variables = [n.name for n in model.graph_def.node if n.op in VARIABLE_OPS]
        if not variables:
            return PassResult(model, False)
        if model.variable_values is None:
            raise GraphError(f"variable '{variables[0]}' has no value source: load the model with its "
                             "checkpoint (the .meta with its .index/.data files)")
        graph_def = copy_graph(model.graph_def)
        users = consumers(graph_def)
        by_name = {n.name: n for n in graph_def.node}
        skips: list[Skip] = []
        changed = False
        for name in variables:
            node = by_name[name]
            dtype = node.attr["dtype"].type
            readers, blocker = _resource_readers(users, name) if node.op == "VarHandleOp" else ([], None)
            if blocker is not None:
                skips.append(Skip(name, f"read by {blocker.op} '{blocker.name}', which has no constant "
                                        "equivalent; variable left in place"))
                continue
            for reader in readers:
                if reader.op == "Identity":  # a resource-typed Identity now carries the value
                    reader.attr["T"].type = dtype
                elif reader.op == "ReadVariableOp":
                    reader.op = "Identity"
                    reader.attr["T"].type = reader.attr["dtype"].type
                    del reader.attr["dtype"]
                else:
                    _to_gather(graph_def, reader)
            node.CopyFrom(make_const(name, model.variable_values(name), dtype=dtype))
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)


def _resource_readers(users: dict[str, list[tuple[Any, int]]], name: str) -> tuple[list[Any], Any]:
    """Nodes reading resource ``name`` (through Identity chains), or the first one that can't be
    converted. Assigns and optimizer applies are training-only and ignored (pruned later)."""
    readers, stack, seen = [], [name], set()
    while stack:
        for user, idx in users.get(stack.pop(), []):
            if user.input[idx].startswith("^") or user.name in seen:
                continue
            seen.add(user.name)
            if user.op == "Identity":
                readers.append(user)
                stack.append(user.name)
            elif user.op in ("ReadVariableOp", "ResourceGather"):
                readers.append(user)
            elif not is_training_node(user) and not user.op.startswith(("Assign", "VarIsInitialized")):
                return [], user
    return readers, None


def _to_gather(graph_def: Any, node: Any) -> None:
    axis_name = node.name + "/axis"
    rewrite_node(node, "GatherV2", inputs=[*node.input[:2], axis_name, *node.input[2:]],
                 types={"Tparams": node.attr["dtype"].type, "Tindices": node.attr["Tindices"].type,
                        "Taxis": DT_INT32},
                 ints={"batch_dims": node.attr["batch_dims"].i if "batch_dims" in node.attr else 0})
    graph_def.node.append(make_const(axis_name, 0, dtype="int32"))


