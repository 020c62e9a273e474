"""Fuse Conv/MatMul + BiasAdd + Relu/Relu6/Elu/LeakyRelu for the TensorFlow runtime.

    Relu(BiasAdd(Conv2D(x, W), b))  =>  _FusedConv2D(x, W, b, fused_ops=[BiasAdd, Relu])

done by Grappler's own remapper run offline, so the kernels are TensorFlow's. ``_Fused*`` ops
exist only in TensorFlow: this pass runs for the frozen ``.pb`` and the serving SavedModel, and
never for TFLite, ONNX or OpenVINO exports, which read the folded graph and fuse for themselves.
"""

from __future__ import annotations

from tfopt._grappler import run_grappler
from tfopt.graph import Model, op_histogram
from tfopt.passes.base import Pass, PassResult, protected_nodes


class FuseActivation(Pass):
    name = "fuse_activation"
    tf_runtime_only = True

    def run(self, model: Model) -> PassResult:
        graph_def = run_grappler(model.graph_def, sorted(protected_nodes(model)), ["remap"])
        changed = op_histogram(graph_def) != op_histogram(model.graph_def)
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)


class Grappler(Pass):
    """The escape hatch: Grappler with a user-chosen optimizer list (``--grappler a,b,c``)."""

    name = "grappler"

    def __init__(self, optimizers: list[str]):
        self.optimizers = optimizers
        # Remapping produces _Fused* ops that only TensorFlow reads.
        self.tf_runtime_only = "remap" in optimizers

    def run(self, model: Model) -> PassResult:
        graph_def = run_grappler(model.graph_def, sorted(protected_nodes(model)), self.optimizers)
        changed = graph_def.SerializeToString(deterministic=True) != model.graph_def.SerializeToString(deterministic=True)
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed)
