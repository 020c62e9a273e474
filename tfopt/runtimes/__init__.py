"""Runtimes that execute a model or an artifact on a dict of named inputs (see :mod:`.base`)."""

from __future__ import annotations

from tfopt.graph import Model
from tfopt.runtimes.base import Runner


def runner_for(target: str, path: str, model: Model, *, threads: int | None = None) -> Runner:
    """A :class:`~tfopt.runtimes.base.Runner` for an artifact, opened by its target's record in
    :mod:`tfopt.targets` (OpenVINO at explicit f32 precision).

    Args:
        target: a target name: ``pb``, ``savedmodel``, ``tflite``, ``onnx`` or ``openvino``.
        path: the artifact (an OpenVINO IR's ``.xml``).
        model: the inputs/outputs it was converted from (:func:`tfopt.conversion.manifest.manifest_model`).
        threads: intra-op threads for the runtime (default: its own choice).

    Raises:
        TensorPairingError: the artifact's tensors cannot be paired with ``model``'s by name.
    """
    from tfopt.targets import target as record

    runner: Runner = record(target, "format").call("runner", path, model, threads)
    return runner


__all__ = ["Runner", "runner_for"]
