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
from tfopt.graph import VARIABLE_OPS, Model, consumers
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
        skips: list[Skip] = []
        by_name = {n.name: n for n in graph_def.node}
        for name in variables:
            node = by_name[name]
            value = model.variable_values(name)
            dtype = node.attr["dtype"].type
            for user, idx in users.get(name, []):
                if user.input[idx].startswith("^"):
                    continue
                if user.op == "ReadVariableOp":
                    user.op = "Identity"
                    user.attr["T"].type = user.attr["dtype"].type
                    del user.attr["dtype"]
                elif user.op == "ResourceGather":
                    _to_gather(graph_def, user)
                elif node.op == "VarHandleOp" and not user.op.startswith(("Assign", "ResourceApply", "VarIsInitialized")):
                    skips.append(Skip(user.name, f"reads resource variable '{name}' through {user.op}, "
                                                 "which has no constant equivalent; left in place"))
            node.CopyFrom(make_const(name, value, dtype=dtype))
        return PassResult(model.replace(graph_def=graph_def), True, skips)


def _to_gather(graph_def: Any, node: Any) -> None:
    axis_name = node.name + "/axis"
    dtype = node.attr["dtype"].type
    tindices = node.attr["Tindices"].type
    batch_dims = node.attr["batch_dims"].i if "batch_dims" in node.attr else 0
    node.op = "GatherV2"
    node.attr.clear()
    node.attr["Tparams"].type = dtype
    node.attr["Tindices"].type = tindices
    node.attr["Taxis"].type = 3
    node.attr["batch_dims"].i = batch_dims
    node.input.insert(2, axis_name)
    graph_def.node.append(make_const(axis_name, 0, dtype="int32"))


