"""Shared by the weight-folding passes: convolutions/matmuls, their weights and output channels.

Output channel ``k`` of each op is produced by this slice of its weights ``W``:

=========================  ==================  =============================
op                         W layout            channel axis
=========================  ==================  =============================
Conv2D, Conv3D             [..., in, out]      last
MatMul                     [in, out]           last (axis 0 if transpose_b)
DepthwiseConv2dNative      [h, w, in, mult]    channel = i * mult + m
Conv2DBackpropInput        [h, w, out, in]     2
=========================  ==================  =============================

so scaling channel ``k`` by ``s[k]`` scales that slice: ``conv(x, W)·s == conv(x, W·s)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tfopt._tf import const_value
from tfopt.graph import attr_bytes, control_inputs, is_control, rewrite_node, tensor_node, tensor_port, unique_name
from tfopt.passes.base import PassResult, Skip, copy_graph

if TYPE_CHECKING:
    from tfopt.graph import Model

LINEAR_OPS = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul"})
BIAS_OPS = frozenset({"BiasAdd", "Add", "AddV2"})  # a per-channel constant added after a layer


@dataclass
class Linear:
    """A conv/matmul whose weights (and optional BiasAdd bias) can absorb a per-channel op."""

    op: Any
    weights: Any  # the Const node
    bias_add: Any | None = None
    bias: Any | None = None  # the Const node

    @property
    def channels(self) -> int:
        w = self.weights.attr["value"].tensor.tensor_shape.dim
        shape = [d.size for d in w]
        if self.op.op == "DepthwiseConv2dNative":
            return shape[2] * shape[3]
        if self.op.op == "Conv2DBackpropInput":
            return shape[2]
        if self.op.op == "MatMul" and self.op.attr["transpose_b"].b:
            return shape[0]
        return shape[-1]

    def scaled_weights(self, s: np.ndarray) -> np.ndarray:
        w = const_value(self.weights)
        if self.op.op == "DepthwiseConv2dNative":
            return w * s.reshape(w.shape[2], w.shape[3])
        if self.op.op == "Conv2DBackpropInput":
            return w * s[:, None]
        if self.op.op == "MatMul" and self.op.attr["transpose_b"].b:
            return w * s[:, None]
        return w * s


def plain_const(nodes: dict[str, Any], ref: str) -> Any | None:
    """The Const node behind ``ref`` if it is one with no control inputs (always live)."""
    node = nodes.get(tensor_node(ref))
    if node is None or node.op != "Const" or tensor_port(ref) != 0 or any(is_control(r) for r in node.input):
        return None
    return node


def const_operand(nodes: dict[str, Any], node: Any, *, second_only: bool = False) -> tuple[Any, str] | None:
    """``(const node, other input ref)`` for a binary op with exactly one plain-constant operand."""
    data = [r for r in node.input if not is_control(r)]
    if len(data) != 2:
        return None
    candidates = [(1, 0)] if second_only else [(1, 0), (0, 1)]
    for c, x in candidates:
        const = plain_const(nodes, data[c])
        if const is not None and plain_const(nodes, data[x]) is None:
            return const, data[x]
    return None


def channel_vector(value: np.ndarray, channels: int) -> np.ndarray | None:
    """``value`` as a length-``channels`` vector if it broadcasts per output channel (NHWC)."""
    if value.size == 1:
        return np.full(channels, value.reshape(()), dtype=value.dtype)
    if value.size == channels and value.shape[-1] == channels:
        return value.reshape(channels)
    return None


def find_linear(nodes: dict[str, Any], users: dict[str, list[Any]], ref: str, *, through_bias: bool = True) -> tuple[Linear | None, str | None]:
    """The conv/matmul feeding ``ref`` (possibly through a constant BiasAdd), or why not.

    Returns ``(Linear, None)``, ``(None, reason)``, or ``(None, None)`` when the producer is an
    Identity (another pass removes it; not worth reporting).
    """
    producer = nodes.get(tensor_node(ref))
    if producer is None or tensor_port(ref) != 0:
        return None, "input is not the first output of a node"
    if producer.op in ("Identity", "IdentityN"):
        return None, None
    bias_add = bias = None
    if producer.op == "BiasAdd" and through_bias:
        bias = plain_const(nodes, producer.input[1])
        if bias is None:
            return None, f"BiasAdd '{producer.name}' has a non-constant bias"
        if len(users.get(bias.name, [])) > 1:
            return None, f"bias '{bias.name}' is shared by {len(users[bias.name])} consumers"
        if len(users.get(producer.name, [])) > 1:
            return None, f"'{producer.name}' has {len(users[producer.name])} consumers"
        bias_add, producer = producer, nodes.get(tensor_node(producer.input[0]))
        if producer is None:
            return None, "BiasAdd input is missing"
    if producer.op not in LINEAR_OPS:
        return None, f"producer '{producer.name}' is {producer.op}, not a conv/matmul"
    if attr_bytes(producer, "data_format") not in (b"", b"NHWC", b"NDHWC"):
        return None, f"'{producer.name}' uses {attr_bytes(producer, 'data_format').decode()}; only channels-last is folded"
    if len(users.get(producer.name, [])) > 1:
        return None, f"'{producer.name}' output has {len(users[producer.name])} consumers"
    w_index = 1
    weights = plain_const(nodes, producer.input[w_index])
    if weights is None:
        src = nodes.get(tensor_node(producer.input[w_index]))
        return None, f"weights of '{producer.name}' are not constant ({src.op if src else 'missing'})"
    if len(users.get(weights.name, [])) > 1:
        return None, f"weights '{weights.name}' are shared by {len(users[weights.name])} consumers"
    if bias_add is not None and attr_bytes(bias_add, "data_format") not in (b"", b"NHWC", b"NDHWC"):
        return None, f"BiasAdd '{bias_add.name}' is channels-first"
    return Linear(producer, weights, bias_add, bias), None


@dataclass
class PerChannelMatch:
    """``node`` = op(x, c) where x comes from ``linear`` and c is the per-channel vector ``vector``."""

    linear: Linear
    vector: np.ndarray
    x: str


def match_per_channel(nodes: dict[str, Any], users: dict[str, list[Any]], node: Any, *, what: str,
                      second_only: bool = False) -> PerChannelMatch | str | None:
    """Match ``node`` (a binary op with one constant operand) against a preceding conv/matmul.

    Returns the match, a reason it does not fold (to report), or ``None`` when ``node`` is not a
    candidate at all (no constant operand) or only waits on another pass (an Identity in between).
    """
    operand = const_operand(nodes, node, second_only=second_only)
    if operand is None:
        return None
    const, x = operand
    linear, reason = find_linear(nodes, users, x)
    if linear is None:
        return f"{what} not folded: {reason}" if reason else None
    value = const_value(const)
    vector = channel_vector(value, linear.channels)
    if vector is None:
        return f"constant of shape {list(value.shape)} is not per output channel ({linear.channels})"
    return PerChannelMatch(linear, vector, x)


def fold_per_channel(model: Model, *, ops: frozenset[str], what: str, rewrite: Callable[[Any, Any, PerChannelMatch], bool],
                     second_only: frozenset[str] = frozenset()) -> PassResult:
    """The loop of a per-channel fold pass: each float node of ``ops`` matched (:func:`match_per_channel`; the
    constant only as the second operand for ``second_only`` ops), every reason it does not fold reported as a
    ``Skip``, and ``rewrite(graph_def, node, match)`` run on a copy of the graph, at most once per conv/matmul
    per run (the fixed point picks up the next); ``rewrite`` returns whether it rewrote. Returns the
    :class:`PassResult`."""
    from tfopt.graph import FLOAT_TYPES, consumers, node_map

    graph_def = copy_graph(model.graph_def)
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    skips: list[Skip] = []
    touched: set[str] = set()
    for node in list(graph_def.node):
        if node.op not in ops or node.attr["T"].type not in FLOAT_TYPES:
            continue
        match = match_per_channel(nodes, users, node, what=what, second_only=node.op in second_only)
        if isinstance(match, str):
            skips.append(Skip(node.name, match))
        if isinstance(match, PerChannelMatch) and match.linear.op.name not in touched \
                and rewrite(graph_def, node, match):
            touched.add(match.linear.op.name)
    changed = bool(touched)
    return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)


def to_identity(node: Any, source: str) -> None:
    """Turn ``node`` (a folded per-channel op) into ``Identity(source)``, keeping its name and controls."""
    rewrite_node(node, "Identity", inputs=[source, *control_inputs(node)], types={"T": node.attr["T"].type})


# --- a layer's bias: found, or created (the int8 weight transforms and the bias snap) ----------------

def find_bias(nodes: dict[str, Any], users: Mapping[str, list[tuple[Any, int]]], op: Any,
              channels: int) -> tuple[Any, Any] | None:
    """``(bias add, bias const)`` when ``op``'s only consumer adds an unshared per-channel constant."""
    outs = users.get(op.name, [])
    if len(outs) != 1 or outs[0][0].op not in BIAS_OPS:
        return None
    add = outs[0][0]
    operand = const_operand(nodes, add, second_only=add.op == "BiasAdd")
    if operand is None or tensor_node(operand[1]) != op.name or tensor_port(operand[1]) != 0:
        return None
    const = operand[0]
    shape = [d.size for d in const.attr["value"].tensor.tensor_shape.dim]
    if (len(users.get(const.name, [])) > 1 or not shape or shape[-1] != channels or int(np.prod(shape)) != channels
            or attr_bytes(add, "data_format") not in (b"", b"NHWC")):
        return None
    return add, const


