"""Readers of a resource handle rewritten to read a value, so the handle's node can become the value.

``ReadVariableOp(h)`` => ``Identity(h)``; a resource-typed ``Identity(h)`` carries the value;
``ResourceGather(h, ids)`` => ``GatherV2(h, ids, axis=0)``. A handle that enters a TF1 ``while_loop``
(``Enter(h, T=resource)``, a ``dynamic_rnn`` reading its weights in the body) or passes a ``Switch``
carries the value the same way: its ``T`` becomes the value's dtype, as TensorFlow's own
``convert_variables_to_constants`` does (``_Enter``/``_Switch`` in ``convert_to_constants.py``), and
the readers behind it are rewritten; nested loops chain ``Enter`` nodes. The handle's node is then replaced by
the value's node (a ``Const``, or the ``ImmutableConst`` of a tensor kept outside the graph) under
the same name, so no consumer is rewired. Any other consumer (an Assign, an optimizer apply) is
training-only and left for pruning; an inference op with no value form blocks the rewrite.
"""

from __future__ import annotations

from typing import Any

from tfopt._tf import make_const
from tfopt.external.resource_calls import CALLERS, Plan, apply, walk_call
from tfopt.graph import DT_INT32, consumers, rewrite_node, tensor_port
from tfopt.graphdef.calls import ref_node
from tfopt.loaders.training_nodes import is_training_node

# Ops that pass a resource handle on unchanged (into a loop frame, down a cond branch): given the value
# instead, they pass the value on.
PASS_THROUGH = frozenset({"Identity", "Enter", "RefEnter", "Switch", "RefSwitch"})


def read_as_value(graph_def: Any, name: str, dtype: int, users: dict[str, list[tuple[Any, int]]] | None = None) -> Any:
    """Rewrite every reader of resource ``name`` (through Identity chains, and into the functions of the
    loops, branches and calls it is passed to: :mod:`tfopt.external.resource_calls`) to read a ``dtype`` value.

    Args:
        users: :func:`~tfopt.graph.consumers` of ``graph_def``, when the caller rewrites many handles.

    Returns:
        ``None`` when done, else the first reader that has no value form (nothing changed then).
    """
    users = users if users is not None else consumers(graph_def)
    library = {f.signature.name: f for f in graph_def.library.function}
    plan = Plan()

    def scope_users(scope: Any, source: str) -> list[tuple[Any, int]]:
        if scope is graph_def:
            return users.get(source, [])
        return [(n, i) for n in scope.node_def for i, ref in enumerate(n.input) if ref_node(ref) == source]

    def walk(scope: Any, source: str, port: int | None) -> Any:
        for user, idx in scope_users(scope, source):
            ref = user.input[idx]
            if ref.startswith("^") or (port is not None and tensor_port(ref) != port):
                continue
            key = (id(scope), f"{user.name}:{idx}")
            if key in plan.seen:
                continue
            plan.seen.add(key)
            if user.op in PASS_THROUGH:
                plan.typed.append(user)
                plan.carried.setdefault(id(scope), set()).add(user.name)
                blocker = walk(scope, user.name, None)
            elif user.op in ("ReadVariableOp", "ResourceGather"):
                plan.reads.append((user, scope))
                blocker = None
            elif user.op in CALLERS:
                blocker = walk_call(user, idx, scope, library, plan, walk)
            elif is_training_node(user) or user.op.startswith(("Assign", "VarIsInitialized")):
                blocker = None
            else:
                blocker = user
            if blocker is not None:
                return blocker
        return None

    blocker = walk(graph_def, name, None)
    if blocker is not None:
        return blocker
    apply(plan, dtype, lambda scope, node: _to_gather(scope, node, in_function=scope is not graph_def))
    return None


def _to_gather(scope: Any, node: Any, *, in_function: bool) -> None:
    axis_name = node.name + "/axis"
    axis_ref = f"{axis_name}:output:0" if in_function else axis_name
    rewrite_node(node, "GatherV2", inputs=[*node.input[:2], axis_ref, *node.input[2:]],
                 types={"Tparams": node.attr["dtype"].type, "Tindices": node.attr["Tindices"].type,
                        "Taxis": DT_INT32},
                 ints={"batch_dims": node.attr["batch_dims"].i if "batch_dims" in node.attr else 0})
    (scope.node_def if in_function else scope.node).append(make_const(axis_name, 0, dtype="int32"))
