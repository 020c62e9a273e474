"""Static shapes of an ONNX graph's tensors, for the post-conversion rewrites that need ranks.

ONNX's own shape inference, run on a copy (the model is not changed). A model it cannot infer
(over 2 GB, or an op it does not know) gives an empty map, and the rewrites that need a shape then
leave that node alone: they never guess.
"""

from __future__ import annotations

from typing import Any

Shape = tuple  # dims: int for a static size, None for a symbolic or unknown one


def inferred_shapes(model: Any) -> dict[str, Shape]:
    """``{tensor name: dims}`` for every tensor whose rank ONNX's shape inference knows, in the
    main graph and in every subgraph."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # over 2 GB, or an op it does not know: no shapes, so no rewrites
        return {}
    from tfopt.emitters.onnx_scopes import graphs

    shapes: dict[str, Shape] = {}
    for graph, _ in graphs(inferred.graph):  # names are unique across the nesting (onnx_scopes)
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tensor = value.type.tensor_type
            if tensor.HasField("shape"):
                shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        for init in graph.initializer:
            shapes[init.name] = tuple(init.dims)
    return shapes


def referenced_names(graph: Any) -> set[str]:
    """Every tensor name a node reads, in this graph and in its subgraphs (If/Loop bodies read
    outer initializers by name)."""
    from tfopt.emitters.onnx_scopes import reads

    return {name for node in graph.node for name in reads(node)}


def drop_unused_initializers(graph: Any) -> None:
    """Remove initializers no node (nor subgraph) reads any more, in ``graph`` and in each of its
    subgraphs (a rewrite inside a loop body can leave an outer weight unread)."""
    from tfopt.emitters.onnx_scopes import graphs

    for scope, _ in graphs(graph):
        used = referenced_names(scope) | {o.name for o in scope.output}
        kept = [t for t in scope.initializer if t.name in used]
        if len(kept) != len(scope.initializer):
            del scope.initializer[:]
            scope.initializer.extend(kept)
