"""Fold a per-channel (or scalar) constant multiply into the preceding conv/matmul.

    Mul(conv(x, W), s)              => conv(x, W·s)
    Mul(BiasAdd(conv(x, W), b), s)  => BiasAdd(conv(x, W·s), b·s)

since (x∗W + b)·s = x∗(W·s) + b·s channel by channel (see ``_linear`` for each op's channel
axis). The Mul keeps its name as an ``Identity`` of its input, so consumers need no rewiring.
This is where BatchNorm's scale ends up (``fold_batchnorm``, or Keras 3's own decomposition).

Not folded (reported): a producer that is not a conv/matmul (e.g. a BatchNorm after a Concat),
weights or bias that are not constant or are shared, intermediate results read elsewhere, and a
constant that is not per output channel.
"""

from __future__ import annotations

from typing import Any

from tfopt._tf import const_value, make_const
from tfopt.graph import Model
from tfopt.passes._linear import PerChannelMatch, fold_per_channel, to_identity
from tfopt.passes.base import Pass, PassResult


class FoldMulIntoWeights(Pass):
    """fold per-channel multiplies into conv/matmul weights."""

    name = "fold_mul_into_weights"

    def run(self, model: Model) -> PassResult:
        return fold_per_channel(model, ops=frozenset({"Mul"}), what="multiply", rewrite=_fold)


def _fold(graph_def: Any, node: Any, match: PerChannelMatch) -> bool:
    linear, s, x = match.linear, match.vector, match.x
    linear.weights.CopyFrom(make_const(linear.weights.name, linear.scaled_weights(s),
                                       dtype=linear.weights.attr["dtype"].type))
    if linear.bias is not None:
        linear.bias.CopyFrom(make_const(linear.bias.name, const_value(linear.bias) * s,
                                        dtype=linear.bias.attr["dtype"].type))
    to_identity(node, x)
    return True
