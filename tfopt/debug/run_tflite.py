"""A ``.tflite`` artifact's intermediate tensors, from LiteRT with every tensor preserved.

``Interpreter(..., experimental_preserve_all_tensors=True)`` keeps each op's output instead of
reusing its memory. Tensors inside a delegate's partition are not the interpreter's to keep, so the
intermediates run uses the builtin kernels without default delegates (no XNNPACK); the normal
runner (:mod:`tfopt.runtimes.tflite`, XNNPACK) runs too, and the largest difference of the final
outputs between the two is noted: that is what keeping the tensors changed. TFLite fuses in the
converter (one ``CONV_2D`` with a fused ReLU has one output tensor, named ``relu;bias;conv``), so
every tensor is a group boundary. int8/int16 tensors are dequantized with their own scale and zero point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.debug.intermediates import Intermediates, concat, output_change
from tfopt.graph import Model
from tfopt.runtimes.align import ArtifactTensor


def open_intermediates(path: str, model: Model) -> Intermediates:
    """The ``tflite`` artifact at ``path`` as :class:`Intermediates` (``model``: its inputs and outputs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tfopt.runtimes.tflite import (
        _by_name,
        _dequantize,
        _inputs_by_signature,
        _outputs_by_signature,
        _quantize,
        _signature,
    )

    it = Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    signature = _signature(it)
    inputs = _inputs_by_signature(it, signature, model.inputs) or _by_name(path, "input", it.get_input_details(),
                                                                          model.inputs)
    outputs = _outputs_by_signature(it, signature, model.outputs) or _by_name(
        path, "output", it.get_output_details(), model.outputs)
    details = {d["index"]: d for d in it.get_tensor_details()}
    tensors, quantized = _tensors(it, details)
    anchors = {str(d["index"]): s.node for specs, pairs in ((model.inputs, inputs), (model.outputs, outputs))
               for s in specs for name, d in pairs.items() if name == s.name}

    def feed(sample: dict[str, np.ndarray]) -> None:
        resized = False
        for name, d in inputs.items():
            if tuple(it.get_tensor(d["index"]).shape) != sample[name].shape:
                it.resize_tensor_input(d["index"], sample[name].shape)
                resized = True
        if resized:
            it.allocate_tensors()
        for name, d in inputs.items():
            it.set_tensor(d["index"], _quantize(np.asarray(sample[name]), d))
        it.invoke()

    def run(keys: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        from tfopt.runtimes.tflite import open_runner

        runs, finals = [], []
        for sample in samples:
            feed(sample)
            runs.append([_dequantize(it.get_tensor(int(k)), details[int(k)]) for k in keys])
            finals.append([_dequantize(it.get_tensor(d["index"]), d) for d in outputs.values()])
        plain = open_runner(path, model)
        normal = concat([[plain(x)[name] for name in outputs] for x in samples], list(outputs))
        change = output_change(normal, concat(finals, list(outputs)))
        result.notes.append(f"tflite: intermediates from LiteRT's builtin kernels with every tensor preserved "
                            f"(no XNNPACK delegate); final outputs differ from the normal (XNNPACK) run by "
                            f"max {change:.3g}")
        return concat(runs, keys)

    result = Intermediates("tflite", path, tensors, anchors, quantized, run)
    return result


def _tensors(it: Any, details: dict[int, dict[str, Any]]) -> tuple[list[ArtifactTensor], bool]:
    """Op outputs in execution order; graph inputs first. Quantized: any int8/int16 activation."""
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    produced = {int(o) for op in ops for o in op["outputs"]}
    out, quantized = [], False
    for index in it.get_input_details():
        out.append(_tensor(details[index["index"]], "Input", ()))
    for op in ops:
        for o in op["outputs"]:
            d = details.get(int(o))
            if d is None:
                continue
            ins = tuple(str(int(i)) for i in op["inputs"] if int(i) >= 0 and int(i) in produced | _inputs(it))
            out.append(_tensor(d, op["op_name"], ins))
            quantized = quantized or (d["dtype"] in (np.int8, np.int16) and bool(d["quantization"][0]))
    return out, quantized


def _inputs(it: Any) -> set[int]:
    return {d["index"] for d in it.get_input_details()}


def _tensor(d: dict[str, Any], op: str, inputs: tuple[str, ...]) -> ArtifactTensor:
    scaled = np.issubdtype(d["dtype"], np.integer) and bool(d["quantization"][0])
    return ArtifactTensor(str(d["index"]), (str(d["name"]),), op, inputs,
                          value=bool(np.issubdtype(d["dtype"], np.floating) or scaled))
