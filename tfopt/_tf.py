"""The single place tfopt imports TensorFlow, on first use only.

Importing TensorFlow costs seconds; ``tfopt --help`` and ``tfopt inspect x.pb`` must not pay it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_TF: Any = None


def tf() -> Any:
    """Return the ``tensorflow`` module, importing it quietly the first time."""
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        _TF = tensorflow
    return _TF


def without_keras() -> None:
    """Before TensorFlow's first import, in a child process that converts graphs and SavedModels (the
    tf2onnx child, the large-model converter's): TensorFlow's ``__init__`` imports Keras when it can (for
    its optimizers' SavedModel registrations), and Keras imports scikit-learn and matplotlib when they are
    installed: about a third of the import's CPU, none of it used there (tf2onnx imports Keras only in its
    Keras front end). With ``keras`` and ``tf_keras`` unimportable, TensorFlow skips them."""
    import sys

    sys.modules.update(dict.fromkeys(("keras", "tf_keras")))  # type: ignore[arg-type]


def graph_def_class() -> Any:
    from tensorflow.core.framework import graph_pb2

    return graph_pb2.GraphDef


def make_const(name: str, value: Any, dtype: Any = None) -> Any:
    """A ``Const`` NodeDef named ``name`` holding ``value``."""
    t = tf()
    from tensorflow.core.framework import node_def_pb2

    tensor = t.make_tensor_proto(value, dtype=dtype)
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)
    return node


def const_value(node: Any) -> np.ndarray:
    return tf().make_ndarray(node.attr["value"].tensor)



class GraphFacts:
    """Static shapes, dtypes and statefulness, read by importing a GraphDef into ``tf.Graph`` once.

    Large constants (weights) are imported as placeholders of the same dtype and shape: shape
    inference needs only that, and importing megabytes of weights per pass would dominate.
    """

    SKELETON_BYTES = 1024

    def __init__(self, graph_def: Any):
        t = tf()
        skeleton = type(graph_def)()
        skeleton.CopyFrom(graph_def)
        for node in skeleton.node:
            tensor = node.attr["value"].tensor if node.op == "Const" else None
            if tensor is not None and len(tensor.tensor_content) > self.SKELETON_BYTES:
                shape = type(node.attr["value"].tensor.tensor_shape)()
                shape.CopyFrom(tensor.tensor_shape)
                dtype = node.attr["dtype"].type
                node.op = "Placeholder"
                node.attr.clear()
                node.attr["dtype"].type = dtype
                node.attr["shape"].shape.CopyFrom(shape)
        self.graph = t.Graph()
        with self.graph.as_default():
            t.graph_util.import_graph_def(skeleton, name="")

    def shape(self, tensor: str) -> tuple[int | None, ...] | None:
        from tfopt.graph import canonical_tensor

        s = self.graph.get_tensor_by_name(canonical_tensor(tensor)).shape
        return None if s.rank is None else tuple(s.as_list())

    def dtypes(self, node: str) -> list[Any]:
        return [o.dtype for o in self.graph.get_operation_by_name(node).outputs]

    @staticmethod
    def is_stateful(op_type: str) -> bool:
        from tensorflow.python.framework import op_def_registry

        op_def = op_def_registry.get(op_type)
        return op_def is None or op_def.is_stateful


# Grappler's optimizers (about 14 in a session's default pipeline) each copy the whole graph, its
# constants' bytes included, when a session first runs it: measured 20-50 s for a 9-node graph
# holding one 64 MB constant (4 s with them off), paid again by every new session (verification,
# calibration, debug). tfopt's passes already made the graph what it runs; a graph holding this
# much in constants runs as it is.
PLAIN_SESSION_CONST_BYTES = 16 << 20


def constant_bytes(graph_def: Any) -> int:
    """The bytes of the graph's ``Const`` values (its functions' included)."""
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return sum(len(n.attr["value"].tensor.tensor_content) for n in nodes if n.op == "Const")


def graph_session(graph: Any, graph_def: Any, *, rewrites: bool = True) -> Any:
    """A ``tf.compat.v1.Session`` over ``graph`` (imported from ``graph_def``), with grappler's
    meta-optimizer off when ``graph_def`` holds :data:`PLAIN_SESSION_CONST_BYTES` or more in constants,
    or when ``rewrites`` is False.

    ``rewrites=False`` runs the graph as written: once weights are constants, grappler folds
    ``conv(x, W)·s`` into ``conv(x, W·s)`` and fuses ops, which changes float32 rounding (4.5e-5 on a
    66-conv network). The setting is this session's ``ConfigProto``: nothing process-wide changes.
    """
    t = tf()
    config = t.compat.v1.ConfigProto()
    if not rewrites or constant_bytes(graph_def) >= PLAIN_SESSION_CONST_BYTES:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return t.compat.v1.Session(graph=graph, config=config)
