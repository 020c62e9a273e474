"""Run a ``.onnx`` model with ONNX Runtime (CPU)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import TensorSpec


class ONNXRunner:
    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._inputs = _pair([i.name for i in self._session.get_inputs()], inputs)
        self._outputs = _pair([o.name for o in self._session.get_outputs()], outputs)

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = self._session.run(list(self._outputs.values()), {onnx: np.asarray(feeds[name])
                                                                 for name, onnx in self._inputs.items()})
        return dict(zip(self._outputs, values))


def _pair(names: list[str], specs: Sequence[TensorSpec]) -> dict[str, str]:
    """spec name -> graph name, matched on the TF tensor name tf2onnx keeps (``x:0``), else order."""
    out = {}
    for spec in specs:
        for name in names:
            if name in (spec.tensor, spec.name, spec.node, f"{spec.name}:0"):
                out[spec.name] = name
                break
    return out if len(out) == len(specs) else {s.name: n for s, n in zip(specs, names)}
