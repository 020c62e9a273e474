"""Indices into a table the model computes: the rows of a ``Gather`` whose params are not a constant
or a variable but a tensor of the graph, sized by the inputs.

A message-passing graph network gathers each node's neighbours, ``h[nlist]``, where ``h = dense(atoms)``
has one row per atom (nmrgnn's chemical-shift predictor): the valid range of ``nlist`` is ``[0, N)``, ``N``
the size of ``atoms``' first axis at whatever shapes verification makes up. A constant table's rows
(:func:`tfopt.verification.made_up_inputs.index_bounds`) do not apply, and the ``[0, 8)`` of an integer
tfopt knows nothing of fails as soon as ``N < 8``. So the bound is read where it is decided: once the
inputs' shapes are chosen, TensorFlow's shape inference on the graph at those shapes gives the size of
each such gather's axis (``GatherV2``'s ``axis`` input; 0 for ``Gather``; every axis when the graph
computes the axis), and the smallest of them bounds the index. A ``GatherNd``'s or a scatter's index
(``tensor_scatter_nd_add(h, idx, u)``, ``scatter_nd(idx, u, tf.shape(h))``) addresses the first k axes of
its table, k its last dimension, read there too: each component is bounded by its own axis when that
last axis is the index input's own (``pair [P, 2]`` into ``h [N, W]``: ``(N, W)``), else by the smallest.
Constant tables are sized here too (without shape inference for a plain gather's), so that the bound of
an input indexing both kinds is read in one place. A size shape inference cannot give (a table whose rows
depend on values) leaves the input to the usual draw, and the refusal to
:func:`tfopt.verification.made_up_inputs.random_inputs_rejected`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfopt.verification.made_up_inputs import (
    GATHERS,
    ND_GATHERS,
    Bound,
    gather_axis,
    gather_indexers,
    indices_input,
    smallest,
    table_dims,
    tighter,
)
from tfopt.verification.primes import PRIMES

Table = tuple[str, int | None]  # (the gather or scatter node, the axis it gathers along: negative from the end;
#   None: every axis may be the one, a GatherV2 axis the graph computes, or a GatherNd's or scatter's components)


def indexed_tables(graph_def: Any, computed_only: bool = False) -> dict[str, list[Table]]:
    """Placeholder name -> the gathers and scatters whose table it indexes (through the ops an index passes
    through on its way, :func:`tfopt.verification.made_up_inputs.gather_indexers`); ``computed_only``: only
    tables the model computes (not a constant or a variable)."""
    from tfopt.graph import node_map

    nodes = node_map(graph_def)
    out: dict[str, list[Table]] = {}
    for node in graph_def.node:
        if indices_input(node) is None or (computed_only and table_dims(nodes, node) is not None):
            continue
        axis = None if node.op in ND_GATHERS else gather_axis(nodes, node)
        for name in gather_indexers(graph_def, nodes, node):
            out.setdefault(name, []).append((node.name, axis))
    return out


def computed_tables(graph_def: Any) -> dict[str, list[Table]]:
    """Placeholder name -> the gathers and scatters whose computed table it indexes."""
    return indexed_tables(graph_def, computed_only=True)


def table_sizes(graph_def: Any, shapes: Mapping[str, Sequence[int | None]],
                tables: Mapping[str, list[Table]]) -> dict[str, Bound]:
    """Each index input's bound when the inputs have ``shapes``: the smallest of its tables' gathered axes,
    and for a ``GatherNd`` or a scatter whose index's last axis (k components) is the input's own last
    axis, each component below its own axis's size (one number otherwise: the smallest of the k). A
    constant table's size is its own; a computed one's, or a k, is read by shape inference at ``shapes``.
    An input none of whose tables is sized is left out."""
    from functools import reduce

    from tfopt._tf import GraphFacts
    from tfopt.graph import node_map, with_input_shapes

    nodes = node_map(graph_def)
    static = {t: _static_size(nodes, nodes[t[0]], t[1]) for found in tables.values() for t in found}
    inferred = None
    if any(v is None for v in static.values()):
        g = with_input_shapes(graph_def, {n: list(s) for n, s in shapes.items()},
                              ops=("Placeholder", "PlaceholderWithDefault"))
        try:
            inferred = GraphFacts(g).graph
        except Exception:  # shapes TensorFlow refuses statically: only constant tables are sized
            inferred = None
    out: dict[str, Bound] = {}
    for name, found in tables.items():
        last = shapes[name][-1] if shapes.get(name) else None
        sizes = [static[t] if static[t] is not None else _inferred_size(nodes, nodes[t[0]], t[1], inferred, last)
                 for t in found]
        known = [s for s in sizes if s is not None]
        if known:
            out[name] = reduce(tighter, known)
    return out


def _static_size(nodes: Mapping[str, Any], node: Any, axis: int | None) -> int | None:
    """A constant table's gathered axis (a ``Gather``'s; a ``GatherNd``'s components need k: None)."""
    return smallest(table_dims(nodes, node), axis) if node.op in GATHERS else None


