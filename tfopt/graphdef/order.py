"""Whole-graph orders over a GraphDef: a cycle check (with TF1 loops' back edges allowed) and the
canonical node order that makes every later stage independent of the order nodes came in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfopt.errors import GraphError
from tfopt.graph import node_map, tensor_node


def check_acyclic(graph_def: Any, what: str) -> None:
    """Raise :class:`GraphError` naming the nodes of a cycle. A v1 while loop's back edge
    (``NextIteration`` into ``Merge``) is how TensorFlow spells a loop, not a cycle."""
    nodes = node_map(graph_def)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in nodes:
        if root in state:
            continue
        path = [root]
        stack = [iter(_producers(nodes, root))]
        state[root] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                cycle = path[path.index(child):]
                raise GraphError(f"{what}: the graph has a cycle through {len(cycle)} node(s): "
                                 f"{' -> '.join([*reversed(cycle[-8:]), cycle[-1]])}{' ...' if len(cycle) > 8 else ''}; "
                                 "a GraphDef must be acyclic (only a while loop's NextIteration may feed back)")
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(_producers(nodes, child)))


def _producers(nodes: Mapping[str, Any], name: str) -> list[str]:
    node = nodes[name]
    found = [tensor_node(ref) for ref in node.input if tensor_node(ref) in nodes]
    if node.op in ("Merge", "RefMerge"):
        found = [p for p in found if nodes[p].op not in ("NextIteration", "RefNextIteration")]
    return found


def canonical_order(graph_def: Any) -> None:
    """Reorder ``graph_def``'s nodes (in place) topologically, ties broken by name, and its
    library functions by name: one order for one graph, whatever order it came in.

    TensorFlow's own exports are not stable: the same SavedModel's concrete function lists its
    captured constants in a different order in each process (Python's per-process string hashing),
    and every later pass, and tf2onnx, preserve or walk that order. A cycle (a TF1 ``while``
    loop's ``NextIteration -> Merge``) is entered at its smallest remaining name."""
    nodes = {n.name: n for n in graph_def.node}
    order = canonical_names(graph_def)
    ordered = [nodes[name] for name in order]
    del graph_def.node[:]
    graph_def.node.extend(ordered)
    functions = sorted(graph_def.library.function, key=lambda f: f.signature.name)
    if [f.signature.name for f in functions] != [f.signature.name for f in graph_def.library.function]:
        del graph_def.library.function[:]
        graph_def.library.function.extend(functions)


def canonical_names(graph_def: Any) -> list[str]:
    """``graph_def``'s node names in the canonical order (:func:`canonical_order`), without
    reordering it: Kahn's algorithm, the smallest ready name first."""
    import heapq

    nodes = {n.name: n for n in graph_def.node}
    waiting = {name: {tensor_node(r) for r in n.input} & nodes.keys() for name, n in nodes.items()}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for name, deps in waiting.items():
        for dep in deps:
            users[dep].append(name)
    ready = [name for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(nodes):
        if not ready:  # only cycles remain
            ready = [min(name for name in nodes if name not in placed)]
        name = heapq.heappop(ready)
        if name in placed:
            continue
        placed.add(name)
        order.append(name)
        for user in users[name]:
            waiting[user].discard(name)
            if not waiting[user] and user not in placed:
                heapq.heappush(ready, user)
    return order


def topological_rank(graph_def: Any) -> dict[str, int]:
    """Node name -> its position in the canonical order (producers first): the one topological
    order every stage sorts nodes by."""
    return {name: i for i, name in enumerate(canonical_names(graph_def))}
