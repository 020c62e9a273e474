"""Bind placeholders to constants.

``Placeholder(name=p)`` => ``Const(name=p, value=v)`` for every ``p`` in the bindings (training
flags bound to False, ``--set NAME=VALUE``). A ``PlaceholderWithDefault`` that is not a model input
becomes ``Identity(default)``: with nothing fed, that is exactly what it computes. One that is a
model input (its default from a ``tf.data`` iterator, or named in ``--inputs``) becomes a plain
``Placeholder``: the input is always fed, so what computes its default never runs and is pruned
(:mod:`tfopt.loaders.pipeline_inputs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfopt._tf import make_const
from tfopt.graph import Model, rewrite_node
from tfopt.passes.base import Pass, PassResult, copy_graph


class BindPlaceholders(Pass):
    name = "bind_placeholders"

    def __init__(self, values: Mapping[str, Any]):
        self.values = dict(values)

    def run(self, model: Model) -> PassResult:
        inputs = {s.node for s in model.inputs}
        graph_def = copy_graph(model.graph_def)
        changed = False
        for node in graph_def.node:
            if node.op in ("Placeholder", "PlaceholderV2", "PlaceholderWithDefault") and node.name in self.values:
                const = make_const(node.name, self.values[node.name], dtype=node.attr["dtype"].type)
                node.CopyFrom(const)
                changed = True
            elif node.op == "PlaceholderWithDefault" and node.name in inputs:  # fed: its default never runs
                node.op = "Placeholder"
                del node.input[:]
                changed = True
            elif node.op == "PlaceholderWithDefault" and node.name not in inputs:
                rewrite_node(node, "Identity", types={"T": node.attr["dtype"].type})
                changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)
