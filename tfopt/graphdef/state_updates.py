"""State updates no output reads: drop them before a frozen graph is built; refuse the ones an output reads.

A TF2 function may write its own variables: Keras 3's ``RNN.call`` draws the cells' dropout masks on every
call, ``training=False`` included, and each draw advances an int64 ``seed_generator_state`` with an
``AssignVariableOp``. TensorFlow's ``convert_variables_to_constants_v2`` turns the variable into a
``Const`` and then cannot import the assign ("incompatible with expected resource").

Pattern, on the converted (inlined) GraphDef, per variable ``v`` (a ``Const`` that was a captured variable):

    Assign{,Add,Sub}VariableOp(v, value)   with no data path from any read of v to an output
      -> removed, with the ops that fed only it (``value`` and its own reads) and every control edge to it

Outputs then compute exactly what they computed before: an output depends on ``v`` only through data
edges from reads of ``v`` (control edges order ops, they carry no values), and none exists. When one does
exist (a counter the output reads, a running statistic), the frozen graph would hold one value of a
variable the model changes on every call: :class:`~tfopt.errors.StatefulModelError` names the variable and
the op that writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tfopt.errors import StatefulModelError
from tfopt.graph import ancestors, consumers, is_control, node_map, tensor_node

STATE_UPDATE_OPS = frozenset({"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"})
_PASS_THROUGH = frozenset({"Identity", "IdentityN"})


@dataclass(frozen=True)
class DroppedUpdate:
    """One removed state update: the op, the variable it wrote and the layer (name scope) it belongs to."""

    op: str
    node: str
    variable: str

    def as_dict(self) -> dict[str, str]:
        return {"op": self.op, "node": self.node, "variable": self.variable, "layer": layer_of(self.node)}


def layer_of(node: str) -> str:
    """The name scope of ``node`` (Keras names an op ``model/layer/.../op``)."""
    return node.rpartition("/")[0] or node


def drop_unread_state_updates(graph_def: Any, outputs: Iterable[str], *,
                              variable_names: Mapping[str, str] | None = None) -> list[DroppedUpdate]:
    """Remove, in place, every state update on a frozen variable that no output reads.

    Args:
        graph_def: the converter's GraphDef (variables already ``Const``), top level only: an update
            inside a loop body stays and TensorFlow's own error reports it.
        outputs: the output tensors (``name:port``).
        variable_names: ``Const`` node name -> the variable's name, for messages and the record.

    Returns:
        What was removed, one record per update, in graph order.

    Raises:
        StatefulModelError: an output reads (through data edges) a variable the graph writes.
    """
    names = dict(variable_names or {})
    nodes = node_map(graph_def)
    updates = [n for n in graph_def.node if n.op in STATE_UPDATE_OPS and n.input
               and _source(nodes, n.input[0]).op == "Const"]
    if not updates:
        return []
    read = ancestors(graph_def, outputs, follow_control=False)  # control edges carry no value
    stateful = [u for u in updates if _source(nodes, u.input[0]).name in read]
    if stateful:
        lines = [f"{u.op} '{u.name}' writes variable '{_name(names, nodes, u)}' (layer '{layer_of(u.name)}')"
                 for u in stateful]
        raise StatefulModelError(
            "the model's outputs read a variable its own call changes, so a frozen graph (one value of it) "
            f"would answer differently on the next call: {'; '.join(lines)}. Freeze a model whose inference "
            "call does not write state that the outputs read (pass the value in as an input, or rebuild the "
            "layer without its update and save again)",
            variables=[_name(names, nodes, u) for u in stateful])
    dropped = [DroppedUpdate(u.op, u.name, _name(names, nodes, u)) for u in updates]
    _remove_with_feeders(graph_def, {u.name for u in updates}, keep=read)
    return dropped


def _source(nodes: Mapping[str, Any], ref: str) -> Any:
    """The node a tensor comes from, through Identity chains."""
    node = nodes[tensor_node(ref)]
    while node.op in _PASS_THROUGH and node.input and not is_control(node.input[0]):
        node = nodes[tensor_node(node.input[0])]
    return node


def _name(names: Mapping[str, str], nodes: Mapping[str, Any], update: Any) -> str:
    const = _source(nodes, update.input[0]).name
    return names.get(const, const)


def _remove_with_feeders(graph_def: Any, doomed: set[str], *, keep: set[str]) -> None:
    """Remove ``doomed``, then every node left with no consumer that fed only removed nodes (never one in
    ``keep``: the outputs' data ancestors), and the control edges to anything removed."""
    users = consumers(graph_def)
    nodes = node_map(graph_def)
    removed: set[str] = set()
    frontier = set(doomed)
    while frontier:
        removed |= frontier
        candidates = {tensor_node(i) for name in frontier for i in nodes[name].input} - removed - keep
        frontier = {c for c in candidates if c in nodes and users.get(c)
                    and all(u.name in removed for u, _ in users[c])}
    kept = [n for n in graph_def.node if n.name not in removed]
    for n in kept:
        live = [i for i in n.input if tensor_node(i) not in removed]
        if len(live) != len(n.input):
            del n.input[:]
            n.input.extend(live)
    del graph_def.node[:]
    graph_def.node.extend(kept)