def _inferred_size(nodes: Mapping[str, Any], node: Any, axis: int | None, inferred: Any,
                   last: int | None) -> Bound | None:
    """The bound shape inference gives ``node``'s indices (``last``: the index input's own last axis)."""
    if inferred is None:
        return None
    op = inferred.get_operation_by_name(node.name)
    if node.op in GATHERS:
        return smallest(_dims(op.inputs[0].shape), axis)  # axis None: every axis may be the one
    table = ND_GATHERS[node.op][0]
    dims = table_dims(nodes, node) or _dims(op.outputs[0].shape if table is None else op.inputs[table].shape)
    index = _dims(op.inputs[indices_input(node) or 0].shape)
    k = index[-1] if index else None
    addressed = dims[:k] if k is not None and 0 < k <= len(dims) else dims  # k unknown: every axis may be addressed
    if not addressed or None in addressed:
        return None
    sizes = tuple(int(d) for d in addressed if d is not None)
    return sizes if k is not None and last == k == len(sizes) else min(sizes)


def _dims(shape: Any) -> list[int | None]:
    return shape.as_list() if shape.rank is not None else []


_PROBES = [p for p in PRIMES if p > 1000]  # past any size the made-up shapes take


def cut_tables(graph_def: Any, axes: Mapping[str, int | None]) -> set[str]:
    """The inputs a sample cut on the batch axes would break: an index into a computed table whose
    gathered axis is the batch axis (a graph network's atoms), and the inputs that size it. One atom
    of ``atoms [N, F]`` with its neighbour list ``nlist [1, K]`` is no sample: the list still points
    at the other ``N - 1`` rows. Read by shape inference with every batch axis one prime (a table of
    another size gathers inside each sample: ``batch_dims=1``), then each its own prime to name the
    inputs that size the table; when shape inference refuses those (the batch axes meet in one op),
    every input with a batch axis goes whole beside the index. A table shape inference cannot size at
    all leaves the inputs cut into rows, as they were."""
    tables = computed_tables(graph_def)
    cut = {k: a for k, a in axes.items() if a is not None}
    if not tables or not cut:
        return set()
    common = table_sizes(graph_def, _probed(graph_def, cut, dict.fromkeys(cut, _PROBES[0])), tables)
    on_batch = [i for i in tables if _holds(common.get(i), _PROBES[0])]  # unsized: cut as before (no evidence)
    if not on_batch:
        return set()
    probes = dict(zip(sorted(cut), _PROBES[1:]))
    sizes = table_sizes(graph_def, _probed(graph_def, cut, probes), tables)
    tied: set[str] = set()
    for index in on_batch:
        named = {k for k, p in probes.items() if _holds(sizes.get(index), p)}
        tied |= {index} | (named or set(cut))
    return tied


def _holds(bound: Bound | None, size: int) -> bool:
    """Whether ``size`` bounds the index (or one of its components)."""
    return size in (bound if isinstance(bound, tuple) else (bound,))


def _probed(graph_def: Any, cut: Mapping[str, int | None], probes: Mapping[str, int]) -> dict[str, list[int | None]]:
    """Each input's declared shape with its batch axis (``cut``) the size ``probes`` gives it."""
    from tfopt.graph import node_map

    nodes = node_map(graph_def)
    shapes: dict[str, list[int | None]] = {}
    for name, axis in cut.items():
        node = nodes.get(name)
        dims = [d.size for d in node.attr["shape"].shape.dim] if node is not None else []
        if axis is not None and 0 <= axis < len(dims):
            shapes[name] = [probes[name] if i == axis else (None if d < 0 else d) for i, d in enumerate(dims)]
    return shapes
