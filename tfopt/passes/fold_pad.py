"""Fold an explicit zero ``Pad`` into the following convolution's padding, where exactly equal.

    Conv2D(Pad(x, [[0,0],[t,b],[l,r],[0,0]]), W, padding=VALID)  =>  Conv2D(x, W, padding=SAME)

when (t, b, l, r) are exactly the amounts SAME would add: per spatial axis with input size n,
stride s and dilated kernel k' = (k−1)·d + 1, SAME pads p = max((⌈n/s⌉−1)·s + k' − n, 0) split
as (⌊p/2⌋, p − ⌊p/2⌋). Keras' ``ZeroPadding2D`` before a stride-2 conv (MobileNet, ResNet) is
this case. Other pads stay: ``EXPLICIT`` padding would be exact too, but TFLite cannot read it.

Not folded (reported): pads on batch/channel axes, a non-zero pad value, a pad that is not
SAME's, an unknown spatial size, a Pad read by more than the conv.
"""

from __future__ import annotations

import math
from typing import Any

from tfopt._tf import GraphFacts, const_value
from tfopt.graph import Model, attr_bytes, consumers, node_map, remove_nodes, tensor_node
from tfopt.passes._linear import plain_const
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

CONV_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative"})


def same_pads(size: int, stride: int, kernel: int, dilation: int) -> tuple[int, int]:
    k = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


class FoldPad(Pass):
    """fold explicit zero Pad into conv SAME padding where exact."""

    name = "fold_pad"

    def run(self, model: Model) -> PassResult:
        candidates = [n for n in model.graph_def.node if n.op in CONV_OPS and n.attr["padding"].s == b"VALID"]
        nodes = node_map(model.graph_def)
        candidates = [n for n in candidates if nodes.get(tensor_node(n.input[0])) is not None
                      and nodes[tensor_node(n.input[0])].op in ("Pad", "PadV2")]
        if not candidates:
            return PassResult(model, False)
        facts = GraphFacts(model.graph_def)
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        users = consumers(graph_def)
        skips: list[Skip] = []
        folded: set[str] = set()
        for conv in (nodes[c.name] for c in candidates):
            pad = nodes[tensor_node(conv.input[0])]
            reason = self._check(conv, pad, nodes, users, facts)
            if reason:
                skips.append(Skip(pad.name, f"pad not folded into '{conv.name}': {reason}"))
                continue
            conv.input[0] = pad.input[0]
            conv.attr["padding"].s = b"SAME"
            folded.add(pad.name)  # its only reader was this conv
        if folded:
            remove_nodes(graph_def, folded)
        changed = bool(folded)
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)

    @staticmethod
    def _check(conv: Any, pad: Any, nodes: dict[str, Any], users: dict[str, Any], facts: GraphFacts) -> str | None:
        if attr_bytes(conv, "data_format") not in (b"", b"NHWC"):
            return "channels-first layout"
        if len(users.get(pad.name, [])) > 1:
            return f"the padded tensor has {len(users[pad.name])} consumers"
        paddings_node = plain_const(nodes, pad.input[1])
        if paddings_node is None:
            return "paddings are not constant"
        if pad.op == "PadV2":
            value = plain_const(nodes, pad.input[2])
            if value is None or const_value(value).item() != 0:
                return "pad value is not zero"
        paddings = const_value(paddings_node).tolist()
        if len(paddings) != 4 or paddings[0] != [0, 0] or paddings[3] != [0, 0]:
            return f"pads {paddings} touch the batch or channel axis"
        shape = facts.shape(pad.input[0])
        weights = plain_const(nodes, conv.input[1])
        if shape is None or None in shape[1:3] or weights is None:
            return "spatial size or kernel size is not static"
        kernel = [d.size for d in weights.attr["value"].tensor.tensor_shape.dim][:2]
        strides = list(conv.attr["strides"].list.i)[1:3]
        dilations = list(conv.attr["dilations"].list.i)[1:3] or [1, 1]
        spatial = [int(d) for d in shape[1:3] if d is not None]
        want = [list(same_pads(spatial[i], strides[i], kernel[i], dilations[i])) for i in range(2)]
        if paddings[1:3] != want:
            return f"pads {paddings[1:3]} are not what SAME adds here ({want})"
        return None
