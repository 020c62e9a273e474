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

