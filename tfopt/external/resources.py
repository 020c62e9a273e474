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
from tfopt.graph import DT_INT32, consumers, rewrite_node
from tfopt.loaders.training_nodes import is_training_node

# Ops that pass a resource handle on unchanged (into a loop frame, down a cond branch): given the value
# instead, they pass the value on.
PASS_THROUGH = frozenset({"Identity", "Enter", "RefEnter", "Switch", "RefSwitch"})


def read_as_value(graph_def: Any, name: str, dtype: int, users: dict[str, list[tuple[Any, int]]] | None = None) -> Any:
    """Rewrite every reader of resource ``name`` (through Identity chains) to read a ``dtype`` value.

    Args:
        users: :func:`~tfopt.graph.consumers` of ``graph_def``, when the caller rewrites many handles.

    Returns:
        ``None`` when done, else the first reader that has no value form (nothing changed then).
    """
    readers, blocker = _resource_readers(users if users is not None else consumers(graph_def), name)
    if blocker is not None:
        return blocker
    for reader in readers:
        if reader.op in PASS_THROUGH:  # a resource-typed Identity/Enter/Switch now carries the value
            reader.attr["T"].type = dtype
        elif reader.op == "ReadVariableOp":
            reader.op = "Identity"
            reader.attr["T"].type = reader.attr["dtype"].type
            del reader.attr["dtype"]
        else:
            _to_gather(graph_def, reader)
    return None


def _resource_readers(users: dict[str, list[tuple[Any, int]]], name: str) -> tuple[list[Any], Any]:
    """Nodes reading resource ``name`` (through :data:`PASS_THROUGH` chains), or the first one that
    can't be converted. Assigns and optimizer applies are training-only and ignored (pruned later)."""
    readers, stack, seen = [], [name], set()
    while stack:
        for user, idx in users.get(stack.pop(), []):
            if user.input[idx].startswith("^") or user.name in seen:
                continue
            seen.add(user.name)
            if user.op in PASS_THROUGH:
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
