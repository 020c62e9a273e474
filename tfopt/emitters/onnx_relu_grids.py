"""A ReLU layer feeding a concatenation gets its own zero point, so ONNX Runtime runs it int8.

The engine puts a concatenation's inputs on one shared range (:mod:`tfopt.quantizing.engine.
shared_scales`: TFLite's int8 concatenation needs it). When another input is a linear branch, that
range goes below 0, and the ReLU layer's output quantize gets a zero point above the type's minimum.
ONNX Runtime removes a ``Relu`` (``ReluQuantFusion``) or ``Clip(0, c)`` (``ClipQuantFusion``) into
the following ``QuantizeLinear`` only when that quantize clamps at 0 itself: zero point at the
minimum, and for ``Clip`` a top ``255·s <= c`` (``clip_quantizelinear.cc``). Otherwise the
activation stays, its DequantizeLinear -> Conv -> Relu -> QuantizeLinear group is not an int8 node
unit, and the layer runs as a float ``FusedConv`` (measured: 2 of the 7 layers of an Inception-like
block). So, in the ONNX file only, where every reader of the quantized tensor is a ``Concat``
that requantizes its output to the same grid::

    Conv -> Relu -> Q(s, z) -> DQ(s, z) -> Concat -> Q(s, z)        before: Conv + Relu float
    Conv -> Relu -> Q(s, 0) -> DQ(s, 0) -> Concat -> Q(s, z)        after:  QLinearConv, QLinearConcat

(uint8; int8's minimum is −128). ``QLinearConcat`` takes one scale and zero point per input and
requantizes each to its output's. For a ``Relu`` this is exact: ``round(x/s)`` lands on the same
level either way (``z`` is an integer), the negative half of the shared grid is never used by a
ReLU's output, and the concatenation's own quantize clamps the top at ``(q_max − z)·s`` as before.
A ``Clip(0, c)`` (ReLU6) whose shared top ``(q_max − z)·s`` is within ``c`` becomes a ``Relu``: the
concatenation's quantize clamps below ``c`` anyway, so the result is the same, exactly, and
``ReluQuantFusion`` removes it (``ClipQuantFusion`` would want ``q_max·s <= c`` on the new grid).

A ``MaxPool`` (or a reshape: :data:`PASS_OPS`) between the DequantizeLinear and the ``Concat``
changes nothing: it commutes with the requantization, and ONNX Runtime runs it on the int8 tensor.

Left alone, each with its reason in the log: a quantized tensor read by anything other than
DequantizeLinear -> (PASS_OPS) -> Concat -> QuantizeLinear on the same grid (another layer would
see the top clamp move from ``(q_max − z)·s`` to ``q_max·s``); a ``Clip`` whose lower bound is not 0, that has
other readers, or whose ``c`` is below the shared top (its own grid ``c/255`` requantized to ``s``
would round twice: measured on a generated block, 27% of the outputs more than one step from the
engine's, up to 5); scales or zero points that are not scalar initializers. TFLite and OpenVINO
graphs are not touched.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

ACTIVATIONS = frozenset({"Relu", "Clip"})
# ops between the DequantizeLinear and the concatenation that commute with a monotonic requantization
# (ONNX Runtime moves the DequantizeLinear past them: a MaxPool then runs on the int8 tensor)
PASS_OPS = frozenset({"MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
EPSILON = float(np.finfo(np.float32).eps)  # ONNX Runtime's tolerance on the clip bounds


def own_relu_grids(graph: Any) -> int:
    """Give each ReLU/ReLU6 output quantize read only by concatenations a zero point at the type's
    minimum (module docstring), in place, in ``graph`` and its subgraphs.

    Args:
        graph: the ONNX ``GraphProto`` tf2onnx wrote from the engine's fake-quant graph.

    Returns:
        how many quantizes were given their own grid.
    """
    from tfopt.emitters.onnx_scopes import graphs
    from tfopt.emitters.onnx_shapes import drop_unused_initializers

    changed, skipped = 0, []
    for scope, visible in graphs(graph):
        done, why = _grids_in(scope, visible)
        changed += done
        skipped.extend(why)
    if changed:
        drop_unused_initializers(graph)  # the bounds of a Clip made a Relu
    log = logging.getLogger(__name__)
    if changed or skipped:
        log.info("onnx: %d ReLU layer(s) before a concatenation given their own zero point; %d left: %s",
                 changed, len(skipped), "; ".join(skipped[:8]))
    return changed


def _grids_in(graph: Any, visible: dict[str, Any]) -> tuple[int, list[str]]:
    """One graph's quantizes (not its subgraphs'); ``visible``: the initializers it can see."""
    from onnx import numpy_helper

    from tfopt.emitters.onnx_scopes import readers

    inits = dict(visible)
    producer = {out: node for node in graph.node for out in node.output}
    reading = readers(graph)
    outputs = {v.name for v in graph.output}
    changed, skipped = 0, []
    for q in list(graph.node):
        act = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" and q.input else None
        if act is None or act.op_type not in ACTIVATIONS:
            continue
        grid = _grid(q, inits)
        if grid is None:
            skipped.append(f"{q.name}: scale or zero point not a scalar initializer")
            continue
        scale, zero = grid
        low = np.iinfo(zero.dtype).min
        if zero == low:
            continue  # clamps at 0 already
        why = _why_not_only_concats(q, reading, outputs, inits)
        if why:
            skipped.append(f"{q.name}: {why}")
            continue
        if act.op_type == "Clip":
            why = _why_not_relu(act, q, reading, inits, float(scale) * (int(np.iinfo(zero.dtype).max) - int(zero)))
            if why:
                skipped.append(f"{q.name}: {why}")
                continue
            _as_relu(act)
        zero_name = f"{q.name}/own_zero_point"  # the old one may be shared with the other inputs
        graph.initializer.append(numpy_helper.from_array(np.asarray(low, zero.dtype), zero_name))
        for node in [q, *reading.get(q.output[0], [])]:
            node.input[2] = zero_name
        changed += 1
    return changed, skipped


def _grid(q: Any, inits: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``q``'s scale and zero point when both are scalar initializers."""
    from onnx import numpy_helper

    if len(q.input) < 3 or q.input[1] not in inits or q.input[2] not in inits:
        return None
    scale, zero = (numpy_helper.to_array(inits[r]) for r in q.input[1:3])
    if scale.size != 1 or zero.size != 1 or zero.dtype not in (np.uint8, np.int8):
        return None
    return scale.reshape(()), zero.reshape(())


