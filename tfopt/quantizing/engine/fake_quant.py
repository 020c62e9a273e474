"""Quantize once, in the TF graph: fake-quant ops that every target then executes as int8.

Pattern (a conv layer; depthwise and dense alike)::

    x -> Conv2D(W) -> BiasAdd(b) -> Relu                                   before
    x -> FQ(x) -> Conv2D(FQc(W)) -> BiasAdd(b') -> Relu -> FQ              after

``FQ``: ``FakeQuantWithMinMaxVars`` on an activation (per tensor, 8 bits, ``narrow_range=False``);
``FQc``: ``FakeQuantWithMinMaxVarsPerChannel`` on a weight (symmetric, ``narrow_range=True``, one
range per output channel). This is the graph quantization-aware training leaves, so the
converters' QAT paths read it: TFLite makes int8 kernels of it, tf2onnx QuantizeLinear/
DequantizeLinear pairs (int8 kernels in ONNX Runtime), OpenVINO FakeQuantize (int8 in its CPU
plugin). :mod:`tfopt.quantizing.int8_ops` counts which kernels each artifact runs in int8.

TensorFlow's fake quant (``q_min = narrow_range ? 1 : 0``, ``q_max = 2^bits − 1``)::

    s  = (max − min) / (q_max − q_min)                    step (scale)
    z  = clamp(round(q_min − min / s), q_min, q_max)      nudged zero point
    min' = (q_min − z)·s,  max' = (q_max − z)·s           nudged range
    FQ(x) = round((clamp(x, min', max') − min') / s)·s + min'

A range without 0 is *shifted* by that nudge (z is clamped), not widened: [0.5, 3] becomes
[0, 2.5]. So every range is first widened to contain 0 (``min ← min(min, 0)``, ``max ← max(max,
0)``), then nudged here, and the graph stores the nudged ``min'``/``max'``: 0 is exact, TF's own
nudge is the identity, and converters that recompute ``s`` and ``z`` (tf2onnx, OpenVINO) land on
the same grid.

Weights: the symmetric grid of :mod:`tfopt.quantizing.engine.weight_grid` (one step ``s_c`` per
output channel, levels, the zero-range rule), stored as ``[−127·s_c, 127·s_c]`` with
``narrow_range`` (``z = 128``: the int8 grid −127..127 with zero point 0 TFLite's kernels
require), else ``[−128·s_c, 127·s_c]``. A ``Conv2D`` kernel ``[H, W, in, out]`` has its channel
last; a ``DepthwiseConv2dNative`` kernel ``[H, W, in, mult]`` has ``in·mult`` (``c = i·mult + m``),
so it is reshaped to ``[H, W, 1, in·mult]``, fake-quantized there and reshaped back: the layout of
TFLite's depthwise kernel (quantized dimension 3 of ``[1, H, W, in·mult]``); tf2onnx and OpenVINO
get the reshape folded into the stored weight (:mod:`tfopt.emitters.onnx_weight_quant`,
:mod:`tfopt.emitters.openvino_weight_quant`). ``MatMul`` weights are per tensor (``PER_CHANNEL_OPS``).

Biases: an int8 kernel adds the bias in int32 at its accumulator's scale ``s_in·s_w[c]``, so the
graph's bias is put on that grid too, ``b'[c] = round(b[c] / (s_in·s_w[c]))·s_in·s_w[c]``: the
fake-quant graph then computes what the kernels do (measured: 10x closer to TFLite's output).

Inside a TF1 (v1 control flow) while loop the pattern is the same; the weight arrives through a
constant ``Enter`` (the fake quant goes after it, in the body, so that converters see it next to the
layer), and each constant added there (ranges, a rounded bias) takes a control input from the loop's
pivot, as TensorFlow's own body constants do, so that it runs in the loop's frame.

Placement (which activations get a range): :mod:`tfopt.quantizing.engine.placement`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import Model, canonical_tensor, is_control, node_map, tensor_node, tensor_port
from tfopt.quantizing.engine.placement import (
    BIAS_OPS,
    FLOAT_DTYPES,
    FUSED_ACTIVATIONS,
    LINEAR_OPS,
    REQUANTIZING_OPS,
    SCALE_PRESERVING_OPS,
    Layer,
    activation_tensors,
    composites,
    const_input,
    kept_nodes,
    layers,
)
from tfopt.quantizing.engine.weight_grid import LEVELS as WEIGHT_LEVELS
from tfopt.quantizing.engine.weight_grid import PER_CHANNEL_OPS, weight_grid

# The placement rules live in :mod:`.placement`; these names stay importable from here.
__all__ = ["ACT_BITS", "BIAS_OPS", "FLOAT_DTYPES", "FUSED_ACTIVATIONS", "LINEAR_OPS", "PER_CHANNEL_OPS",
           "REQUANTIZING_OPS", "SCALE_PRESERVING_OPS", "WEIGHT_LEVELS", "Layer", "activation_tensors", "composites",
           "insert_fake_quant", "layers", "nudge", "scale_source"]

ACT_BITS = 8
MIN_RANGE = 1e-6  # a constant-zero activation still needs a positive step


def nudge(lo: float, hi: float, *, bits: int = ACT_BITS, narrow_range: bool = False) -> tuple[float, float]:
    """``[lo, hi]`` widened to contain 0, then nudged as ``FakeQuantWithMinMaxVars`` does (module
    docstring): the returned float32 range holds 0 exactly and is its own nudge."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise OptionError(f"range [{lo}, {hi}] is not finite")
    if hi - lo < MIN_RANGE:
        hi = lo + MIN_RANGE
    q_min, q_max = (1 if narrow_range else 0), 2 ** bits - 1
    scale = (hi - lo) / (q_max - q_min)
    zero = min(max(round(q_min - lo / scale), q_min), q_max)
    return float(np.float32((q_min - zero) * scale)), float(np.float32((q_max - zero) * scale))


