"""Give a constant operand of an elementwise op the rank of the tensor it is broadcast against.

    Mul(x[N,40,256,1], c[1])   =>   Mul(x, c'[1,1,1,1]),   c' = reshape(c, (1,)·(r−k) + shape(c))

Numpy-style broadcasting prepends 1s to the lower-rank operand, so the result is the same numbers,
bit for bit. The reason is ONNX Runtime's CPU kernels: when a size-1 constant of lower rank meets
a tensor whose innermost dimension is 1, its broadcaster walks the output one element at a time
(measured: 306 µs for a [1,40,256,1] × [1] Mul against 20 µs with the constant as [1,1,1,1]).
tf2onnx writes TensorFlow's constants as they are, so a Keras BatchNorm on a one-channel
spectrogram (two real models of the corpus) cost 0.6 ms of an 18 ms inference, and 2.5 ms of
52 ms on another, where the backend's own conversion had fused them away.

Only ``Add``/``Sub``/``Mul``/``Div`` with one initializer operand and one operand of known rank, in
float files (ONNX Runtime's int8 fusions match tf2onnx's own forms);
the original initializer is kept while anything else reads it. Loop bodies and If branches too: a
constant a body reads from the graph around it gets its full-rank copy in the body.
"""

from __future__ import annotations

from typing import Any

from tfopt.emitters.onnx_scopes import graphs
from tfopt.emitters.onnx_shapes import Shape, drop_unused_initializers

ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div"})


def full_rank_constants(graph: Any, shapes: dict[str, Shape]) -> int:
    """Reshape every lower-rank initializer operand of an elementwise op to its partner's rank.

    Args:
        graph: the ONNX ``GraphProto``, changed in place, subgraphs included.
        shapes: :func:`tfopt.emitters.onnx_shapes.inferred_shapes` of its model.

    Returns:
        how many operands were rewritten.
    """
    changed = sum(_rank_in(scope, visible, shapes) for scope, visible in graphs(graph))
    if changed:
        drop_unused_initializers(graph)
    return changed


def _rank_in(graph: Any, inits: dict[str, Any], shapes: dict[str, Shape]) -> int:
    """The operands of one graph (not its subgraphs); ``inits``: the initializers it can see (a
    copy: the new ones are added to it and to ``graph``)."""
    from onnx import numpy_helper

    inits = dict(inits)
    changed = 0
    for node in graph.node:
        if node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        for k in (0, 1):
            const, other = node.input[k], node.input[1 - k]
            if const not in inits or other in inits or other not in shapes:
                continue
            rank = len(shapes[other])
            dims = tuple(inits[const].dims)
            if len(dims) >= rank:
                continue
            name = f"{const}/rank{rank}"
            if name not in inits:
                value = numpy_helper.to_array(inits[const])
                inits[name] = numpy_helper.from_array(value.reshape((1,) * (rank - len(dims)) + dims), name)
                graph.initializer.append(inits[name])
            node.input[k] = name
            changed += 1
    return changed
