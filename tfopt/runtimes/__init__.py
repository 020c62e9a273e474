"""Runtimes that execute a model or an artifact on a dict of named inputs (see :mod:`.base`)."""

from __future__ import annotations

from tfopt.graph import Model
from tfopt.runtimes.base import Runner


def runner_for(target: str, path: str, model: Model, *, threads: int | None = None) -> Runner:
    """A :class:`~tfopt.runtimes.base.Runner` for an artifact (OpenVINO at explicit f32 precision).

    Args:
        target: ``pb``, ``savedmodel``, ``tflite``, ``onnx`` or ``openvino``.
        path: the artifact (an OpenVINO IR's ``.xml``).
        model: the inputs/outputs it was converted from (:func:`tfopt.manifest.manifest_model`).
        threads: intra-op threads for the runtime (default: its own choice).

    Raises:
        TensorPairingError: the artifact's tensors cannot be paired with ``model``'s by name.
    """
    if target == "tflite":
        from tfopt.runtimes.tflite import TFLiteRunner

        return TFLiteRunner(path, model.inputs, model.outputs, threads=threads)
    if target == "onnx":
        from tfopt.runtimes.onnx import ONNXRunner

        return ONNXRunner(path, model.inputs, model.outputs, threads=threads)
    if target == "openvino":
        from tfopt.runtimes.openvino import OpenVINORunner

        return OpenVINORunner(path, model.inputs, model.outputs, precision="f32", threads=threads)
    from tfopt.loaders import load
    from tfopt.runtimes.tensorflow import GraphRunner

    # A GraphDef has no signature: name the outputs, or a multi-output graph is ambiguous.
    frozen = load(path, outputs=[s.tensor for s in model.outputs]) if path.endswith(".pb") else load(path)
    return GraphRunner(frozen.replace(inputs=model.inputs, outputs=model.outputs))


__all__ = ["Runner", "runner_for"]