def set_const(node: Any, value: np.ndarray) -> None:
    """Replace a Const node's value, keeping its dtype."""
    from tfopt._tf import tf

    node.attr["value"].tensor.CopyFrom(tf().make_tensor_proto(value, dtype=node.attr["dtype"].type))


def const_array(node: Any) -> np.ndarray:
    from tfopt._tf import const_value

    return np.asarray(const_value(node))


def add_bias(graph_def: Any, layer: Linear, delta: np.ndarray) -> bool:
    """Add ``delta`` to ``layer``'s bias; returns True when a new BiasAdd had to be created.

    A new BiasAdd takes the layer's name (the conv/matmul is renamed ``<name>/linear``), so every
    consumer, model outputs included, reads the biased tensor without rewiring.
    """
    if layer.bias is not None:
        value = const_array(layer.bias)
        set_const(layer.bias, (value.astype(np.float64).reshape(-1) + delta).astype(value.dtype).reshape(value.shape))
        return False
    from tfopt._tf import make_const

    dtype = layer.weights.attr["dtype"].type
    name = layer.op.name
    linear = unique_name(graph_def, f"{name}/linear")
    bias = make_const(unique_name(graph_def, f"{name}/bias"), delta.astype(const_array(layer.weights).dtype), dtype=dtype)
    layer.op.name = linear
    graph_def.node.append(bias)
    add = graph_def.node.add(name=name, op="BiasAdd", input=[linear, bias.name])
    add.attr["T"].type = dtype
    add.attr["data_format"].s = b"NHWC"
    layer.bias_add, layer.bias = graph_def.node[-1], graph_def.node[-2]
    return True