def _why_not_only_concats(q: Any, reading: dict[str, list[Any]], outputs: set[str],
                          inits: dict[str, Any]) -> str | None:
    """None when every reader of ``q`` is a DequantizeLinear on its grid whose every reader is a
    ``Concat`` requantized to the same grid, directly or through :data:`PASS_OPS`; else what reads
    it instead."""
    if q.output[0] in outputs:
        return "a graph output"
    for dq in reading.get(q.output[0], []):
        if dq.op_type != "DequantizeLinear" or list(dq.input[1:3]) != list(q.input[1:3]) or dq.output[0] in outputs:
            return f"read by {dq.op_type} {dq.name}"
        todo = list(reading.get(dq.output[0], []))
        while todo:
            node = todo.pop()
            if node.op_type in PASS_OPS and node.output[0] not in outputs and reading.get(node.output[0]):
                todo.extend(reading[node.output[0]])
                continue
            if node.op_type != "Concat" or node.output[0] in outputs or not reading.get(node.output[0]):
                return f"read by {node.op_type} {node.name}"
            for after in reading[node.output[0]]:
                if after.op_type != "QuantizeLinear" or _grid(after, inits) is None or \
                        not _same(_grid(after, inits), _grid(q, inits)):
                    return f"{node.name}'s output read by {after.op_type} {after.name}, not on its grid"
    return None


def _same(a: Any, b: Any) -> bool:
    return bool(a[0] == b[0] and a[1] == b[1])


def _clip_bounds(clip: Any, inits: dict[str, Any]) -> tuple[float, float] | None:
    """``Clip``'s constant ``(min, max)`` (inputs from opset 11, attributes before)."""
    from onnx import numpy_helper

    lo, hi = -np.inf, np.inf
    for attr in clip.attribute:
        lo = attr.f if attr.name == "min" else lo
        hi = attr.f if attr.name == "max" else hi
    for k, ref in ((1, "lo"), (2, "hi")):
        if len(clip.input) > k and clip.input[k]:
            if clip.input[k] not in inits:
                return None
            value = float(numpy_helper.to_array(inits[clip.input[k]]).reshape(()))
            lo, hi = (value, hi) if ref == "lo" else (lo, value)
    return float(lo), float(hi)


def _why_not_relu(clip: Any, q: Any, reading: dict[str, list[Any]], inits: dict[str, Any], top: float) -> str | None:
    """None when ``Clip(0, c)`` can become a ``Relu``: ``q`` is its only reader and the shared
    grid's top ``top = (q_max − z)·s`` is within ``c`` (the concatenation's quantize clamps there)."""
    bounds = _clip_bounds(clip, inits)
    if bounds is None or bounds[0] != 0.0:
        return f"{clip.name} does not clamp at 0"
    if [n.name for n in reading.get(clip.output[0], [])] != [q.name]:
        return f"{clip.name} has other readers"
    if top - bounds[1] > EPSILON:
        return f"the shared range's top {top:.6g} is above {clip.name}'s {bounds[1]:.6g} (a requantization would round twice)"
    return None


def _as_relu(clip: Any) -> None:
    """``clip`` made a ``Relu`` in place (its upper bound is the concatenation's clamp's job)."""
    clip.op_type = "Relu"
    del clip.input[1:]
    del clip.attribute[:]
