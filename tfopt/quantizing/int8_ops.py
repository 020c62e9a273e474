"""Which kernels each artifact really runs: int8 or a float fallback, layer by layer.

A converter given quantization ranges may still leave a layer in float (an op it cannot fuse, a
scale it cannot carry), and nothing fails: the model runs, only slower and differently. This reads
each artifact the way its runtime will execute it and classifies every *compute layer*
(convolution, depthwise convolution, dense/matmul), where the arithmetic and the int8 speed-up are:

==========  =====================================================================================
format      how a layer's precision is read
==========  =====================================================================================
tflite      the flatbuffer's operators: ``CONV_2D``/``DEPTHWISE_CONV_2D``/``FULLY_CONNECTED``/
            ``BATCH_MATMUL``/``TRANSPOSE_CONV``, by the type of their activation input (int8/uint8:
            ``int8``; int16: ``int16``; float with int8 weights: ``dynamic``; else ``float``).
onnx        the graph ONNX Runtime executes: the session's own optimized model (its QDQ fusions,
            at ``ORT_ENABLE_EXTENDED``, where they happen). ``QLinearConv``/``QLinearMatMul``/
            ``ConvInteger``/``MatMulInteger``/``QGemm`` are ``int8``; ``MatMulIntegerToFloat``/
            ``DynamicQuantizeMatMul`` ``dynamic``; ``Conv``/``MatMul``/``Gemm`` (fused or not)
            ``float``. A DequantizeLinear -> Conv -> QuantizeLinear group that ONNX Runtime did
            not fuse runs as a float Conv, and is counted so.
openvino    the CPU plugin's compiled model (``get_runtime_model()``, at f32 inference precision
            as :mod:`tfopt.runtimes.openvino` runs it): ``Convolution``/``Deconvolution``/
            ``FullyConnected``/``MatMul`` nodes by their ``runtimePrecision`` (u8/i8: ``int8``).
==========  =====================================================================================

``int8`` means 8-bit integer kernels (ONNX Runtime and OpenVINO take uint8 activations).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from tfopt.errors import OptionError

TFLITE_LAYERS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV",
                           "CONV_3D"})
ONNX_PRECISION = {
    **dict.fromkeys(("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "NhwcQLinearConv",
                     "QLinearConvTranspose"), "int8"),
    **dict.fromkeys(("MatMulIntegerToFloat", "DynamicQuantizeMatMul"), "dynamic"),
    **dict.fromkeys(("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm",
                     "NchwcConv"), "float"),
}
OPENVINO_LAYERS = frozenset({"Convolution", "Deconvolution", "FullyConnected", "MatMul"})
OPENVINO_PRECISION = {"u8": "int8", "i8": "int8", "f32": "float", "bf16": "float", "f16": "float", "i16": "int16",
                      "u16": "int16"}


def count_quantized_ops(format: str, path: str) -> dict[str, Any]:
    """Count an artifact's compute layers by the precision they execute in.

    Args:
        format: ``tflite``, ``onnx`` or ``openvino``.
        path: the artifact (an OpenVINO IR's ``.xml``).

    Returns:
        ``{"int8": n, "float": m, ...}`` (every precision seen, zeros for int8 and float
        included) and ``"layers"``: ``[{"name", "op", "precision"}]`` in execution order.

    Raises:
        OptionError: an unknown format, or a path that does not exist.
    """
    readers: dict[str, Callable[[str], list[dict[str, str]]]] = {
        "tflite": _tflite_layers, "onnx": _onnx_layers, "openvino": _openvino_layers}
    if format not in readers:
        raise OptionError(f"count_quantized_ops: format '{format}' is not one of {', '.join(readers)}")
    if not os.path.exists(path):
        raise OptionError(f"count_quantized_ops: {path} does not exist")
    layers = readers[format](path)
    counts: dict[str, Any] = {"int8": 0, "float": 0}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return {**counts, "layers": layers}


def _tflite_layers(path: str) -> list[dict[str, str]]:
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = schema.TensorType
    integer = {types.INT8: "int8", types.UINT8: "int8", types.INT16: "int16"}
    layers = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            if name not in TFLITE_LAYERS:
                continue
            activation, weight = (graph.Tensors(op.Inputs(j)).Type() for j in (0, 1))
            precision = integer.get(activation) or ("dynamic" if weight in (types.INT8, types.INT4) else "float")
            layers.append({"name": graph.Tensors(op.Outputs(0)).Name().decode(), "op": name, "precision": precision})
    return layers


def _onnx_layers(path: str) -> list[dict[str, str]]:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        # QDQ groups become int8 kernels at this level; ENABLE_ALL adds layout changes a saved model cannot hold
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    return [{"name": n.name, "op": n.op_type, "precision": ONNX_PRECISION[n.op_type]}
            for n in graph.node if n.op_type in ONNX_PRECISION]


def _openvino_layers(path: str) -> list[dict[str, str]]:
    from tfopt._openvino import openvino

    core = openvino().Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    layers = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        if kind not in OPENVINO_LAYERS:
            continue
        precision = info["runtimePrecision"].astype(str).lower()
        original = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else op.get_friendly_name()
        layers.append({"name": original.split(",")[0], "op": kind, "precision": OPENVINO_PRECISION.get(precision, precision)})
    return layers
