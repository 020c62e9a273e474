"""Run a ``.onnx`` model with ONNX Runtime (CPU)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.base import pair_by_name


class ONNXRunner:
    """``runner(feeds) -> {output name: array}`` on ONNX Runtime's CPU provider.

    Pairing: tfopt gives tf2onnx the graph tensor names (:attr:`TensorSpec.tensor`, ``x:0``) as the
    ONNX input and output names, and quantization keeps them; a model converted elsewhere may use
    the spec names instead. A spec neither name matches raises.
    """

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, threads: int | None = None):
        import onnxruntime as ort

        self.inputs, self.outputs = list(inputs), list(outputs)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._inputs = _pair(path, "input", [i.name for i in self._session.get_inputs()], inputs)
        self._outputs = _pair(path, "output", [o.name for o in self._session.get_outputs()], outputs)

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = self._session.run(list(self._outputs.values()), {onnx: np.asarray(feeds[name])
                                                                 for name, onnx in self._inputs.items()})
        return dict(zip(self._outputs, values))

    def close(self) -> None:
        """ONNX Runtime frees the session with its last reference."""
        self._session = None


def _pair(path: str, kind: str, names: list[str], specs: Sequence[TensorSpec]) -> dict[str, str]:
    """spec name -> ONNX name: the TF tensor name tf2onnx was given (``x:0``), or the spec's name."""
    return pair_by_name(kind, path, specs, names, lambda name: {name},
                        lambda spec: {spec.tensor, spec.name, spec.node, f"{spec.name}:0"})


def open_runner(path: str, model: Model, threads: int | None = None) -> ONNXRunner:
    """The ``onnx`` target's runner (:mod:`tfopt.targets`)."""
    return ONNXRunner(path, model.inputs, model.outputs, threads=threads)


def read_weights(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every constant tensor of the artifact: ``(name, values)`` (see :mod:`tfopt.report.weights`)."""
    import onnx
    from onnx import numpy_helper

    for tensor in onnx.load(path).graph.initializer:
        yield tensor.name, numpy_helper.to_array(tensor)


def has_loop(path: str) -> bool:
    """The file holds an ONNX ``Loop`` (in its graph or any subgraph): ONNX Runtime may never leave it
    (the ``onnx`` target's ``loops`` role, :mod:`tfopt.targets`). ``Scan`` runs over a sequence: it ends.

    Read as bytes, not parsed: every node's ``op_type`` is serialized as field 4 (``0x22``), its length and
    its text, so a ``Loop`` node is the bytes ``22 04 'Loop'`` wherever it is. Weights that happen to hold
    them only cost a child process, never a missed loop; a memory map reads a large file at disk speed."""
    import mmap

    if os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b"\x22\x04Loop") >= 0
