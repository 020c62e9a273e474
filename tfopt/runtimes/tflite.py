"""Run a ``.tflite`` model with LiteRT (``ai-edge-litert``; ``tf.lite.Interpreter`` is deprecated)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.base import pair_by_name


class TFLiteRunner:
    """``runner(feeds) -> {output name: array}``; quantized int8 inputs/outputs are (de)quantized.

    Pairing: tfopt converts one concrete function, so the flatbuffer has one signature whose input
    keys are the graph's placeholder names (:attr:`TensorSpec.node`) and whose output keys are the
    model's output names (:mod:`tfopt.emitters.tflite_names`; files of earlier tfopt versions:
    ``output_0``, ``output_1``... in the model's output order, tensor order is not that). Without
    that signature (a flatbuffer tfopt did not write), tensors are paired on their own names
    (``x``, ``x:0``, ``serving_default_x:0``); a spec no name matches raises.
    """

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.inputs, self.outputs = list(inputs), list(outputs)
        self._interpreter = Interpreter(model_path=path, num_threads=threads)
        # Allocated at the first call, at the fed shapes: at the file's default shape (1 for each
        # open dimension) a fully convolutional model with VALID convolutions has no output.
        self._allocated = False
        signature = _signature(self._interpreter)
        self._inputs = _inputs_by_signature(self._interpreter, signature, inputs) or _by_name(
            path, "input", self._interpreter.get_input_details(), inputs)
        self._outputs = _outputs_by_signature(self._interpreter, signature, outputs) or _by_name(
            path, "output", self._interpreter.get_output_details(), outputs)
        # A file whose every input fixes a batch of 1 (tfopt's TFLite retry pins an open batch so a
        # recurrent loop lowers to builtins: Target.fixed_shapes) takes one sample per call.
        self._batch_one = bool(self._inputs) and all(
            len(d.get("shape_signature", d["shape"])) > 0 and d.get("shape_signature", d["shape"])[0] == 1
            for d in self._inputs.values())

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs on ``feeds``. A batch of n > 1 fed to a file that fixes a batch of 1 runs one
        sample at a time and concatenates the outputs along axis 0 (each sample is independent)."""
        sizes = {np.shape(feeds[name])[0] if np.ndim(feeds[name]) else 1 for name in self._inputs}
        if self._batch_one and len(sizes) == 1 and (n := sizes.pop()) > 1:
            parts = [self._run({name: np.asarray(feeds[name])[i:i + 1] for name in self._inputs}) for i in range(n)]
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return self._run(feeds)

    def _run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        it = self._interpreter
        resized = False
        for name, detail in self._inputs.items():
            value = np.asarray(feeds[name])
            if tuple(detail["shape"]) != value.shape:
                it.resize_tensor_input(detail["index"], value.shape)
                resized = True
        if resized or not self._allocated:
            it.allocate_tensors()
            self._allocated = True
            self._inputs = {n: _refresh(it.get_input_details(), d) for n, d in self._inputs.items()}
        for name, detail in self._inputs.items():
            it.set_tensor(detail["index"], _quantize(np.asarray(feeds[name]), detail))
        it.invoke()
        return {name: _dequantize(it.get_tensor(d["index"]), d) for name, d in self._outputs.items()}

    def close(self) -> None:
        """LiteRT frees the interpreter with its last reference."""
        self._interpreter = None


def _signature(interpreter: Any) -> Any:
    signatures = interpreter.get_signature_list()
    return interpreter.get_signature_runner(next(iter(signatures))) if len(signatures) == 1 else None


def _inputs_by_signature(interpreter: Any, signature: Any, specs: Sequence[TensorSpec]) -> dict[str, dict[str, Any]] | None:
    """Inputs through the signature, whose keys are the placeholder names (or the spec names)."""
    if signature is None:
        return None
    keys = signature.get_input_details()
    by_index = {d["index"]: d for d in interpreter.get_input_details()}
    out = {}
    for spec in specs:
        key = next((k for k in (spec.node, spec.name) if k in keys), None)
        if key is None:
            return None
        out[spec.name] = by_index[keys[key]["index"]]
    return out


def _outputs_by_signature(interpreter: Any, signature: Any, specs: Sequence[TensorSpec]) -> dict[str, dict[str, Any]] | None:
    """Outputs through the signature: keyed by the model's output names (how tfopt names them, and a
    SavedModel's signature, how a model over 2 GB is converted), else ``output_i`` is the model's
    i-th output (how earlier tfopt versions left a converted concrete function's)."""
    if signature is None:
        return None
    outputs = signature.get_output_details()
    by_index = {d["index"]: d for d in interpreter.get_output_details()}
    if sorted(outputs) == sorted(spec.name for spec in specs):
        return {spec.name: by_index[outputs[spec.name]["index"]] for spec in specs}
    if sorted(outputs) != sorted(f"output_{i}" for i in range(len(specs))):
        return None
    return {spec.name: by_index[outputs[f"output_{i}"]["index"]] for i, spec in enumerate(specs)}


def _by_name(path: str, kind: str, details: list[dict[str, Any]], specs: Sequence[TensorSpec]) -> dict[str, dict[str, Any]]:
    """Pair interpreter tensors with specs by name (``x``, ``x:0``, ``serving_default_x:0``)."""

    def names(detail: dict[str, Any]) -> set[str]:
        base = detail["name"].split(":")[0]
        return {detail["name"], base, base.removeprefix("serving_default_")}

    return pair_by_name(kind, path, specs, details, names, lambda spec: {spec.name, spec.node, spec.tensor})


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


def open_runner(path: str, model: Model, threads: int | None = None) -> TFLiteRunner:
    """The ``tflite`` target's runner (:mod:`tfopt.targets`)."""
    return TFLiteRunner(path, model.inputs, model.outputs, threads=threads)


def read_weights(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every constant tensor of the artifact: ``(name, values)`` (see :mod:`tfopt.report.weights`)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)  # a large model's buffers lie after it (offset, size): read there
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    numpy_types = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
                   "int16": np.int16, "int32": np.int32, "int64": np.int64}
    seen = set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            dtype = numpy_types.get(types.get(tensor.type, ""))
            if tensor.buffer in seen or (buffer.data is None and buffer.offset <= 1) or dtype is None:
                continue
            seen.add(tensor.buffer)
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            values = (np.frombuffer(bytes(buffer.data), dtype=dtype) if buffer.data is not None else
                      np.memmap(path, dtype=dtype, mode="r", offset=buffer.offset, shape=(buffer.size // np.dtype(dtype).itemsize,)))
            if tensor.sparsity is not None:  # sparse encoding (a pruned model): the buffer holds the non-zeros
                size = int(np.prod(tensor.shape))
                values = np.concatenate([values, np.zeros(max(size - values.size, 0), dtype)])
            yield name, values


def has_loop(path: str) -> bool:
    """The flatbuffer uses the ``WHILE`` operator: the LiteRT interpreter may never leave it, and it cannot
    be cancelled (the ``tflite`` target's ``loops`` role, :mod:`tfopt.targets`). Read through a memory map:
    a model over 2 GB keeps its buffers after the flatbuffer."""
    import mmap

    from ai_edge_litert import schema_py_generated as schema

    loops = {schema.BuiltinOperator.WHILE, schema.BuiltinOperator.STABLEHLO_WHILE}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model = schema.Model.GetRootAs(data, 0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        return any(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) in loops for c in codes)
