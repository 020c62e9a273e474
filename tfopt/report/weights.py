"""What an artifact's weights look like: per constant tensor, its unique values and its zeros.

This is where clustering and pruning show (or do not): a clustered kernel holds N distinct values,
a pruned one mostly zeros, and neither shrinks a flatbuffer or protobuf, only its gzip. Read from
the artifact itself: TFLite buffers, ONNX initializers, OpenVINO Constant ops, GraphDef Consts.
Tensors under ``MIN_SIZE`` elements (shapes, axes, scales) are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

MIN_SIZE = 64


def weight_stats(fmt: str, path: str) -> list[dict[str, Any]]:
    """``[{name, shape, dtype, unique, sparsity}]`` for each weight tensor of the artifact, largest first."""
    readers = {"tflite": _tflite, "onnx": _onnx, "openvino": _openvino, "pb": _graphdef, "savedmodel": _graphdef}
    rows = [{"name": name, "shape": list(array.shape), "dtype": str(array.dtype),
             "unique": len(np.unique(array)), "sparsity": round(float(np.mean(array == 0)), 4)}
            for name, array in readers[fmt](path) if array.size >= MIN_SIZE and array.dtype.kind in "fiu"]
    return sorted(rows, key=lambda r: -int(np.prod(r["shape"])))


def _tflite(path: str) -> Iterator[tuple[str, np.ndarray]]:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    numpy_types = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
                   "int16": np.int16, "int32": np.int32, "int64": np.int64}
    seen = set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            dtype = numpy_types.get(types.get(tensor.type, ""))
            if tensor.buffer in seen or buffer.data is None or dtype is None:
                continue
            seen.add(tensor.buffer)
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            values = np.frombuffer(bytes(buffer.data), dtype=dtype)
            if tensor.sparsity is not None:  # sparse encoding (a pruned model): the buffer holds the non-zeros
                size = int(np.prod(tensor.shape))
                values = np.concatenate([values, np.zeros(max(size - values.size, 0), dtype)])
            yield name, values


def _onnx(path: str) -> Iterator[tuple[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    for tensor in onnx.load(path).graph.initializer:
        yield tensor.name, numpy_helper.to_array(tensor)


def _openvino(path: str) -> Iterator[tuple[str, np.ndarray]]:
    from tfopt._openvino import openvino

    xml = os.path.join(path, "model.xml") if os.path.isdir(path) else path
    for op in openvino().Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == "Constant":
            yield op.get_friendly_name(), np.asarray(op.get_data())


def _graphdef(path: str) -> Iterator[tuple[str, np.ndarray]]:
    from tfopt._tf import const_value
    from tfopt.loaders import load

    for node in load(path).graph_def.node:
        if node.op == "Const":
            yield node.name, np.asarray(const_value(node))
