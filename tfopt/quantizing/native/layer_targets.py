"""Each target's selective quantization: its quantizable layers, a build that keeps some of them in
float through the target's own mechanism, and its intermediate tensors.

========  =====================================  ===========================================
target    layers                                 kept in float by
========  =====================================  ===========================================
tflite    QuantizationDebugger's tensors         the debugger's ``denylisted_nodes``
onnx      Conv/ConvTranspose/MatMul/Gemm nodes   ``quantize_static(nodes_to_exclude=...)``
openvino  Convolution/GroupConvolution/MatMul    NNCF's ``IgnoredScope(names=...)``
========  =====================================  ===========================================

Every layer has *aliases* (its node name, its output tensors without ``:0``, the fused TF names a
TFLite tensor carries, the TF node it computes) so users can name it as they know it. Which TF node
an artifact tensor computes, and so which tensor of a quantized model is a layer's, comes from the
one alignment :mod:`tfopt.runtimes.align` (also what ``tfopt debug compare`` uses).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.runtimes.align import align, onnx_tensors, openvino_tensors, tf_names
from tfopt.targets import TABLE
from tfopt.targets import target as record

ONNX_LAYERS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
OPENVINO_LAYERS = frozenset({"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData",
                             "GroupConvolutionBackpropData"})
# target -> the precisions it can keep layers in float at (from each record of tfopt.targets)
KEEP_FLOAT_PRECISIONS = {t.name: t.keep_float for t in TABLE.values() if t.keep_float}


@dataclass
class LayerQuantizer:
    """``build(path, keep_float) -> file`` quantizes every layer except ``keep_float``;
    ``tensor_errors(file)`` gives each layer's output error in that file against the float model."""

    target: str
    precision: str
    layers: list[dict[str, Any]]  # {"layer", "op", "aliases"}, in graph order
    build: Callable[[str, Sequence[str]], str]
    converted: Any = None  # the float conversion the builds start from (ONNX proto, ov.Model)
    tensor_errors: Callable[[str], dict[str, float]] | None = None
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # extra per-layer columns


def quantizer_for(target: str, precision: str, model: Model, samples: Sequence[dict[str, Any]],
                  opset: int | None = None) -> LayerQuantizer:
    """The :class:`LayerQuantizer` of ``target`` (its record's ``layer_quantizer`` in :mod:`tfopt.targets`)."""
    quantizer: LayerQuantizer = record(target).call("layer_quantizer", model, samples, precision, opset)
    return quantizer


def tflite_quantizer(model: Model, samples: Sequence[dict[str, Any]], precision: str, opset: int | None) -> LayerQuantizer:
    return _tflite(model, samples)


def onnx_quantizer(model: Model, samples: Sequence[dict[str, Any]], precision: str, opset: int | None) -> LayerQuantizer:
    return _onnx(model, samples, precision, opset)


def openvino_quantizer(model: Model, samples: Sequence[dict[str, Any]], precision: str, opset: int | None) -> LayerQuantizer:
    return _openvino(model, samples)


def _tflite(model: Model, samples: Sequence[dict[str, Any]]) -> LayerQuantizer:
    """Layers and per-tensor statistics from TFLite's QuantizationDebugger. ``error_in_steps`` is
    ``sqrt(mse) / scale``; it cannot rank on its own (an outlier layer also gets coarse steps)."""
    from tfopt.emitters.tflite import emit_tflite, tflite_debugger
    from tfopt.emitters.tflite_isolated import check_calibrates

    check_calibrates(model, samples)  # a graph with a loop: TFLite's calibrator may crash, so in a child first
    debugger = tflite_debugger(model, samples)
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    layers, stats = [], {}
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        mse, scale = float(row["mean_squared_error"]), float(row["scale"] or 0)
        name = row["tensor_name"]
        layers.append({"layer": name, "op": row["op_name"], "aliases": [name, *tf_names(name)]})
        stats[name] = {"error_in_steps": math.sqrt(mse) / scale if scale else 0.0, "mse": mse,
                       "max_abs_error": float(row["max_abs_error"])}

    def build(path: str, keep: Sequence[str]) -> str:
        return emit_tflite(model, path, precision="int8", calibration=samples, keep_float=keep)

    return LayerQuantizer("tflite", "int8", layers, build, stats=stats)


def _onnx(model: Model, samples: Sequence[dict[str, Any]], precision: str, opset: int | None) -> LayerQuantizer:
    from tfopt.emitters.onnx import convert_to_onnx, emit_onnx

    converted = convert_to_onnx(model, opset)
    aligned = align(model.graph_def, onnx_tensors(converted))
    layers = [{"layer": n.name, "op": n.op_type, "node": aligned.node_of(n.output[0]),
               "aliases": [n.name, *(_port0(o) for o in n.output[:1]), *_known(aligned.node_of(n.output[0]))]}
              for n in converted.graph.node if n.op_type in ONNX_LAYERS]

    def build(path: str, keep: Sequence[str]) -> str:
        return emit_onnx(model, path, precision=precision, calibration=samples, keep_float=keep, converted=converted)

    def tensor_errors(path: str) -> dict[str, float]:
        import onnx

        quantized = onnx.load_model(path)
        expected = _onnx_tensors(converted, layers, model, samples)
        got = _onnx_tensors(quantized, layers, model, samples)
        return {name: relative_error(got[name], expected[name]) for name in expected if name in got}

    return LayerQuantizer("onnx", precision, layers, build, converted, tensor_errors)


