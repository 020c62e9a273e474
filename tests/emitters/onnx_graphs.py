"""Tiny ONNX graphs for the post-conversion rewrite tests, and running them in ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tfopt.emitters.onnx_shapes import inferred_shapes


def graph_model(nodes: Sequence[Any], inits: dict[str, Any], x_shape: Sequence[Any] | None,
                outputs: Sequence[str] = ("y",)) -> Any:
    """One float input ``x`` (``x_shape`` None: rank unknown), the given nodes and float32 initializers."""
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None if x_shape is None
                                                         else list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def rewritten(rewrite: Callable[[Any, dict], int], model: Any) -> tuple[Any, int]:
    """A rewritten copy of ``model`` (the original untouched) and the rewrite's count."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out, rewrite(out.graph, inferred_shapes(out))


def run(model: Any, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]
