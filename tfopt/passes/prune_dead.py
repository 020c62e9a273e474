"""Keep only what the outputs need.

Nodes not reachable backwards from the outputs (data and control edges) are removed, as are
control edges whose source has no inputs (a Const or a bare NoOp is always ready, so waiting on it
orders nothing), and library functions no remaining node calls.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import Model, ancestors, is_control, node_map, subgraph, tensor_node
from tfopt.graphdef.calls import callees, library_of
from tfopt.passes.base import Pass, PassResult, copy_graph


class PruneDead(Pass):
    """drop nodes the outputs do not need."""

    name = "prune_dead"

    def run(self, model: Model) -> PassResult:
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        changed = False
        for node in graph_def.node:
            new = [r for r in node.input
                   if not (is_control(r) and tensor_node(r) in nodes and not nodes[tensor_node(r)].input)]
            if len(new) != len(node.input):
                del node.input[:]
                node.input.extend(new)
                changed = True
        keep = ancestors(graph_def, [s.tensor for s in model.outputs]) | {s.node for s in model.inputs}
        if len(keep) < len(graph_def.node):
            graph_def = subgraph(graph_def, keep)
            changed = True
        changed |= prune_library(graph_def) > 0
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)


def called_functions(graph_def: Any, *, gradients: bool = False) -> set[str]:
    """Names of library functions reachable from the graph's nodes (through nested bodies too); with
    ``gradients``, each reached function's registered gradient too (TensorFlow imports it with the function)."""
    library = library_of(graph_def)
    registered = {g.function_name: g.gradient_func for g in graph_def.library.gradient} if gradients else {}
    found: set[str] = set()
    pending = [name for node in graph_def.node for name in callees(node, library)]
    while pending:
        name = pending.pop()
        if name in found or name not in library:
            continue
        found.add(name)
        pending += [callee for node in library[name].node_def for callee in callees(node, library)]
        pending += [registered[name]] if name in registered else []
    return found


def prune_library(graph_def: Any, *, gradients: bool = False) -> int:
    """Drop the library functions the graph does not reach (:func:`called_functions`) and their gradient
    entries, in place; how many functions were dropped."""
    used = called_functions(graph_def, gradients=gradients)
    unused = [f for f in graph_def.library.function if f.signature.name not in used]
    if not unused:
        return 0
    kept = [f for f in graph_def.library.function if f.signature.name in used]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)
    kept_grads = [g for g in graph_def.library.gradient if g.function_name in used]
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(kept_grads)
    return len(unused)
