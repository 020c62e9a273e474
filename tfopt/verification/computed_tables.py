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


def table_sizes(graph_def: Any, shapes: Mapping[str, Sequence[int]], tables: Mapping[str, list[Table]]) -> dict[str, int]:
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
