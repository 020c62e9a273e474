"""What kind of tensor a graph node is, for choosing outputs: a head's plain form (:data:`HEAD_OPS`),
a decision on a float tensor (:func:`decision_source`: ``argmax(p)``, ``cast(p > 0.5)``), a source
(placeholder, pipeline element, variable), and its dtype.

Shared by :mod:`tfopt.loaders.output_choice`, :mod:`tfopt.loaders.training_nodes` and
:mod:`tfopt.loaders.metric_state` (one definition below all three).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tfopt.graph import FLOAT_TYPES, PLACEHOLDER_OPS, dtype_name, tensor_node, tensor_port
from tfopt.loaders.pipeline_inputs import is_pipeline_source

# Ops that pass one float tensor on, reshaped, transposed (a time-major copy for a CTC loss) or
# squashed, without weights: a head's own form.
HEAD_OPS = frozenset({"Identity", "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Reshape", "Squeeze",
                      "ExpandDims", "StopGradient", "Snapshot", "Transpose"})
# Ops that turn scores into a decision (an index, a flag, a rounded value).
DECISION_OPS = frozenset({"ArgMax", "ArgMin", "Cast", "Round", "Greater", "GreaterEqual", "Less", "LessEqual",
                          "Equal", "NotEqual", "Identity", "Squeeze", "Reshape", "ExpandDims", "Sign", "Rint", "Floor", "Ceil"})
# Float-typed decision ops: cast(round(prob)) decides on prob.
ROUNDING_OPS = frozenset({"Round", "Rint", "Floor", "Ceil", "Sign"})
BOOL_OPS = frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd",
                      "LogicalOr", "LogicalNot", "IsNan", "IsInf", "IsFinite", "InTopK", "InTopKV2",
                      "ApproximateEqual"})
# Ops whose value depends on their input's shape only (ones_like(x) is OnesLike, or Fill(Shape(x))).
SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank", "OnesLike", "ZerosLike"})
_DTYPE_ATTRS = ("output_type", "out_type", "DstT", "dtype", "Tout", "T")


def node_dtype(node: Any) -> str:
    """The dtype of ``node``'s first output, from its attributes (comparisons give ``bool``)."""
    if node.op in BOOL_OPS:
        return "bool"
    for key in _DTYPE_ATTRS:
        if key in node.attr and node.attr[key].type:
            return dtype_name(node.attr[key].type)
        if key in node.attr and node.attr[key].list.type:  # a function call's Tout: its first output's
            return dtype_name(node.attr[key].list.type[0])
    return "float32"


def is_float(node: Any) -> bool:
    return node_dtype(node) in {dtype_name(t) for t in FLOAT_TYPES} | {"bfloat16"}


def _data_inputs(node: Any, nodes: dict[str, Any]) -> list[Any]:
    """Producers of ``node``'s data inputs, constants left out (a threshold, a shape, an axis)."""
    found = [nodes[tensor_node(r)] for r in node.input if not r.startswith("^") and tensor_node(r) in nodes]
    return [n for n in found if n.op != "Const"]


def is_source(node: Any) -> bool:
    """Where the model's inputs come from: a placeholder, or a ``tf.data`` iterator's next element
    (a training graph fed by its pipeline has no placeholder at all)."""
    return node.op in PLACEHOLDER_OPS or is_pipeline_source(node.op)


def reaches(node: Any, nodes: dict[str, Any], bad: Callable[[Any], bool], *, missing_bad: bool = False) -> bool:
    """Walk back from ``node`` through data inputs, stopping at constants, :data:`SHAPE_OPS` and
    sources (:func:`is_source`): True when ``bad(n)`` holds for a node on the way (sources included),
    or, with ``missing_bad``, when an input names no node of the graph. Iterative: graphs are deep.
    A ``Shape`` of a tensor whose size values chose is walked through (:mod:`tfopt.graphdef.dynamic_size`)."""
    from tfopt.graphdef.dynamic_size import SizedByValues

    sized = SizedByValues(nodes)
    stack, seen = [node], set()
    while stack:
        cur = stack.pop()
        if cur.name in seen:
            continue
        seen.add(cur.name)
        if cur.op == "Const" or (cur.op in SHAPE_OPS and not sized(cur)):
            continue
        if bad(cur):
            return True
        if is_source(cur):
            continue
        refs = [tensor_node(r) for r in cur.input if not r.startswith("^")]
        if missing_bad and any(r not in nodes for r in refs):
            return True
        stack += [nodes[r] for r in refs if r in nodes]
    return False


def _value_free(node: Any, nodes: dict[str, Any]) -> bool:
    """True when ``node``'s value depends on no tensor's values, only on constants and on shapes
    (``Shape``/``Size``/``Rank`` of something): a threshold such as ``ones_like(x) * 0.5``."""
    return not reaches(node, nodes, lambda n: is_source(n) or not n.input, missing_bad=True)


def decision_source(node: Any, nodes: dict[str, Any]) -> tuple[list[str], Any | None]:
    """``(chain, F)``: the decision ops from ``node`` back to the one float tensor ``F`` they
    decide on (``F`` is None when ``node`` is not such a decision). A comparison's other side may
    be a threshold computed from constants and shapes only (``prob > ones_like(x) * 0.5``)."""
    chain: list[str] = []
    cur = node
    while cur.op in DECISION_OPS and (not is_float(cur) or cur.op in ROUNDING_OPS):
        chain.append(cur.name)
        refs = [r for r in cur.input if not r.startswith("^") and tensor_node(r) in nodes
                and nodes[tensor_node(r)].op != "Const" and not _value_free(nodes[tensor_node(r)], nodes)]
        if len(refs) != 1 or tensor_port(refs[0]) != 0:
            # a second output of a multi-output op (TopKV2:1, a function call's :1) is a tensor of its own:
            # the op's first output (the only one node_dtype sees) is not what it decides on
            return chain, None
        cur = nodes[tensor_node(refs[0])]
    if not chain or not is_float(cur) or cur.op in PLACEHOLDER_OPS:
        return chain, None
    return chain, cur


def head_root(node: Any, nodes: dict[str, Any], ops: frozenset[str] = HEAD_OPS) -> str:
    """The tensor ``node`` is a plain form of (back through ``ops``, :data:`HEAD_OPS` by default)."""
    cur = node
    while cur.op in ops:
        inputs = [n for n in _data_inputs(cur, nodes) if is_float(n)]
        if len(inputs) != 1:
            break
        cur = inputs[0]
    return str(cur.name)
