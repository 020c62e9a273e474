"""Fold a per-channel (or scalar) constant add/subtract into the preceding conv/matmul's bias.

    Add(BiasAdd(conv(x, W), b), c)  => BiasAdd(conv(x, W), b + c)
    Add(conv(x, W), c)              => BiasAdd(conv(x, W), c)        (the Add becomes the BiasAdd)
    Sub(..., c)                     => the same with −c

This is where BatchNorm's shift (β − μ·s) ends up. The rewritten node keeps its name.

Not folded (reported): as for ``fold_mul_into_weights``; ``c − x`` (the conv would need negating).
"""

from __future__ import annotations

from typing import Any

from tfopt._tf import const_value, make_const
from tfopt.graph import Model, control_inputs, rewrite_node, unique_name
from tfopt.passes._linear import PerChannelMatch, fold_per_channel, to_identity
from tfopt.passes.base import Pass, PassResult

ADD_OPS = frozenset({"Add", "AddV2", "BiasAdd", "Sub"})


class FoldAddIntoBias(Pass):
    """fold per-channel adds into conv/matmul biases."""

    name = "fold_add_into_bias"

    def run(self, model: Model) -> PassResult:
        return fold_per_channel(model, ops=ADD_OPS, what="add", rewrite=_fold,
                                second_only=frozenset({"Sub", "BiasAdd"}))


def _fold(graph_def: Any, node: Any, match: PerChannelMatch) -> bool:
    linear, c, x = match.linear, match.vector, match.x
    if node.op == "BiasAdd" and linear.bias_add is None:
        return False  # a BiasAdd straight after a conv is already the folded form
    c = -c if node.op == "Sub" else c
    if linear.bias is not None:
        linear.bias.CopyFrom(make_const(linear.bias.name, const_value(linear.bias) + c,
                                        dtype=linear.bias.attr["dtype"].type))
        to_identity(node, x)
    else:
        bias_name = unique_name(graph_def, f"{node.name}/bias")
        graph_def.node.append(make_const(bias_name, c, dtype=node.attr["T"].type))
        rewrite_node(node, "BiasAdd", inputs=[x, bias_name, *control_inputs(node)],
                     types={"T": node.attr["T"].type}, strings={"data_format": b"NHWC"})
    return True
