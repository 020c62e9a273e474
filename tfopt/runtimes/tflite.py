"""Run a ``.tflite`` model with LiteRT (``ai-edge-litert``; ``tf.lite.Interpreter`` is deprecated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import TensorSpec


class TFLiteRunner:
    """``runner(feeds) -> {output name: array}``; quantized int8 inputs/outputs are (de)quantized."""

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=path, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._inputs = _match(self._interpreter.get_input_details(), inputs)
        self._outputs = _by_signature(self._interpreter, outputs) or _match(self._interpreter.get_output_details(), outputs)

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        it = self._interpreter
        resized = False
        for name, detail in self._inputs.items():
            value = np.asarray(feeds[name])
            if tuple(detail["shape"]) != value.shape:
                it.resize_tensor_input(detail["index"], value.shape)
                resized = True
        if resized:
            it.allocate_tensors()
            self._inputs = {n: _refresh(it.get_input_details(), d) for n, d in self._inputs.items()}
        for name, detail in self._inputs.items():
            it.set_tensor(detail["index"], _quantize(np.asarray(feeds[name]), detail))
        it.invoke()
        return {name: _dequantize(it.get_tensor(d["index"]), d) for name, d in self._outputs.items()}


def _by_signature(interpreter: Any, specs: Sequence[TensorSpec]) -> dict[str, dict[str, Any]] | None:
    """Outputs through the flatbuffer's signature: tfopt converts one function whose outputs are
    named ``output_0``, ``output_1``... in the model's output order (tensor order is not that)."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return None
    key = next(iter(signatures))
    outputs = interpreter.get_signature_runner(key).get_output_details()
    if sorted(outputs) != sorted(f"output_{i}" for i in range(len(specs))):
        return None
    by_index = {d["index"]: d for d in interpreter.get_output_details()}
    return {spec.name: by_index[outputs[f"output_{i}"]["index"]] for i, spec in enumerate(specs)}


def _match(details: list[dict[str, Any]], specs: Sequence[TensorSpec]) -> dict[str, dict[str, Any]]:
    """Pair interpreter tensors with specs by name (``x``, ``x:0``, ``serving_default_x:0``), else order."""
    by_name = {}
    for spec in specs:
        for d in details:
            base = d["name"].split(":")[0]
            if base in (spec.name, spec.node) or base.endswith("_" + spec.name):
                by_name[spec.name] = d
                break
    if len(by_name) == len(specs):
        return by_name
    return {spec.name: d for spec, d in zip(specs, details)}


def _refresh(details: list[dict[str, Any]], old: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in details if d["index"] == old["index"])


def _quantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    scale, zero = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale and np.issubdtype(value.dtype, np.floating):
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
    return value.astype(dtype)


def _dequantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)
    return value
