"""An ``.onnx`` artifact's intermediate tensors, from ONNX Runtime with them added as graph outputs.

A graph output cannot be fused away, so marking a tensor changes what ONNX Runtime executes: a
``Conv`` whose output is marked no longer fuses with its ``Relu``. ONNX Runtime is therefore asked
first, on the unchanged model, which tensors survive its fusions (the optimized model it writes
with ``optimized_model_filepath`` at ``ORT_ENABLE_EXTENDED``, the level of its fusions); a tensor that does not (inside a ``FusedConv``) is
*interior* and is not marked: its group is compared at its boundary (the fused node's output).
Then the optimized node counts with and without the marked outputs, and the final outputs of the
two sessions, are compared and noted: a difference means a fusion was still lost. In a QDQ model
ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear into one QLinearConv: the int8 tensor
it keeps is read and dequantized with its QuantizeLinear's scale and zero point.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.debug.intermediates import Intermediates, concat, output_change
from tfopt.graph import Model
from tfopt.runtimes.align import onnx_tensors

FLOAT_TYPES = frozenset({1, 10, 11, 16})  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 (onnx.TensorProto)


def open_intermediates(path: str, model: Model) -> Intermediates:
    """The ``onnx`` artifact at ``path`` as :class:`Intermediates` (``model``: its inputs and outputs)."""
    import onnx

    from tfopt.runtimes.onnx import _pair

    proto = onnx.load_model(path)
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input,
                                                            *inferred.graph.output]}
    inputs = _pair(path, "input", [i.name for i in proto.graph.input], model.inputs)
    outputs = _pair(path, "output", [o.name for o in proto.graph.output], model.outputs)
    anchors = {tensor: s.node for s in model.inputs for name, tensor in inputs.items() if name == s.name}
    anchors.update({tensor: s.node for s in model.outputs for name, tensor in outputs.items() if name == s.name})
    scales = _quantize_params(proto)
    tensors = onnx_tensors(proto, [n for n, t in types.items() if t in FLOAT_TYPES] + list(scales))
    quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                                  "MatMulInteger", "ConvInteger") for n in proto.graph.node)
    optimized = _optimized(proto)
    kept = {o for n in optimized.graph.node for o in n.output} | {i.name for i in proto.graph.input}
    interior = {t.key for t in tensors if t.key not in kept}

    def run(keys: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        present = {o.name for o in copy.graph.output}
        for key in keys:
            if key not in present:
                copy.graph.output.append(onnx.helper.make_tensor_value_info(key, types.get(key, 1), None))
                present.add(key)
        session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
        plain = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        final = list(outputs.values())
        runs = [session.run([*keys, *final], {inputs[s.name]: x[s.name] for s in model.inputs}) for x in samples]
        normal = concat([plain.run(final, {inputs[s.name]: x[s.name] for s in model.inputs}) for x in samples], final)
        change = output_change(normal, concat([r[len(keys):] for r in runs], final))
        before, after = len(optimized.graph.node), len(_optimized(copy).graph.node)
        result.notes.append(f"onnx: {len(keys)} tensors added as graph outputs ({len(interior)} inside ONNX "
                            f"Runtime's fused nodes left out); optimized graph {before} -> {after} nodes"
                            f"{' (a fusion was disabled)' if after != before else ''}; final outputs differ "
                            f"from the unmarked run by max {change:.3g}")
        values = concat([r[:len(keys)] for r in runs], keys)
        return {k: _dequantize(v, scales[k]) if k in scales else v for k, v in values.items()}

    result = Intermediates("onnx", path, tensors, anchors, quantized, run, interior=interior)
    return result


def _quantize_params(proto: Any) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """QuantizeLinear output -> (scale, zero point, axis): ONNX Runtime fuses the float tensors around
    a QDQ pair into its QLinear kernels, and the int8 output it keeps is read back through these."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    out = {}
    for node in proto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in init:
            zero = init[node.input[2]] if len(node.input) > 2 and node.input[2] in init else np.zeros((), np.int32)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            out[node.output[0]] = (init[node.input[1]], zero, axis)
    return out


def _dequantize(value: np.ndarray, params: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """``(q - zero) * scale``, per tensor or along ``axis``."""
    scale, zero, axis = params
    shape = [1] * value.ndim
    if scale.ndim == 1 and value.ndim:
        shape[axis] = scale.size
    return ((value.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def _optimized(proto: Any) -> Any:
    """The graph ONNX Runtime executes after its fusions, read back from the file it writes."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # its fusions (FusedConv, MatMulAddFusion); the next level only changes layouts (NCHWc) and renames
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load_model(options.optimized_model_filepath)
