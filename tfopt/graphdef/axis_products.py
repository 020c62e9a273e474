"""Where a matrix product keeps a followed tensor's axes (:mod:`tfopt.graphdef.axis_walk`).

A product contracts one axis of each operand and keeps the others:

    MatMul(a, b)                    out axis 0 is a's row axis, out axis 1 b's column axis
                                    (``transpose_a``/``transpose_b``: the other axis of that operand)
    BatchMatMul(V2/V3)(x, y)        the batch axes (all but the last two) broadcast aligned from the
                                    right, out[-2] is x's row axis, out[-1] y's column axis (``adj_x``,
                                    ``adj_y``: the other one). Keras 3's ``Dense`` on a 3-D tensor, an
                                    attention's ``q @ k^T``, a graph convolution's ``A @ X``
    Einsum(equation)                every output letter holds the axis of that letter in the operand
                                    (``btn,nk->btk``: b and t kept); an equation with ``...`` says nothing

A ``BatchMatMul`` output has as many axes as its larger operand, so the other operand's rank is needed to
place the batch axes: read from the graph (:func:`rank_of`: constants, placeholders, followed tensors and
the ops that keep or set a rank); when it cannot be read, the trail ends there, as before.

A product makes dimensions no input axis holds (a ``Dense``'s units); a ``Reshape`` after it (Keras
``Flatten``: ``[b, 125, 10] -> [-1, 1250]``) keeps the batch only if those sizes are known. When the walk's
own sizes place no axis there, :class:`StaticShapes` (TensorFlow's shape inference on the main graph) gives
the tensor's static sizes and :func:`kept_by_sizes` places the axes with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import constant_behind
from tfopt.graph import tensor_node
from tfopt.graphdef.axis_sizes import Size, reshape_axes

Axes = tuple[int | None, ...]
PRODUCTS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"})
_KEEP_RANK = frozenset({"ReadVariableOp", "Identity", "Snapshot", "StopGradient", "Cast", "Neg", "Abs", "Relu", "Relu6", "Elu", "Selu",
                        "LeakyRelu", "Tanh", "Sigmoid", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Softmax",
                        "Transpose", "BiasAdd", "FusedBatchNormV3", "Floor", "Round", "LogicalNot"})
_BROADCAST = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum", "Pow", "FloorDiv",
                        "SquaredDifference", "Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual",
                        "LogicalAnd", "LogicalOr", "SelectV2"})
_IMPORT_BYTES = 256 << 20  # the largest graph imported for its static shapes
_SHAPED_BY = {"RandomUniform": 0, "RandomStandardNormal": 0, "TruncatedNormal": 0, "Fill": 0,
              "StatelessRandomUniformV2": 0, "StatelessRandomNormalV2": 0, "Reshape": 1}  # op -> its shape input


def product_axes(node: Any, slot: int, axes: Axes, nodes: Mapping[str, Any], axes_of: Mapping[str, Axes]) -> list[Axes]:
    """The output axes of the product ``node`` whose input ``slot`` is a followed tensor with ``axes``
    (see the module docstring); ``[]`` when the product says nothing about them."""
    op = node.op
    if op == "Einsum":
        return _einsum(node.attr["equation"].s.decode(), slot, axes)
    if op == "MatMul":
        if len(axes) != 2 or slot > 1:
            return []
        flip = node.attr["transpose_a" if slot == 0 else "transpose_b"].b
        kept = axes[1] if flip == (slot == 0) else axes[0]
        return [(kept, None) if slot == 0 else (None, kept)]
    if slot > 1 or len(axes) < 2:
        return []
    other = rank_of(node.input[1 - slot], nodes, axes_of)
    if other is None or other < 2:
        return []
    flip = node.attr["adj_x" if slot == 0 else "adj_y"].b
    kept = axes[-1] if flip == (slot == 0) else axes[-2]
    pad: Axes = (None,) * max(other - len(axes), 0)
    return [pad + axes[:-2] + ((kept, None) if slot == 0 else (None, kept))]


def _einsum(equation: str, slot: int, axes: Axes) -> list[Axes]:
    if "->" not in equation or "." in equation:
        return []
    lhs, out = equation.replace(" ", "").split("->")
    operands = lhs.split(",")
    if slot >= len(operands) or len(operands[slot]) != len(axes) or len(set(operands[slot])) != len(axes):
        return []
    mine = operands[slot]
    return [tuple(axes[mine.index(c)] if c in mine else None for c in out)]


def rank_of(ref: str, nodes: Mapping[str, Any], axes_of: Mapping[str, Axes], depth: int = 0) -> int | None:
    """The number of axes of the tensor ``ref`` as the graph states it, or None when it does not say."""
    ref = ref if ":" in ref else f"{ref}:0"
    if ref in axes_of:
        return len(axes_of[ref])
    node = nodes.get(tensor_node(ref))
    if node is None or depth > 32:
        return None
    op = node.op
    if op == "Const":
        return len(node.attr["value"].tensor.tensor_shape.dim)
    if op in {"Placeholder", "PlaceholderWithDefault", "VarHandleOp"}:
        shape = node.attr["shape"].shape
        return None if shape.unknown_rank else len(shape.dim)
    if op in _KEEP_RANK:
        return rank_of(node.input[0], nodes, axes_of, depth + 1)
    if op in _BROADCAST or op in {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}:
        ranks = [rank_of(r, nodes, axes_of, depth + 1) for r in node.input if not r.startswith("^")]
        return None if not ranks or None in ranks else max(r for r in ranks if r is not None)
    if op == "MatMul":
        return 2
    if op == "ExpandDims":
        inner = rank_of(node.input[0], nodes, axes_of, depth + 1)
        return None if inner is None else inner + 1
    if op in _SHAPED_BY:
        shape = constant_behind(nodes, node.input[_SHAPED_BY[op]])
        return None if shape is None else int(shape.size)
    return None


class StaticShapes:
    """The static shapes TensorFlow's shape inference gives the main graph's tensors (batch axes unknown),
    read once on first use: the sizes a product creates (a ``Dense``'s units), which a ``Reshape`` after it
    (Keras ``Flatten``) needs to tell whether its ``-1`` is the batch. Tensors inside function bodies, a
    graph TensorFlow cannot import, or one over 256 MB (its weights would be copied), have none."""

    def __init__(self, graph_def: Any) -> None:
        self.graph_def = graph_def
        self.facts: Any = None

    def dims(self, ref: str) -> tuple[int | None, ...] | None:
        if self.graph_def is None:
            return None
        from tfopt._tf import GraphFacts, tf

        if self.facts is None:
            if self.graph_def.ByteSize() > _IMPORT_BYTES:  # a second copy of a large model's weights: not for this
                self.graph_def = None
                return None
            try:
                self.facts = GraphFacts(self.graph_def)  # weights imported as placeholders of their shape
            except (ValueError, KeyError, TypeError, RuntimeError, tf().errors.OpError):
                self.graph_def = None  # an op TensorFlow does not know: no sizes from here on
                return None
        try:
            return self.facts.shape(ref)
        except (KeyError, ValueError):
            return None


def kept_by_sizes(target: Sequence[Size], axes: Axes, dims: Sequence[int | None], shape: Sequence[int | None]) -> Axes:
    """:func:`tfopt.graphdef.axis_sizes.reshape_axes` of a tensor whose own static ``dims`` are known (a
    position no input axis holds has a size too): each position stands for itself, then maps back to its axis."""
    sizes = [d if d is not None else (shape[a] if a is not None and a < len(shape) else None) for d, a in zip(dims, axes)]
    at = {a: p for p, a in reversed(list(enumerate(axes))) if a is not None}
    own = [("axis", at[s[1]]) if s is not None and s[0] == "axis" and s[1] in at else
           s if s is not None and s[0] == "const" else None for s in target]
    kept = reshape_axes(own, tuple(range(len(axes))), sizes)
    return tuple(None if p is None else axes[p] for p in kept)
