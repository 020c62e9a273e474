"""Weight fake quants into ops tf2onnx turns into QuantizeLinear/DequantizeLinear, not constants.

tf2onnx converts ``FakeQuantWithMinMaxVars`` only per tensor, with ``narrow_range=False``, and has
no ``FakeQuantWithMinMaxVarsPerChannel`` at all; worse, a fake quant on a constant (a weight) is
constant-folded before conversion, so the ONNX graph gets float weights already rounded to the
grid and ONNX Runtime chooses its own weight quantization (or none: a float ``MatMul``). Its
``QuantizeAndDequantizeV2`` rewrite, though, keeps per-axis int8 QDQ pairs. So, before tf2onnx::

    W -> FakeQuantWithMinMaxVarsPerChannel(min[c], max[c], narrow_range)         before
    W -> QuantizeAndDequantizeV2(min[c], max[c], signed_input, range_given,
                                 narrow_range, axis = rank(W) − 1)               after

(per tensor: ``FakeQuantWithMinMaxVars`` -> the same op with ``axis = −1``). Both compute one
grid when the range is symmetric around 0 as weight ranges are: with ``s = max / 127``,
``[−127·s, 127·s]`` (narrow) or ``[−128·s, 127·s]``; tf2onnx's scale ``max(min/q_min, max/q_max)``
is then ``s`` and the zero point 0. Fake quants on activations, or with any other range, are
left for tf2onnx's own (uint8, asymmetric) conversion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FAKE_QUANT_OPS = frozenset({"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel"})
# int8 weight steps whose products with uint8 activations never saturate an int16 pair sum:
# 2 * 255 * 64 = 32640 <= 32767 (VPMADDUBSW on x86 CPUs without VNNI)
PAIR_SAFE_STEPS = 64
_WEIGHT_PATH_OPS = frozenset({"Const", "Identity", "Reshape", "Transpose", "Enter"})  # a weight on its way to a layer (into a loop)


def lower_weight_fake_quant(graph_def: Any) -> Any:
    """A copy of ``graph_def`` with each weight fake quant rewritten (module docstring); the same
    object when there is none."""
    from tfopt._tf import const_value
    from tfopt.graph import ancestors, node_map, tensor_node

    nodes = node_map(graph_def)

    def symmetric_weight(node: Any) -> bool:
        if node.op not in FAKE_QUANT_OPS or node.attr["num_bits"].i != 8:
            return False
        bounds = [nodes.get(tensor_node(ref)) for ref in node.input[1:3]]
        if any(b is None or b.op != "Const" for b in bounds):
            return False
        lo, hi = (const_value(b).astype(np.float64) for b in bounds)
        low_steps = 127 if node.attr["narrow_range"].b else 128
        if not np.allclose(lo, -hi * low_steps / 127, rtol=1e-5, atol=0) or np.any(hi <= 0):
            return False
        weights = ancestors(graph_def, [node.input[0]], follow_control=False)
        return all(nodes[n].op in _WEIGHT_PATH_OPS for n in weights if n in nodes)

    candidates = [n.name for n in graph_def.node if symmetric_weight(n)]
    if not candidates:
        return graph_def
    from tfopt._tf import GraphFacts

    facts = GraphFacts(graph_def)
    shapes = {name: facts.shape(nodes[name].input[0]) for name in candidates}
    # a per-channel axis must be spelled out (−1 means per tensor): the weight's rank must be known
    targets = {name for name, shape in shapes.items()
               if shape is not None or nodes[name].op == "FakeQuantWithMinMaxVars"}
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    for node in out.node:
        if node.name not in targets:
            continue
        shape = shapes[node.name]
        per_channel = node.op == "FakeQuantWithMinMaxVarsPerChannel"
        narrow = node.attr["narrow_range"].b
        node.op = "QuantizeAndDequantizeV2"
        node.attr.clear()
        node.attr["T"].type = 1  # DT_FLOAT
        node.attr["signed_input"].b = True
        node.attr["num_bits"].i = 8
        node.attr["range_given"].b = True
        node.attr["narrow_range"].b = narrow
        node.attr["round_mode"].s = b"HALF_UP"  # FakeQuant's rounding (tf2onnx's QuantizeLinear: to even)
        node.attr["axis"].i = len(shape) - 1 if per_channel and shape is not None else -1
    return out


def fold_weight_qdq(graph: Any) -> int:
    """Store each quantized weight as an 8-bit initializer read by its DequantizeLinear, with the
    Reshape/Transpose nodes tf2onnx put between it and its layer applied to it (in place)::

        W -> QuantizeLinear(s, z) -> DequantizeLinear(s, z) -> Reshape -> Transpose -> Conv     before
        Wq' -> DequantizeLinear(s, z', axis') -> Conv                                          after

    ``Wq = clamp(round_half_even(W / s) + z)`` (QuantizeLinear's own arithmetic) and
    ``Wq' = transpose(reshape(Wq))``; the channel axis moves with it. ONNX Runtime fuses an int8
    layer only when DequantizeLinear feeds it directly (a depthwise kernel's reshape would leave it
    float), and the weights are stored at a quarter of the size.

    A symmetric int8 weight (``z = 0``) stays int8 with ``z' = 0`` when every ``|Wq| <= 64``
    (:data:`PAIR_SAFE_STEPS`), and is stored as uint8 with ``z' = 128`` otherwise, the same values
    (``s·(q + 128 − 128)``). ONNX Runtime's fast int8 convolutions and matmuls (``MlasConvSym``, the
    indirect convolution with the requantization fused, and the symmetric QGEMM) take only int8
    weights with zero point 0; a uint8 weight runs the generic kernel and a separate requantization
    (measured on an AVX2 CPU: a MobileNetV2's int8 graph, the same fused QLinearConvs, 25% faster
    with int8 weights). But on x86 CPUs without VNNI the u8 x s8 kernels add products in pairs with
    ``VPMADDUBSW``, whose 16-bit sums saturate unless ``2·255·|q| <= 32767``, i.e. ``|q| <= 64``;
    the u8 x u8 kernels do not saturate, so a wider weight keeps every bit on the uint8 grid
    (measured: with 8-bit int8 weights a small CNN's outputs were up to 94 steps off the grid, top-1
    agreement 94%; on the uint8 grid, or with 7-bit int8 weights, within one step of TensorFlow's).
    tfopt's engine gives the ONNX target 7-bit weights (±63 steps,
    :attr:`tfopt.targets.Target.engine_weight_bits`), so its layers take the fast kernels on every
    CPU, as ONNX Runtime's own quantizer does by ``reduce_range`` (:mod:`tfopt.emitters.onnx`).
    Loop bodies and If branches too,
    whose weights may be initializers of the graphs around them (:mod:`tfopt.emitters.onnx_scopes`).
    Returns the weights folded.
    """
    from tfopt.emitters.onnx_scopes import graphs
    from tfopt.emitters.onnx_shapes import drop_unused_initializers

    folded = sum(_fold_in(scope, visible) for scope, visible in graphs(graph))
    if folded:  # an outer float weight that only a body read
        drop_unused_initializers(graph)
    return folded


def _fold_in(graph: Any, visible: dict[str, Any]) -> int:
    """The weights of one graph (not its subgraphs); ``visible``: the initializers it can see."""
    from onnx import helper, numpy_helper

    from tfopt.emitters.onnx_scopes import readers, reads

    inits = dict(visible)
    own = {t.name for t in graph.initializer}
    reading = readers(graph)
    removed: set[int] = set()
    replaced: set[str] = set()
    gone: set[str] = set()  # tensors no node produces any more
    folded = 0
    for q in list(graph.node):
        if q.op_type != "QuantizeLinear" or len(q.input) < 3 or not all(r in inits for r in q.input[:3]):
            continue
        users = reading.get(q.output[0], [])
        if len(users) != 1 or users[0].op_type != "DequantizeLinear" or list(users[0].input[1:]) != list(q.input[1:]):
            continue
        dq = users[0]
        w = numpy_helper.to_array(inits[q.input[0]])
        scale, zero = numpy_helper.to_array(inits[q.input[1]]), numpy_helper.to_array(inits[q.input[2]])
        axis = _axis(q, w.ndim) if scale.ndim else None
        shape = [1] * w.ndim
        if axis is not None:
            shape[axis] = -1
        info = np.iinfo(zero.dtype)
        wq = np.clip(np.rint(w / scale.reshape(shape)) + zero.reshape(shape), info.min, info.max).astype(zero.dtype)
        if zero.dtype == np.int8 and not np.any(zero) and np.abs(wq.astype(np.int16)).max(initial=0) > PAIR_SAFE_STEPS:
            wq, zero = (wq.astype(np.int16) + 128).astype(np.uint8), np.full(zero.shape, 128, np.uint8)  # docstring
        chain: list[Any] = []
        while True:  # the Reshape/Transpose nodes between the DequantizeLinear and its layer
            nxt = reading.get((chain[-1] if chain else dq).output[0], [])
            if len(nxt) != 1 or not _applies(nxt[0], inits):
                break
            moved, moved_axis = _apply(nxt[0], wq, axis, inits)
            if moved_axis is False:
                break
            wq, axis = moved, moved_axis
            chain.append(nxt[0])
        name = q.input[0] + "_quantized"
        while name in inits:  # (a name canonical_initializers renames anyway)
            name += "_"
        tensor = numpy_helper.from_array(np.ascontiguousarray(wq), name)
        zero_name = name + "_zero_point"
        graph.initializer.extend([tensor, numpy_helper.from_array(zero, zero_name)])
        inits[name] = tensor
        gone.update([q.output[0], dq.output[0], *(n.output[0] for n in chain)])
        dq.input[0] = name
        dq.input[2] = zero_name
        if chain:  # the DequantizeLinear now produces what the layer reads
            dq.output[0] = chain[-1].output[0]
        del dq.attribute[:]
        if axis is not None:
            dq.attribute.append(helper.make_attribute("axis", axis))
        removed.update(id(n) for n in [q, *chain])
        replaced.update(ref for n in [q, *chain] for ref in n.input if ref in inits)
        folded += 1
    keep = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(keep)
    used = {ref for n in graph.node for ref in reads(n)} | {v.name for v in [*graph.input, *graph.output]}
    for name in (replaced & own) - used:  # the float weights (and Reshape shapes) now read by nothing
        graph.initializer.remove(next(t for t in graph.initializer if t.name == name))
    produced = {out for n in graph.node for out in n.output}
    stale = [v for v in graph.value_info if v.name in gone and v.name not in produced]
    for value in stale:
        graph.value_info.remove(value)
    return folded


def _axis(node: Any, rank: int) -> int:
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)  # ONNX's default axis is 1
    return axis + rank if axis < 0 else axis


def _applies(node: Any, inits: dict[str, Any]) -> bool:
    return node.op_type == "Transpose" or (node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits)


def _apply(node: Any, wq: np.ndarray, axis: int | None, inits: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """``node`` applied to ``wq``, and where the channel ``axis`` goes (``False``: nowhere single)."""
    from onnx import numpy_helper

    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), list(range(wq.ndim))[::-1])
        return wq.transpose(perm), None if axis is None else perm.index(axis)
    target = [int(d) if d != 0 else wq.shape[i] for i, d in enumerate(numpy_helper.to_array(inits[node.input[1]]))]
    out = wq.reshape(target)
    if axis is None:
        return out, None
    before = int(np.prod(wq.shape[:axis + 1]))
    running = 1
    for i, d in enumerate(out.shape):  # the output axis whose prefix ends where the channel axis did
        running *= d
        if running == before:
            return out, i if d == wq.shape[axis] else False
    return out, False
