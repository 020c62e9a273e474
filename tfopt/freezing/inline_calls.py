"""Inline top-level function calls: ``PartitionedCall`` / ``StatefulPartitionedCall``.

``call(*args, f=F)`` => F's body, its nodes renamed ``<call>/...``, each argument an ``Identity``
of the matching call input, and the call node an ``IdentityN`` of F's results (consumers of
``call:k`` need no rewiring; Identity removal then bypasses it). TensorFlow's own freezing keeps
calls it will not inline, e.g. Keras 3's ``jit_compile`` depthwise convolution in ConvNeXt
(``_conv_xla``); tf2onnx cannot convert a call, and the optimization passes cannot see into one.
Calls whose function is not in the library are reported, not inlined.
"""

from __future__ import annotations

from tfopt.freezing.inline_cond import inline_function
from tfopt.graph import Model
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


class InlineCalls(Pass):
    name = "inline_calls"

    def run(self, model: Model) -> PassResult:
        if not any(n.op in CALL_OPS for n in model.graph_def.node):
            return PassResult(model, False)
        graph_def = copy_graph(model.graph_def)
        library = {f.signature.name: f for f in graph_def.library.function}
        skips, changed = [], False
        for node in [n for n in graph_def.node if n.op in CALL_OPS]:
            fdef = library.get(node.attr["f"].func.name)
            if fdef is None:
                skips.append(Skip(node.name, f"function '{node.attr['f'].func.name}' is not in the library"))
                continue
            inline_function(graph_def, node, fdef, node.name + "/")
            changed = True
        return PassResult(model.replace(graph_def=graph_def), changed, skips)
