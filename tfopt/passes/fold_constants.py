"""Fold subgraphs whose inputs are all constant, evaluated by TensorFlow itself.

``f(Const a, Const b)`` => ``Const(f(a, b))`` (same name), for every stateless, non-control-flow
op whose data inputs are constants; shape arithmetic folds too: ``Shape(x)``, ``Size(x)`` and
``Rank(x)`` become constants once ``x``'s static shape is fully known. The values come from one
TensorFlow session run over the foldable subgraph, so no op's math is re-implemented here.

Not folded (reported): results over ``MAX_BYTES`` (folding would bloat the file: ``Fill`` of a
large shape), and outputs of resource/variant type, which have no constant form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt._tf import GraphFacts, graph_session, make_const, tf
from tfopt.graph import (
    CONTROL_FLOW_V1_OPS,
    DT_INT32,
    DT_INT64,
    PLACEHOLDER_OPS,
    Model,
    ancestors,
    edge_ref,
    is_control,
    node_map,
    replace_nodes,
    set_inputs,
    subgraph,
    tensor_node,
    tensor_port,
)
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

MAX_BYTES = 16 << 20
SHAPE_OPS = frozenset({"Shape", "Size", "Rank"})
NEVER_FOLD = PLACEHOLDER_OPS | CONTROL_FLOW_V1_OPS | frozenset({
    "Const", "If", "StatelessIf", "While", "StatelessWhile", "PartitionedCall", "StatefulPartitionedCall",
    "Identity", "IdentityN", "NoOp",  # identities are remove_identity's job; folding them loses names
    # A QAT model's fake-quant ops are its quantization parameters: converters read them.
    "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "FakeQuantWithMinMaxArgs"})


class FoldConstants(Pass):
    """evaluate constant subgraphs and static shape arithmetic."""

    name = "fold_constants"

    def run(self, model: Model) -> PassResult:
        graph_def = model.graph_def
        nodes = node_map(graph_def)
        facts = GraphFacts(graph_def)
        shape_consts: dict[str, np.ndarray] = {}
        foldable: set[str] = set()
        # A call of a library function by its name is inline_calls' job, not ours (the function
        # may be stateful); unregistered op types also count as stateful, but say it outright.
        functions = {f.signature.name for f in graph_def.library.function}
        for node in _topological(graph_def):
            if node.op in NEVER_FOLD or node.op in functions or facts.is_stateful(node.op):
                continue
            if node.op in SHAPE_OPS and not any(is_control(r) for r in node.input):
                shape = facts.shape(node.input[0])
                if shape is not None and None not in shape:
                    shape_consts[node.name] = _shape_value(node, tuple(int(d) for d in shape if d is not None))
                continue
            data = [r for r in node.input if not is_control(r)]
            if len(data) != len(node.input):
                continue  # a control edge may carry deadness (a v1 cond branch): keep it
            if data and all(_plain_const(nodes[tensor_node(r)]) or tensor_node(r) in foldable
                            or tensor_node(r) in shape_consts for r in data) \
                    and all(d not in (tf().resource, tf().variant) for d in facts.dtypes(node.name)):
                foldable.add(node.name)
        if not foldable and not shape_consts:
            return PassResult(model, False)

        # Only the frontier (foldable tensors read by something not folded, or model outputs) is
        # materialised; the interior falls to dead pruning.
        outputs = {s.tensor for s in model.outputs}
        frontier: set[str] = set()
        for node in graph_def.node:
            if node.name in foldable:
                continue
            for ref in node.input:
                if not is_control(ref) and tensor_node(ref) in foldable:
                    frontier.add(f"{tensor_node(ref)}:{tensor_port(ref)}")
        frontier |= {t for t in outputs if tensor_node(t) in foldable}
        values = self._evaluate(graph_def, sorted(frontier), shape_consts)

        new = copy_graph(graph_def)
        skips: list[Skip] = []
        by_name = node_map(new)
        replaced: dict[str, str] = {}
        for tensor, value in zip(sorted(frontier), values):
            name, port = tensor_node(tensor), tensor_port(tensor)
            if value.nbytes > MAX_BYTES:
                skips.append(Skip(name, f"result is {value.nbytes >> 20} MiB; folding would bloat the graph"))
                continue
            dtype = facts.dtypes(name)[port].as_datatype_enum
            if port == 0:
                by_name[name].CopyFrom(make_const(name, value, dtype=dtype))
            else:
                const_name = f"{name}/folded_{port}"
                new.node.append(make_const(const_name, value, dtype=dtype))
                replaced[edge_ref(name, port)] = const_name
        for name, value in shape_consts.items():
            by_name[name].CopyFrom(make_const(name, value))
        for node in new.node:
            for i, ref in enumerate(node.input):
                if ref in replaced:
                    node.input[i] = replaced[ref]
        # The interior is now unread (only folded nodes read it); delete it here so the stats say
        # which pass removed it. With a skipped frontier node its inputs must stay: leave it all.
        if not skips:
            interior = foldable - {tensor_node(t) for t in frontier}
            kept = [n for n in new.node if n.name not in interior]
            for n in kept:
                refs = [r for r in n.input if tensor_node(r) not in interior]
                if len(refs) != len(n.input):  # only control edges can point into the interior
                    set_inputs(n, refs)
            replace_nodes(new, kept)
        return PassResult(model.replace(graph_def=new), True, skips)

    @staticmethod
    def _evaluate(graph_def: Any, tensors: list[str], shape_consts: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not tensors:
            return []
        t = tf()
        graph, needed = t.Graph(), subgraph(graph_def, ancestors(graph_def, tensors))
        with graph.as_default():  # only what the folded tensors need, not the whole model
            t.graph_util.import_graph_def(needed, name="")
        feeds = {f"{n}:0": v for n, v in shape_consts.items()}
        with graph_session(graph, needed) as sess:
            return [np.asarray(v) for v in sess.run(tensors, feed_dict=feeds)]


def _plain_const(node: Any) -> bool:
    """A Const with no control inputs: always live, so safe to fold through."""
    return node.op == "Const" and not any(is_control(r) for r in node.input)


def _shape_value(node: Any, shape: tuple[int, ...]) -> np.ndarray:
    out_type = node.attr["out_type"].type if "out_type" in node.attr else DT_INT32
    dtype = np.int64 if out_type == DT_INT64 else np.int32
    if node.op == "Shape":
        return np.array(shape, dtype=dtype)
    if node.op == "Size":
        return np.array(int(np.prod(shape)), dtype=dtype)
    return np.array(len(shape), dtype=np.int32)


def _topological(graph_def: Any) -> list[Any]:
    """Nodes with every data/control input before them (cycles, i.e. v1 loops, left at the end)."""
    nodes = node_map(graph_def)
    order: list[Any] = []
    state: dict[str, int] = {}
    for root in graph_def.node:
        stack = [(root.name, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(nodes[name])
                continue
            if state.get(name) or name not in nodes:
                continue
            state[name] = 1
            stack.append((name, True))
            stack.extend((tensor_node(r), False) for r in nodes[name].input if not state.get(tensor_node(r)))
    return order
