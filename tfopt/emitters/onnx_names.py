"""Canonical names for what tf2onnx generates, so identical conversions give identical bytes.

tf2onnx numbers the names it makes from one counter (``Reshape__25``, ``const_fold_opt__34``,
a loop body's ``i__11``), and its optimizers create them in an order that varies with what ran
before. Each generated name is renamed by first appearance, walking the main graph's nodes in
order and each node's subgraphs (Loop/Scan bodies, If branches) where the node stands:

    generated initializer  const_fold_opt__34      ->  init__0, init__1, ...
    generated node/tensor  Reshape__25, ...__25:0  ->  Reshape__n0, Reshape__n0:0
    symbolic dimension     unk__37                 ->  unk__0

One map serves the whole model, applied to every occurrence in every scope: ONNX names are single
assignment across the nesting, so a body that reads an outer ``Shape__20:0`` is renamed with the
graph that defines it (renaming only the main graph left such reads dangling, and ONNX Runtime
rejected the file). The new names are checked against every name already in the model, so the
renaming is one-to-one and changes nothing but names. The main graph's inputs and outputs (the
interface) keep theirs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from tfopt.emitters.onnx_scopes import graphs, subgraphs

_COUNTER = re.compile(r"__\d+$")  # tf2onnx's generated-name suffix
_GENERATED = re.compile(r"(.*?__\d+)(:\d+)?")


def canonical_names(graph: Any) -> None:
    """Rename generated initializers, then generated node/tensor ids, in ``graph`` and all its
    subgraphs (in place), and sort every graph's initializers by name."""
    taken = _all_names(graph)
    interface = {v.name for v in graph.input} | {v.name for v in graph.output}
    generated = {t.name for g in _graphs(graph) for t in g.initializer if _COUNTER.search(t.name)} - interface
    rename: dict[str, str] = {}
    for ref in _reads_in_order(graph):
        if ref in generated and ref not in rename:
            rename[ref] = _fresh("init__{}", len(rename), taken)  # no base name: deduplication keeps either one
    _apply(graph, lambda name: rename.get(name, name), nodes=False)
    sort_initializers(graph)

    interface |= {t.name for g in _graphs(graph) for t in g.initializer}  # canonical by now
    ids: dict[str, str] = {}

    def canon(name: str) -> str:
        match = None if name in interface else _GENERATED.fullmatch(name)
        if not match:
            return name
        ident = match.group(1)
        if ident not in ids:
            ids[ident] = _fresh(_COUNTER.sub("", ident) + "__n{}", len(ids), taken)
        return ids[ident] + (match.group(2) or "")

    _apply(graph, canon, nodes=True)
    dims: dict[str, str] = {}  # symbolic dimensions ("unk__37") come from the same counter
    for g in _graphs(graph):
        for value in [*g.input, *g.output, *g.value_info]:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param and _COUNTER.search(dim.dim_param):
                    dim.dim_param = dims.setdefault(dim.dim_param, f"unk__{len(dims)}")


def sort_initializers(graph: Any) -> None:
    """Every graph's initializers in name order (subgraphs included)."""
    for g in _graphs(graph):
        ordered = sorted(g.initializer, key=lambda t: t.name)
        del g.initializer[:]
        g.initializer.extend(ordered)


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph, depth first in node order (:func:`onnx_scopes.graphs`)."""
    return (g for g, _ in graphs(graph))


def _reads_in_order(graph: Any) -> Iterator[str]:
    """Every name a node reads, in node order, a node's subgraphs read where the node stands."""
    for node in graph.node:
        yield from node.input
        for sub in subgraphs(node):
            yield from _reads_in_order(sub)


def _all_names(graph: Any) -> set[str]:
    names: set[str] = set()
    for g in _graphs(graph):
        names.update(v.name for v in [*g.input, *g.output, *g.value_info, *g.initializer])
        for node in g.node:
            names.update([node.name, *node.input, *node.output])
    return names


def _fresh(pattern: str, start: int, taken: set[str]) -> str:
    """``pattern`` with the first number from ``start`` on that names nothing in the model yet."""
    k = start
    while pattern.format(k) in taken:
        k += 1
    taken.add(pattern.format(k))
    return pattern.format(k)


def _apply(graph: Any, canon: Callable[[str], str], *, nodes: bool) -> None:
    """``canon`` on every value name in ``graph`` (initializers, node inputs and outputs, value_info,
    a subgraph's inputs and outputs; a node's subgraphs where the node stands), and with ``nodes``
    on node and subgraph names too (their own namespace). The main graph's inputs and outputs are
    the interface: ``canon`` keeps them."""
    for tensor in graph.initializer:
        tensor.name = canon(tensor.name)
    for node in graph.node:
        if nodes:
            node.name = canon(node.name)
        for i, ref in enumerate(node.output):
            node.output[i] = canon(ref)
        for i, ref in enumerate(node.input):
            node.input[i] = canon(ref)
        for sub in subgraphs(node):
            if nodes:
                sub.name = canon(sub.name)
            for value in [*sub.input, *sub.output]:
                value.name = canon(value.name)
            _apply(sub, canon, nodes=nodes)
    for value in graph.value_info:
        value.name = canon(value.name)
