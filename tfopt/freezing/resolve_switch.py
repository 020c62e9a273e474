"""Resolve v1 control flow whose predicate is a constant (``tf.cond`` in TF1 graphs).

``Switch(data, pred=Const p)`` forwards ``data`` on port ``int(p)``; the other port is *dead*.
Deadness propagates as in TensorFlow's executor: a node with a dead data or control input is
dead, except ``Merge``, which is dead only when all of its inputs are. Then:

* consumers of the live Switch port read ``data`` directly;
* a Merge with exactly one live input becomes ``Identity(live input)`` (same name, so ``m:0``
  consumers need no rewiring); ``m:1`` (value_index) becomes a constant;
* dead nodes are deleted.

Iterated to a fixed point over the whole graph, so loops (NextIteration back edges) need no
topological order. Switches whose predicate is not a constant are left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt._tf import const_value, make_const
from tfopt.graph import (
    Model,
    control_inputs,
    is_control,
    node_map,
    replace_nodes,
    rewire,
    rewrite_node,
    set_inputs,
    tensor_node,
    tensor_port,
)
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

SWITCH_OPS = ("Switch", "RefSwitch")
MERGE_OPS = ("Merge", "RefMerge")


def constant_predicate(nodes: dict[str, Any], ref: str) -> bool | None:
    node = nodes.get(tensor_node(ref))
    if node is None or node.op != "Const":
        return None
    value = const_value(node)
    return bool(value) if value.size == 1 else None


class ResolveSwitch(Pass):
    name = "resolve_switch"

    def run(self, model: Model) -> PassResult:
        nodes = node_map(model.graph_def)
        live_port = {}
        for node in model.graph_def.node:
            if node.op in SWITCH_OPS:
                pred = constant_predicate(nodes, node.input[1])
                if pred is not None:
                    live_port[node.name] = int(pred)
        if not live_port:
            return PassResult(model, False)

        dead = self._propagate(model.graph_def, live_port)
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        skips: list[Skip] = []
        protected = {s.node for s in model.outputs}
        if dead & protected:
            name = sorted(dead & protected)[0]
            return PassResult(model, False, [Skip(name, "output lies in a branch the constant predicate disables; not resolved")])
        for name, port in live_port.items():
            data = nodes[name].input[0]
            rewire(graph_def, f"{name}:{port}", data)
            for n in graph_def.node:  # control edges on the Switch now wait on its data source
                for i, ref in enumerate(n.input):
                    if is_control(ref) and tensor_node(ref) == name:
                        n.input[i] = "^" + tensor_node(data)
        for node in list(graph_def.node):
            if node.op in MERGE_OPS and node.name not in dead:
                data = [r for r in node.input if not is_control(r)]
                live = [r for r in data if not _dead_edge(r, dead, live_port)]
                if len(live) == len(data):
                    continue
                if len(live) == 1:
                    self._merge_to_identity(graph_def, node, live[0], data.index(live[0]))
                else:  # still a real Merge, over fewer inputs
                    controls = [r for r in node.input if is_control(r)]
                    del node.input[:]
                    node.input.extend([*live, *controls])
                    node.attr["N"].i = len(live)
        removed = dead | set(live_port)
        kept = [n for n in graph_def.node if n.name not in removed]
        for n in kept:
            set_inputs(n, [r for r in n.input if tensor_node(r) not in removed or not is_control(r)])
        replace_nodes(graph_def, kept)
        return PassResult(model.replace(graph_def=graph_def), True, skips)

    @staticmethod
    def _propagate(graph_def: Any, live_port: dict[str, int]) -> set[str]:
        dead: set[str] = set()
        changed = True
        while changed:
            changed = False
            for node in graph_def.node:
                if node.name in dead:
                    continue
                if node.op in MERGE_OPS:
                    data = [r for r in node.input if not is_control(r)]
                    is_dead = all(_dead_edge(r, dead, live_port) for r in data)
                else:
                    is_dead = any(_dead_edge(r, dead, live_port) for r in node.input)
                if is_dead:
                    dead.add(node.name)
                    changed = True
        return dead

    @staticmethod
    def _merge_to_identity(graph_def: Any, node: Any, live: str, index: int) -> None:
        name = node.name
        rewire_index = f"{name}:1"
        if any(not is_control(r) and r == rewire_index for n in graph_def.node for r in n.input):
            const_name = f"{name}/value_index"
            graph_def.node.append(make_const(const_name, np.int32(index)))
            rewire(graph_def, rewire_index, const_name)
        rewrite_node(node, "Identity", inputs=[live, *control_inputs(node)], types={"T": node.attr["T"].type})


def _dead_edge(ref: str, dead: set[str], live_port: dict[str, int]) -> bool:
    src = tensor_node(ref)
    if src in dead:
        return True
    if src in live_port and not is_control(ref):
        return tensor_port(ref) != live_port[src]
    return False
