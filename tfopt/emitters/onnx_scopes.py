"""ONNX graphs and their subgraphs as nested scopes, for every post-conversion rewrite.

A ``Loop``/``Scan`` body or an ``If`` branch is a graph of its own that reads names of the graphs
around it (outer scope): tf2onnx's while-loop bodies read the loop's invariants, weights and
shapes that way. ONNX keeps every name single-assignment across the nesting (the checker rejects a
subgraph that redefines an outer name), so a name resolves to the innermost graph that defines it
and is read wherever it appears below. A rewrite that looks only at the main graph therefore
misses readers (a node it removes may still be read inside a body) and misses work (a body's own
nodes and initializers); :func:`graphs` hands every graph over with the initializers it can see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def subgraphs(node: Any) -> list[Any]:
    """The graphs held in ``node``'s attributes (a Loop's body, an If's two branches)."""
    out = []
    for attr in node.attribute:
        if attr.HasField("g"):
            out.append(attr.g)
        out.extend(attr.graphs)
    return out


def graphs(graph: Any, outer: dict[str, Any] | None = None) -> Iterator[tuple[Any, dict[str, Any]]]:
    """``(graph, visible initializers)`` for ``graph`` and then, depth first in node order, every
    subgraph. Visible initializers are the graph's own over those of the graphs around it.

    A caller may rewrite each graph when it gets it: its subgraphs are read only after that, from
    the rewritten nodes (protobuf copies a node that is re-added, so a list taken before is stale).
    """
    yield graph, {**(outer or {}), **{t.name: t for t in graph.initializer}}
    visible = {**(outer or {}), **{t.name: t for t in graph.initializer}}  # with what the caller added
    for node in graph.node:
        for sub in subgraphs(node):
            yield from graphs(sub, visible)


def reads(node: Any) -> list[str]:
    """The names ``node`` reads: its inputs, then every name read inside its subgraphs (a superset
    of the outer names they read, which is what counting a tensor's readers needs)."""
    names = list(node.input)
    for sub in subgraphs(node):
        for inner in sub.node:
            names.extend(reads(inner))
        names.extend(o.name for o in sub.output)  # a body may return an outer tensor as it is
    return names


def readers(graph: Any) -> dict[str, list[Any]]:
    """``{tensor name: nodes of graph that read it}``, reads inside their subgraphs included."""
    out: dict[str, list[Any]] = {}
    for node in graph.node:
        for ref in reads(node):
            out.setdefault(ref, []).append(node)
    return out


def sort_topologically(graph: Any) -> int:
    """Put every graph's nodes in an order where each comes after the nodes whose outputs it (or a
    subgraph of it) reads, keeping the given order wherever it already is one; returns the graphs
    reordered. ONNX requires this order, ONNX Runtime does not: ONNX Runtime's float16 converter
    appends its input casts at the end of the node list, and the file loads, but fails ONNX's checker.
    A graph with a cycle is left as it is (the checker names it)."""
    import heapq

    reordered = 0
    for scope, _ in graphs(graph):
        nodes = list(scope.node)
        producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
        needs = [{producer[r] for r in reads(node) if r in producer and producer[r] != i}
                 for i, node in enumerate(nodes)]
        waiting_on = [len(n) for n in needs]
        unblocks: list[list[int]] = [[] for _ in nodes]
        for i, deps in enumerate(needs):
            for d in deps:
                unblocks[d].append(i)
        ready = [i for i, n in enumerate(waiting_on) if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:  # the lowest ready index first: a sorted graph keeps its order
            i = heapq.heappop(ready)
            order.append(i)
            for j in unblocks[i]:
                waiting_on[j] -= 1
                if waiting_on[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) == len(nodes) and order != list(range(len(nodes))):
            del scope.node[:]
            scope.node.extend(nodes[i] for i in order)
            reordered += 1
    return reordered
