"""Run an OpenVINO IR on the CPU plugin, with the inference precision stated explicitly.

The CPU plugin runs an FP32 IR in bf16 wherever the processor supports it unless told otherwise
(measured here on a real model: max error 4e-2 by default, 2e-6 with f32), so tfopt always passes
``INFERENCE_PRECISION_HINT`` and reports which it used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._openvino import openvino
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.base import pair_by_name


class OpenVINORunner:
    """``runner(feeds) -> {output name: array}`` on the CPU plugin at an explicit ``precision``.

    Pairing: OpenVINO's TensorFlow frontend keeps the graph's tensor names (``x:0``, and the node
    name ``x``) as each port's names, and tfopt never renames tensors; a spec whose names no port
    carries raises.
    """

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                 precision: str = "f32", threads: int | None = None):
        ov = openvino()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.precision = precision
        core = ov.Core()
        model = core.read_model(path)
        self._compiled = core.compile_model(model, "CPU", config)
        self._inputs = _pair(path, "input", list(self._compiled.inputs), inputs)
        self._outputs = _pair(path, "output", list(self._compiled.outputs), outputs)

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        result = self._compiled({port: np.asarray(feeds[name]) for name, port in self._inputs.items()})
        return {name: np.asarray(result[port]) for name, port in self._outputs.items()}

    def close(self) -> None:
        """OpenVINO frees the compiled model with its last reference."""
        self._compiled = None


def _pair(path: str, kind: str, ports: list[Any], specs: Sequence[TensorSpec]) -> dict[str, Any]:
    return pair_by_name(kind, path, specs, ports, lambda port: set(port.get_names()),
                        lambda spec: {spec.tensor, spec.name, spec.node})


def open_runner(path: str, model: Model, threads: int | None = None) -> OpenVINORunner:
    """The ``openvino`` target's runner (:mod:`tfopt.targets`): explicit f32 inference precision."""
    return OpenVINORunner(path, model.inputs, model.outputs, precision="f32", threads=threads)


def read_weights(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every constant tensor of the artifact: ``(name, values)`` (see :mod:`tfopt.report.weights`)."""
    xml = os.path.join(path, "model.xml") if os.path.isdir(path) else path
    for op in openvino().Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == "Constant":
            yield op.get_friendly_name(), np.asarray(op.get_data())
