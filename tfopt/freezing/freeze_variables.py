"""Variables become constants.

TF1 reference variables: ``VariableV2(name=v)`` => ``Const(name=v, value=checkpoint[v])``; its
``v/read`` Identity then reads the constant. Resource variables:
``VarHandleOp(v) -> ReadVariableOp(r)`` => ``Const(v) -> Identity(r)``, and
``ResourceGather(v, ids)`` => ``GatherV2(Const(v), ids, axis=0)`` (:mod:`tfopt.external.resources`).
Any other consumer of a resource handle (an Assign, an optimizer apply) is training-only and is
left for pruning. A variable the loader kept outside the graph (``model.external``, too large for
a GraphDef: :mod:`tfopt.external`) becomes its ``ImmutableConst`` instead of a ``Const``.
TF2 sources arrive with their variables already converted (TensorFlow's own converter resolves
captured resources inside function bodies), so this pass then changes nothing.
"""

from __future__ import annotations

from tfopt._tf import make_const
from tfopt.errors import GraphError
from tfopt.external.resources import read_as_value
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
        by_name = {n.name: n for n in graph_def.node}
        skips: list[Skip] = []
        changed = False
        for name in variables:
            node = by_name[name]
            dtype = node.attr["dtype"].type
            blocker = read_as_value(graph_def, name, dtype, users) if node.op == "VarHandleOp" else None
            if blocker is not None:
                skips.append(Skip(name, f"read by {blocker.op} '{blocker.name}', which has no constant "
                                        "equivalent; variable left in place"))
                continue
            if model.external is not None and name in model.external:
                node.CopyFrom(model.external.node(name))
            else:
                node.CopyFrom(make_const(name, model.variable_values(name), dtype=dtype))
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)
