"""A GraphDef and the bodies its functional control flow runs, as one flat map of nodes to walk (read only).

An analysis that follows tensors from node to node (:mod:`tfopt.graphdef.axis_walk`) stops at a TF2
``While``: the loop's work is in library functions, whose inputs are arguments and whose tensors are
named ``node:output_arg:index``. Here each body called by a ``While``/``StatelessWhile``, an
``If``/``StatelessIf``/``Case`` branch or a ``PartitionedCall`` (and a direct function call) joins the
main graph's nodes, renamed ``<call node>/<function>/<node>``, with these joins in between:

    While(in_0..in_n, cond=C, body=B)     arg k of B and of C = Merge(in_k, B's result k)
                                          (iteration t+1 reads what iteration t returned);
                                          the While's output k = that same Merge
    If(p, in_1..in_n, T, E) / Case        arg k of each branch = Merge(in_{k+1}); output k =
                                          Merge(T's result k, E's result k)
    PartitionedCall(in_0..in_n, f)        arg k = Merge(in_k); output k = Merge(f's result k)

and the call node itself an ``IdentityN`` of its outputs' Merges, so ``call:k`` keeps its meaning.
``Merge`` and ``IdentityN`` hand a tensor on with its axes and tie no sizes, as the v1 loop ops do.
Nested calls are expanded the same way, to a depth of :data:`MAX_DEPTH`. A body TensorFlow cannot read
(an op it does not know) is left out: its call node stays as it is and the walk stops there, as before.

The bodies are the scopes of :class:`tfopt.graphdef.scopes.Scope`, seen another way: a scope is one body at a
time in the FunctionDef's own names (no TensorFlow), for walks that know they cross a call; this view inlines
them so that a walk written for one GraphDef runs through them unchanged, which needs each ``node:output_arg:index``
as a port number: TensorFlow's reader (it knows every op's output args) gives it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tfopt.graph import edge_ref, is_control, tensor_node, tensor_port
from tfopt.graphdef.calls import call_sites, callees, first_argument, library_of

MAX_DEPTH = 8
_WHILE = frozenset({"While", "StatelessWhile"})


@dataclasses.dataclass
class ViewNode:
    """A node of the flat view: a body node renamed, or a join made here (``attr`` empty)."""

    name: str
    op: str
    input: list[str]
    attr: Any = dataclasses.field(default_factory=dict)


def flat_nodes(graph_def: Any) -> dict[str, Any]:
    """Node name -> node: ``graph_def``'s own, and the bodies its calls run, joined (module docstring).
    A graph without calls gets its own nodes, unchanged."""
    nodes: dict[str, Any] = {n.name: n for n in graph_def.node}
    library = library_of(graph_def)
    calls = [n for n in graph_def.node if call_sites(n, library)]
    if not calls:
        return nodes
    bodies = _Bodies(graph_def)
    for node in calls:
        _expand(node, node.name, nodes, library, bodies, 0)
    return nodes


class _Bodies:
    """Each function's body as a GraphDef (arguments as Placeholders), read once by TensorFlow."""

    def __init__(self, graph_def: Any):
        self.graph_def = graph_def
        self.read: dict[str, tuple[Any, Mapping[str, str]] | None] = {}
        self.graph: Any = None

    def __call__(self, fdef: Any) -> tuple[Any, Mapping[str, str]] | None:
        name = fdef.signature.name
        if name not in self.read:
            self.read[name] = self._read(fdef)
        return self.read[name]

    def _read(self, fdef: Any) -> tuple[Any, Mapping[str, str]] | None:
        from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

        from tfopt._tf import graph_def_class
        from tfopt._tf import tf as _tf

        tf = _tf()
        unreadable = (ValueError, KeyError, TypeError, RuntimeError, tf.errors.OpError)  # an op TensorFlow does not know
        if self.graph is None:  # the reader checks that the functions a body calls are known to its graph
            self.graph, library_only = tf.Graph(), graph_def_class()()
            library_only.library.CopyFrom(self.graph_def.library)
            try:
                with self.graph.as_default():
                    tf.graph_util.import_graph_def(library_only, name="")
            except unreadable:  # one body TensorFlow cannot read: the others that call no function still can
                self.graph = tf.Graph()
        try:
            with self.graph.as_default():
                return function_def_to_graph_def(fdef)
        except unreadable:
            return None


def _expand(call: Any, name: str, nodes: dict[str, Any], library: Mapping[str, Any], bodies: _Bodies, depth: int) -> None:
    """Put the bodies ``call`` (named ``name`` in the view) runs into ``nodes``, joined to its inputs and outputs."""
    offset = first_argument(call, library)
    if depth >= MAX_DEPTH or offset is None:
        return
    inputs = [r for r in call.input if not is_control(r)][offset:]
    read = [(f, bodies(library[f])) for f in callees(call, library)]
    if not read or any(body is None for _, body in read):
        return
    joins: list[list[str]] = []  # output k -> the refs joined there
    arg_joins: dict[int, str] = {}
    for fname, body in read:
        graph, flat = body  # type: ignore[misc]
        fdef = library[fname]
        prefix = f"{name}/{fname}/"
        results = [_renamed(prefix, flat[fdef.ret[a.name]]) for a in fdef.signature.output_arg]
        is_body = call.op in _WHILE and fname == call.attr["body"].func.name
        for k, arg in enumerate(fdef.signature.input_arg):
            outer = [inputs[k]] if k < len(inputs) else []
            if call.op in _WHILE:  # the loop-carried value: what the body returned for argument k
                outer += [_renamed(f"{name}/{call.attr['body'].func.name}/", _ret(library, call, k, bodies))]
            nodes[prefix + arg.name] = ViewNode(prefix + arg.name, "Merge", [r for r in outer if r])
            if is_body:
                arg_joins[k] = prefix + arg.name
        for body_node in graph.node:
            if body_node.op == "Placeholder" and body_node.name in {a.name for a in fdef.signature.input_arg}:
                continue
            renamed = ViewNode(prefix + body_node.name, body_node.op,
                               [("^" + prefix + tensor_node(r)) if is_control(r) else _renamed(prefix, r)
                                for r in body_node.input], body_node.attr)
            nodes[renamed.name] = renamed
            if call_sites(body_node, library):
                _expand(body_node, renamed.name, nodes, library, bodies, depth + 1)
        if not (call.op in _WHILE and not is_body):  # a While's cond returns its predicate only
            for k, ref in enumerate(results):
                joins.extend([] for _ in range(k + 1 - len(joins)))
                joins[k].append(ref)
    outputs = [arg_joins[k] for k in sorted(arg_joins)] if call.op in _WHILE else []
    if call.op not in _WHILE:
        for k, refs in enumerate(joins):
            nodes[f"{name}/output_{k}"] = ViewNode(f"{name}/output_{k}", "Merge", refs)
            outputs.append(f"{name}/output_{k}")
    nodes[name] = ViewNode(name, "IdentityN", outputs)


def _ret(library: Mapping[str, Any], call: Any, k: int, bodies: _Bodies) -> str:
    """The flat name (inside the body's own graph) of what a While body returns for argument ``k``."""
    fdef = library[call.attr["body"].func.name]
    body = bodies(fdef)
    outs = fdef.signature.output_arg
    if body is None or k >= len(outs):
        return ""
    return body[1][fdef.ret[outs[k].name]]


def _renamed(prefix: str, ref: str) -> str:
    return edge_ref(prefix + tensor_node(ref), tensor_port(ref)) if ref else ""