def insert_fake_quant(model: Model, ranges: Mapping[str, tuple[float, float]], *, per_channel: bool = True,
                      keep_float: Collection[str] = (), narrow_range: bool = True,
                      weight_levels: int = WEIGHT_LEVELS, unranged: Collection[str] = ()) -> Model:
    """A copy of ``model`` with fake-quant ops on every layer's weights and on the activations
    :func:`activation_tensors` names; ``model`` itself is not changed.

    Args:
        model: a frozen model (the portable graph of :func:`tfopt.optimize`).
        ranges: ``"node:index"`` -> ``(min, max)`` for each activation tensor (from any range
            method); widened to contain 0 and nudged (module docstring).
        per_channel: one weight range per output channel (``FakeQuantWithMinMaxVarsPerChannel``);
            False: one per weight tensor.
        keep_float: TF node names of layers/ops to leave in float (no fake quant on their weights
            or output).
        narrow_range: weights on −127..127 (what TFLite's int8 kernels expect) rather than −128..127.
        weight_levels: steps of ``max|W|`` (127; 63 for 7-bit weights, see
            :mod:`tfopt.quantizing.engine.weight_grid`).
        unranged: activation tensors left without a fake quant although they would take one (a graph
            output its target computes in float, :func:`tfopt.quantizing.engine.kernel_ranges.float_outputs`).

    Returns:
        A new :class:`Model` with the same inputs and outputs (a graph output that gets a range
        keeps its name: the fake quant takes it, its producer becomes ``<name>/float``). It is its
        own ``reference`` (later stages are verified against the fake-quant graph); its
        ``baseline`` is the float model, which the report measures the int8 artifacts against.

    Raises:
        OptionError: a range is missing for a tensor that needs one, or is not finite; a
            ``keep_float`` name is unknown.
    """
    from tfopt._tf import const_value, graph_def_class
    from tfopt.graph import unique_name, validate
    from tfopt.graphdef.frames import loop_frames, loop_pivots
    from tfopt.graphdef.order import canonical_order

    frames, pivots = loop_frames(model.graph_def), loop_pivots(model.graph_def)

    def pivot(node: str) -> str | None:  # the control input a constant next to ``node`` needs
        return pivots[frames[node]] if node in frames else None

    kept = kept_nodes(model, keep_float)
    skipped_tensors = {canonical_tensor(t) for t in unranged}
    tensors = [t for t in activation_tensors(model, keep_float) if t not in skipped_tensors]
    given = {canonical_tensor(k): v for k, v in ranges.items()}
    missing = [t for t in tensors if t not in given]
    if missing:
        raise OptionError(f"no activation range for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                          "pass one (min, max) per tensor activation_tensors() names")
    graph = graph_def_class()()
    graph.CopyFrom(model.graph_def)
    nodes = node_map(graph)
    act_ranges = {t: nudge(*given[t]) for t in tensors}
    weights = biases = 0
    for layer in layers(model):
        if kept & set(layer.nodes):
            continue
        linear = nodes[layer.linear]
        value = const_value(const_input(nodes, linear, 1))
        lo, hi = weight_grid(value, linear.op, per_channel=per_channel,
                             levels=weight_levels).ranges(narrow_range=narrow_range)
        linear.input[1] = _quantize_weight(graph, layer.linear, linear.input[1], value.shape,
                                           lo, hi, depthwise=linear.op == "DepthwiseConv2dNative",
                                           narrow_range=narrow_range, control=pivot(layer.linear))
        weights += 1
        source = scale_source(nodes, linear.input[0], act_ranges)
        bias = next((nodes[n] for n in layer.nodes[1:] if nodes[n].op in BIAS_OPS), None)  # (after a Reshape)
        if bias is not None and source is not None:
            in_lo, in_hi = act_ranges[source]
            bias_scale = (in_hi - in_lo) / (2 ** ACT_BITS - 1) * hi / WEIGHT_LEVELS
            biases += _round_bias(graph, nodes, bias, bias_scale)
    output_nodes = {tensor_node(s.tensor) for s in model.outputs}
    readers: dict[str, list[tuple[Any, int]]] = {}
    for reader in graph.node:
        for i, ref in enumerate(reader.input):
            if not is_control(ref):
                readers.setdefault(canonical_tensor(ref), []).append((reader, i))
    for tensor in tensors:
        node, port = tensor_node(tensor), tensor_port(tensor)
        if node in output_nodes and port == 0:
            # The fake quant takes the output node's name, so the output and every reader of port 0
            # see the quantized value; the producer is renamed, and its other ports' readers follow it.
            producer = unique_name(graph, f"{node}/float")
            nodes[node].name = producer
            for reader, i in (r for ref, rs in readers.items() if tensor_node(ref) == node and tensor_port(ref) for r in rs):
                reader.input[i] = f"{producer}:{tensor_port(reader.input[i])}"
            _add_fake_quant(graph, node, producer, *act_ranges[tensor], narrow_range=False, control=pivot(node))
            continue
        name = unique_name(graph, f"{node}/act_quant" if port == 0 else f"{node}/act_quant_{port}")
        _add_fake_quant(graph, name, tensor if port else node, *act_ranges[tensor], narrow_range=False,
                        control=pivot(node))
        for reader, i in readers.get(tensor, []):
            reader.input[i] = name
    canonical_order(graph)
    validate(graph)
    fused, skipped = composites(model)
    provenance = {**model.provenance, "fake_quant": {"weights": weights, "biases": biases, "activations": len(tensors),
                                                     "per_channel": per_channel, "keep_float": sorted(kept),
                                                     "composites": [f"{c.kind}: {c.nodes[-1]}" for c in fused],
                                                     "composite_skips": skipped}}
    return model.replace(graph_def=graph, provenance=provenance, reference=None,
                         baseline=model.baseline or _float_runner(model))


# --- helpers ----------------------------------------------------------------------------------------

def _float_runner(model: Model) -> Any:
    """Runs ``model``'s frozen float graph, its TF session opened on first use."""
    opened: list[Any] = []

    def run(feeds: Mapping[str, Any]) -> dict[str, Any]:
        if not opened:
            from tfopt.runtimes.tensorflow import GraphRunner

            opened.append(GraphRunner(model.replace(reference=None)))
        return dict(opened[0](feeds))

    return run


def _quantize_weight(graph: Any, layer: str, source: str, shape: Sequence[int], lo: np.ndarray, hi: np.ndarray, *,
                     depthwise: bool, narrow_range: bool, control: str | None = None) -> str:
    """Add the weight's fake quant (a depthwise kernel's through ``[H, W, 1, in·mult]``); returns its tensor.
    ``control``: the loop pivot its constants need (module docstring), if the layer is in a loop."""
    from tfopt.graph import DT_FLOAT, DT_INT32, unique_name

    base = unique_name(graph, f"{layer}/weights_quant")
    if not (depthwise and lo.ndim):
        _add_fake_quant(graph, base, source, lo, hi, narrow_range=narrow_range, control=control)
        return base
    h, w, cin, mult = shape
    graph.node.extend([_const(f"{base}/flat_shape", np.array([h, w, 1, cin * mult], np.int32), control),
                       _const(f"{base}/shape", np.array(shape, np.int32), control),
                       _node(f"{base}/flat", "Reshape", [source, f"{base}/flat_shape"], T=DT_FLOAT, Tshape=DT_INT32)])
    _add_fake_quant(graph, f"{base}/fq", f"{base}/flat", lo, hi, narrow_range=narrow_range, control=control)
    graph.node.append(_node(base, "Reshape", [f"{base}/fq", f"{base}/shape"], T=DT_FLOAT, Tshape=DT_INT32))
    return base


def scale_source(nodes: Mapping[str, Any], ref: str, act_ranges: Mapping[str, Any]) -> str | None:
    """The activation tensor whose range sets the scale of ``ref``: itself, or the one a chain of
    scale-preserving ops (MaxPool, Reshape...) reads; None if there is none (a kept-float input)."""
    tensor = canonical_tensor(ref)
    while tensor not in act_ranges:
        node = nodes.get(tensor_node(tensor))
        if node is None or node.op not in SCALE_PRESERVING_OPS or not node.input:
            return None
        tensor = canonical_tensor(node.input[0])
    return tensor


def _round_bias(graph: Any, nodes: Mapping[str, Any], bias_op: Any, scale: np.ndarray) -> int:
    """Put the bias on the int32 grid the int8 kernels hold it on: ``b' = round(b / (s_in·s_w))·s_in·s_w``.
    Inside a loop the new bias comes in as the old one did, through a constant ``Enter``, and the old
    ``Enter``, read by nothing now, goes (OpenVINO's frontend refuses a loop input no op reads: "Model
    references undeclared parameters")."""
    from tfopt._tf import const_value
    from tfopt.graph import unique_name

    const = const_input(nodes, bias_op, 1)  # (an Add is a bias only with its constant second: _is_bias)
    if const is None:
        return 0
    bias = const_value(const).astype(np.float64)
    step = np.maximum(np.asarray(scale, np.float64), np.finfo(np.float32).tiny)
    name = unique_name(graph, f"{bias_op.name}/bias_quant")
    graph.node.append(_const(name, (np.round(bias / step) * step).astype(np.float32), None))
    enter = nodes.get(tensor_node(bias_op.input[1]))
    if enter is not None and enter.op == "Enter":
        entered = graph.node.add()
        entered.CopyFrom(enter)
        entered.name, entered.input[0] = unique_name(graph, f"{name}/Enter"), name
        name = entered.name
    bias_op.input[1] = name
    if enter is not None and enter.op == "Enter" and not any(tensor_node(ref) == enter.name
                                                             for node in graph.node for ref in node.input):
        graph.node.remove(enter)
    return 1


def _add_fake_quant(graph: Any, name: str, source: str, lo: np.ndarray | float, hi: np.ndarray | float, *,
                    narrow_range: bool, control: str | None = None) -> None:
    """``name = FakeQuantWithMinMaxVars[PerChannel](source, lo, hi)`` (per channel when ``lo`` is a vector)."""
    per_channel = bool(np.ndim(lo))
    graph.node.extend([_const(f"{name}/min", np.asarray(lo, np.float32), control),
                       _const(f"{name}/max", np.asarray(hi, np.float32), control)])
    op = "FakeQuantWithMinMaxVarsPerChannel" if per_channel else "FakeQuantWithMinMaxVars"
    fq = _node(name, op, [source, f"{name}/min", f"{name}/max"])
    fq.attr["num_bits"].i = ACT_BITS
    fq.attr["narrow_range"].b = narrow_range
    graph.node.append(fq)


def _const(name: str, value: np.ndarray, control: str | None) -> Any:
    """A ``Const`` node; inside a loop (``control``: its pivot) it runs in the loop's frame."""
    from tfopt._tf import make_const

    node = make_const(name, value)
    if control is not None:
        node.input.append(f"^{control}")
    return node


def _node(name: str, op: str, inputs: Sequence[str], **types: int) -> Any:
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
    for key, dtype in types.items():
        node.attr[key].type = dtype
    return node