def _onnx_tensors(proto: Any, layers: list[dict[str, Any]], model: Model,
                  samples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Each layer's output, made a graph output, over every sample. The layer's tensor in ``proto``
    (which a quantizer may have renamed) is the first output of a layer op that
    :mod:`tfopt.runtimes.align` aligns with the layer's TF node."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    ops = {o: n.op_type for n in copy.graph.node for o in n.output[:1]}
    aligned = align(model.graph_def, onnx_tensors(copy))
    tensors = {}
    for row in layers:
        key = next((a.key for a in aligned.covering(row.get("node") or "") if ops.get(a.key) in ONNX_LAYERS), None)
        if key is not None:
            tensors[row["layer"]] = key
    known = {o.name for o in copy.graph.output}
    for tensor in tensors.values():
        if tensor not in known:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(tensors)
    runs = [session.run([tensors[n] for n in names], {s.tensor: x[s.name] for s in model.inputs}) for x in samples]
    return {name: np.concatenate([r[i] for r in runs]) for i, name in enumerate(names)}


def _openvino(model: Model, samples: Sequence[dict[str, Any]]) -> LayerQuantizer:
    from tfopt.emitters.openvino import convert_to_openvino, emit_openvino

    converted = convert_to_openvino(model)
    aligned = align(model.graph_def, openvino_tensors(converted))
    layers = []
    for op in converted.get_ordered_ops():
        if op.get_type_name() in OPENVINO_LAYERS:
            tensors = sorted(op.output(0).get_names())
            node = aligned.node_of(f"{op.get_friendly_name()}:0")
            layers.append({"layer": op.get_friendly_name(), "op": op.get_type_name(), "node": node,
                           "aliases": [op.get_friendly_name(), *(_port0(t) for t in tensors), *_known(node)],
                           "tensors": tensors})

    def build(path: str, keep: Sequence[str]) -> str:
        return emit_openvino(model, path, precision="int8", calibration=samples, keep_float=keep, converted=converted)

    def tensor_errors(path: str) -> dict[str, float]:
        from tfopt._openvino import openvino

        quantized = openvino().Core().read_model(path)
        expected = _openvino_tensors(converted.clone(), layers, model, samples)
        got = _openvino_tensors(quantized, layers, model, samples)
        return {row["layer"]: relative_error(got[row["layer"]], expected[row["layer"]])
                for row in layers if row["layer"] in got and row["layer"] in expected}

    return LayerQuantizer("openvino", "int8", layers, build, converted, tensor_errors)


def _openvino_tensors(ov_model: Any, layers: list[dict[str, Any]], model: Model,
                      samples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Each layer's output, added as a model output and run at explicit f32 precision. The layer's op
    in ``ov_model`` is the layer op that :mod:`tfopt.runtimes.align` aligns with the layer's TF node
    (OpenVINO drops most TF names; NNCF renames nothing)."""
    from tfopt._openvino import openvino

    ops = {f"{op.get_friendly_name()}:0": op for op in ov_model.get_ordered_ops()
           if op.get_type_name() in OPENVINO_LAYERS}
    aligned = align(model.graph_def, openvino_tensors(ov_model))
    ports = {}
    for row in layers:
        op = next((ops[a.key] for a in aligned.covering(row.get("node") or "") if a.key in ops), None)
        if op is not None:
            ports[row["layer"]] = op.output(0)
    added = ov_model.add_outputs(list(ports.values()))  # a model output already is one: not added twice
    compiled = openvino().Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    index = {}
    for name, out in zip(ports, added):
        names = set(out.get_names())
        index[name] = next((i for i, o in enumerate(compiled.outputs) if names & set(o.get_names())), None)
    order = [s.name for s in model.inputs]
    runs = [list(compiled([x[n] for n in order]).values()) for x in samples]
    return {name: np.concatenate([np.asarray(r[i]) for r in runs]) for name, i in index.items() if i is not None}


def _known(node: str | None) -> list[str]:
    return [node] if node else []


def _port0(tensor: str) -> str:
    return tensor[:-2] if tensor.endswith(":0") else tensor


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """``rmse(got - expected) / rms(expected)``."""
    expected = expected.astype(np.float64)
    scale = float(np.sqrt(np.mean(expected ** 2))) or 1.0
    return float(np.sqrt(np.mean((got.astype(np.float64) - expected) ** 2))) / scale
