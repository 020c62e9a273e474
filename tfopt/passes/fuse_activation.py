"""Fuse Conv/MatMul + BiasAdd + Relu/Relu6/Elu/LeakyRelu for the TensorFlow runtime.

    Relu(BiasAdd(Conv2D(x, W), b))  =>  _FusedConv2D(x, W, b, fused_ops=[BiasAdd, Relu])

done by Grappler's own remapper run offline, so the kernels are TensorFlow's. A fusion of the
bias alone is undone (see ``_unfuse_bias_only``): only conv/matmul + bias + activation is kept. ``_Fused*`` ops
exist only in TensorFlow: this pass runs for the frozen ``.pb`` and the serving SavedModel, and
never for TFLite, ONNX or OpenVINO exports, which read the folded graph and fuse for themselves.

Which activations fuse depends on the TensorFlow build and the CPU: Relu, Relu6, Elu and
LeakyRelu always; Swish (``x·sigmoid(x)``) only when TensorFlow runs with oneDNN, which it
turns on by itself only on some CPUs (``TF_ENABLE_ONEDNN_OPTS=1`` forces it).
:func:`remapper_fuses` asks the runtime instead of assuming. With oneDNN the remapper also fuses
layer norms (``_MklLayerNorm``), with a wrong epsilon that is put right here
(see :mod:`tfopt.passes._layer_norm_epsilon`).
"""

from __future__ import annotations

import functools
from typing import Any

from tfopt.errors import OptionError
from tfopt.graph import Model, op_histogram, rewrite_node, unique_name
from tfopt.graphdef.grappler import run_grappler
from tfopt.passes._layer_norm_epsilon import layer_norms_fused, restore_epsilons
from tfopt.passes.base import Pass, PassResult, Skip, protected_nodes


class FuseActivation(Pass):
    """Conv/MatMul+BiasAdd+activation -> _Fused* (TF runtime only)."""

    name = "fuse_activation"
    tf_runtime_only = True

    def run(self, model: Model) -> PassResult:
        keep = sorted(protected_nodes(model))
        graph_def = run_grappler(model.graph_def, keep, ["remap"])
        skips = [Skip(n, "layer norm not fused: its epsilon is not one scalar, which _MklLayerNorm needs")
                 for n in restore_epsilons(model.graph_def, graph_def)]
        # Layer norms the remapper alone missed would be fused by the serving session, wrongly.
        graph_def = layer_norms_fused(graph_def, keep)
        _unfuse_bias_only(graph_def)
        changed = op_histogram(graph_def) != op_histogram(model.graph_def)
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)


def _unfuse_bias_only(graph_def: Any) -> None:
    """Split ``_FusedConv2D/_FusedMatMul(fused_ops=[BiasAdd])`` back into the op + BiasAdd.

    A bias-only fusion gains nothing the runtime's own remapper would not do, and such a conv
    usually feeds a residual Add, which TensorFlow's oneDNN path fuses as Conv+BiasAdd+Add at run
    time only when the conv is still unfused (measured on ResNet50: about 1-3% at batch 1).
    """
    base_ops = {"_FusedConv2D": "Conv2D", "_FusedMatMul": "MatMul"}
    for node in list(graph_def.node):
        if node.op not in base_ops or list(node.attr["fused_ops"].list.s) != [b"BiasAdd"]:
            continue
        base = graph_def.node.add(name=unique_name(graph_def, f"{node.name}/unfused"), op=base_ops[node.op])
        base.input.extend(node.input[:2])
        for key in ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu",
                    "transpose_a", "transpose_b"):
            if key in node.attr:
                base.attr[key].CopyFrom(node.attr[key])
        rewrite_node(node, "BiasAdd", inputs=[base.name, node.input[2]], types={"T": node.attr["T"].type},
                     strings={"data_format": b"NHWC"})


ACTIVATIONS = ("relu", "relu6", "elu", "leaky_relu", "swish")


@functools.cache
def remapper_fuses(activation: str) -> bool:
    """Whether :class:`FuseActivation` fuses Conv2D + BiasAdd + ``activation`` here (this
    TensorFlow build, this CPU): asked of Grappler with a one-conv graph.

    Raises:
        OptionError: ``activation`` is not one of :data:`ACTIVATIONS`.
    """
    import numpy as np

    from tfopt._tf import tf
    from tfopt.graph import TensorSpec

    if activation not in ACTIVATIONS:
        raise OptionError(f"activation {activation!r}: choose from {', '.join(ACTIVATIONS)}")
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [1, 6, 6, 3], name="x")
        y = t.nn.bias_add(t.nn.conv2d(x, np.ones((3, 3, 3, 4), np.float32), 1, "SAME"), np.ones(4, np.float32))
        t.identity(y * t.sigmoid(y) if activation == "swish" else getattr(t.nn, activation)(y), name="out")
    probe = Model(graph_def=graph.as_graph_def(), inputs=[TensorSpec("x", "x:0", "float32", (1, 6, 6, 3))],
                  outputs=[TensorSpec("out", "out:0", "float32", (1, 6, 6, 4))])
    return "_FusedConv2D" in op_histogram(FuseActivation().run(probe).model.graph_def)


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
