"""Indices into a table the model computes: the rows of a ``Gather`` whose params are not a constant
or a variable but a tensor of the graph, sized by the inputs.

A message-passing graph network gathers each node's neighbours, ``h[nlist]``, where ``h = dense(atoms)``
has one row per atom (nmrgnn's chemical-shift predictor): the valid range of ``nlist`` is ``[0, N)``, ``N``
the size of ``atoms``' first axis at whatever shapes verification makes up. A constant table's rows
(:func:`tfopt.verification.made_up_inputs.index_bounds`) do not apply, and the ``[0, 8)`` of an integer
tfopt knows nothing of fails as soon as ``N < 8``. So the bound is read where it is decided: once the
inputs' shapes are chosen, TensorFlow's shape inference on the graph at those shapes gives the size of
each such gather's axis (``GatherV2``'s ``axis`` input; 0 for ``Gather``), and the smallest of them
bounds the index. A size shape inference cannot give (a table whose rows depend on values) leaves the
input to the usual draw, and the refusal to :func:`tfopt.verification.made_up_inputs.random_inputs_rejected`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import constant_behind
from tfopt.verification.primes import PRIMES

Table = tuple[str, int]  # (the Gather node, the axis it gathers along; negative: from the end)


def computed_tables(graph_def: Any) -> dict[str, list[Table]]:
    """Placeholder name -> the gathers whose computed table it indexes (through the ops an index passes
    through on its way, as for a constant table)."""
    from tfopt.graph import node_map, tensor_node
    from tfopt.verification.made_up_inputs import GATHERS, gather_indexers, table_rows

    nodes = node_map(graph_def)
    out: dict[str, list[Table]] = {}
    for node in graph_def.node:
        if node.op not in GATHERS or len(node.input) < 2 or table_rows(nodes, tensor_node(node.input[0])) is not None:
            continue
        axis = 0
        if node.op == "GatherV2":
            given = constant_behind(nodes, node.input[2]) if len(node.input) > 2 else None
            if given is None or given.size != 1:
                continue  # an axis the graph computes: no size to read
            axis = int(given.reshape(()))
        for name in gather_indexers(graph_def, nodes, node):
            out.setdefault(name, []).append((node.name, axis))
    return out


def table_sizes(graph_def: Any, shapes: Mapping[str, Sequence[int | None]],
                tables: Mapping[str, list[Table]]) -> dict[str, int]:
    """Each index input's bound (the smallest of its tables' gathered axes) when the inputs have
    ``shapes``; an input none of whose tables shape inference sizes is left out."""
    from tfopt._tf import GraphFacts
    from tfopt.graph import with_input_shapes

    if not tables:
        return {}
    g = with_input_shapes(graph_def, {n: list(s) for n, s in shapes.items()}, ops=("Placeholder", "PlaceholderWithDefault"))
    try:
        inferred = GraphFacts(g).graph
    except Exception:  # shapes TensorFlow refuses statically: no size to read, the usual draw stands
        return {}
    out: dict[str, int] = {}
    for name, found in tables.items():
        sizes = []
        for node, axis in found:
            params = inferred.get_operation_by_name(node).inputs[0].shape
            dims = params.as_list() if params.rank is not None else []
            if -len(dims) <= axis < len(dims) and dims[axis] is not None:
                sizes.append(int(dims[axis]))
        if sizes:
            out[name] = min(sizes)
    return out


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
    on_batch = [i for i in tables if common.get(i) == _PROBES[0]]  # unsized: cut as before (no evidence)
    if not on_batch:
        return set()
    probes = dict(zip(sorted(cut), _PROBES[1:]))
    sizes = table_sizes(graph_def, _probed(graph_def, cut, probes), tables)
    tied: set[str] = set()
    for index in on_batch:
        named = {k for k, p in probes.items() if p == sizes.get(index)}
        tied |= {index} | (named or set(cut))
    return tied


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
