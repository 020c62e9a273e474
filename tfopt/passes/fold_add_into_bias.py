"""Fold a per-channel (or scalar) constant add/subtract into the preceding conv/matmul's bias.

    Add(BiasAdd(conv(x, W), b), c)  => BiasAdd(conv(x, W), b + c)
    Add(conv(x, W), c)              => BiasAdd(conv(x, W), c)        (the Add becomes the BiasAdd)
    Sub(..., c)                     => the same with −c

This is where BatchNorm's shift (β − μ·s) ends up. The rewritten node keeps its name.

Not folded (reported): as for ``fold_mul_into_weights``; ``c − x`` (the conv would need negating).
"""

from __future__ import annotations

from tfopt._tf import const_value, make_const
from tfopt.graph import FLOAT_TYPES, Model, consumers, control_inputs, node_map, rewrite_node, unique_name
from tfopt.passes._linear import PerChannelMatch, match_per_channel, to_identity
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

ADD_OPS = frozenset({"Add", "AddV2", "BiasAdd", "Sub"})


class FoldAddIntoBias(Pass):
    """fold per-channel adds into conv/matmul biases."""

    name = "fold_add_into_bias"

    def run(self, model: Model) -> PassResult:
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        users = consumers(graph_def)
        skips: list[Skip] = []
        touched: set[str] = set()
        for node in list(graph_def.node):
            if node.op not in ADD_OPS or node.attr["T"].type not in FLOAT_TYPES:
                continue
            match = match_per_channel(nodes, users, node, what="add", second_only=node.op in ("Sub", "BiasAdd"))
            if isinstance(match, str):
                skips.append(Skip(node.name, match))
            if not isinstance(match, PerChannelMatch) or match.linear.op.name in touched:
                continue
            linear, c, x = match.linear, match.vector, match.x
            if node.op == "BiasAdd" and linear.bias_add is None:
                continue  # a BiasAdd straight after a conv is already the folded form
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
            touched.add(linear.op.name)
        changed = bool(touched)
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)
