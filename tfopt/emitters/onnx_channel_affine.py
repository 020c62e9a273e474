"""Fuse a per-channel scale and shift that no conv took into one ONNX ``BatchNormalization``.

    Add(Mul(x, s), t)   =>   BatchNormalization(x, scale=s, B=t, mean=0, var=1, epsilon=0)
                             y = s·(x − 0)/√(1 + 0) + t = s·x + t

tfopt lowers an inference BatchNorm to ``x·s + t`` and folds it into the conv before it
(:mod:`tfopt.passes.fold_batchnorm`); a BatchNorm after an activation, a pooling or a concat has no
conv before it and stays as the Mul and Add, which tf2onnx writes as two ONNX ops. ONNX Runtime
runs those as two passes over the tensor, while its ``BatchNormalization`` is one, and inside its
NCHWc-blocked layout it becomes a depthwise conv with no reorder around it. The backend's own
conversion of the unfrozen model keeps such a BatchNorm a ``BatchNormalization``; this gives
tfopt's ONNX the same kernel (a corpus model: 9 such pairs, 0.94x of tf2onnx's own file before,
1.00x after). The arithmetic is the same two float operations per element.

Fires when ``s`` and ``t`` are float32 initializers broadcast along axis 1 only (ONNX's channel
axis: shape ``[C,1,…]`` or ``[1,C,1,…]`` against an input of rank ≥ 3 whose dimension 1 is
statically C), the Mul's only reader is the Add, and the Mul's output is not a graph output. The
Add's output name is kept. Only for float32 artifacts: quantized ones keep the Mul and Add their quantizer expects.
Loop bodies and If branches are rewritten too; a reader inside a subgraph counts as a reader, and
a subgraph's ``s``/``t`` may be initializers of the graphs around it (:mod:`tfopt.emitters.onnx_scopes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt.emitters.onnx_scopes import graphs, readers
from tfopt.emitters.onnx_shapes import Shape, drop_unused_initializers


def fuse_channel_affine(graph: Any, shapes: dict[str, Shape]) -> int:
    """Replace each per-channel ``Add(Mul(x, s), t)`` with a ``BatchNormalization``.

    Args:
        graph: the ONNX ``GraphProto``, changed in place, subgraphs included.
        shapes: :func:`tfopt.emitters.onnx_shapes.inferred_shapes` of its model.

    Returns:
        how many pairs were fused.
    """
    fused = sum(_fuse_in(scope, visible, shapes) for scope, visible in graphs(graph))
    if fused:
        drop_unused_initializers(graph)
    return fused


def _fuse_in(graph: Any, inits: dict[str, Any], shapes: dict[str, Shape]) -> int:
    """The pairs of one graph (not its subgraphs); ``inits``: the initializers it can see."""
    from onnx import helper, numpy_helper

    reading = readers(graph)
    outputs = {o.name for o in graph.output}
    replace: dict[int, Any] = {}  # id(Add) -> BatchNormalization
    removed: set[int] = set()  # id(Mul)
    for mul in graph.node:
        if mul.op_type != "Mul" or mul.domain not in ("", "ai.onnx") or mul.output[0] in outputs:
            continue
        x, s = (mul.input[1], mul.input[0]) if mul.input[0] in inits else (mul.input[0], mul.input[1])
        scale = _channel_vector(inits.get(s), shapes.get(x), numpy_helper)
        users = reading.get(mul.output[0], [])
        if x in inits or scale is None or len(users) != 1 or users[0].op_type != "Add" or id(users[0]) in replace:
            continue
        add = users[0]
        rest = [ref for ref in add.input if ref != mul.output[0]]
        shift = _channel_vector(inits.get(rest[0]), shapes.get(x), numpy_helper) if len(rest) == 1 else None
        if shift is None:
            continue
        base = add.name or add.output[0]
        params = {"scale": scale, "bias": shift, "mean": np.zeros_like(scale), "var": np.ones_like(scale)}
        names = []
        for key, value in params.items():
            name = f"{base}/bn_{key}"
            graph.initializer.append(numpy_helper.from_array(value, name))
            names.append(name)
        replace[id(add)] = helper.make_node("BatchNormalization", [x, *names], [add.output[0]], name=add.name,
                                            epsilon=0.0)
        removed.add(id(mul))
    if not replace:
        return 0
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(replace)


def _channel_vector(init: Any, x_shape: Shape | None, numpy_helper: Any) -> np.ndarray | None:
    """The [C] vector of a float32 initializer broadcast along axis 1 of ``x`` only, or None."""
    if init is None or x_shape is None or len(x_shape) < 3:
        return None
    value = numpy_helper.to_array(init)
    if value.dtype != np.float32 or value.ndim > len(x_shape):
        return None
    dims = (1,) * (len(x_shape) - value.ndim) + value.shape
    channels = x_shape[1]
    if channels is None or channels < 2 or dims[1] != channels or any(d != 1 for i, d in enumerate(dims) if i != 1):
        return None
    return value.reshape(-1).copy()
