"""Runtimes that execute a model or an artifact on a dict of named inputs (see :mod:`.base`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfopt.graph import Model
from tfopt.runtimes.base import Runner


def runner_for(target: str, path: str, model: Model, *, threads: int | None = None, timeout: float | None = None,
               describe_bound: Callable[[float], str] | None = None) -> Runner:
    """A :class:`~tfopt.runtimes.base.Runner` for an artifact, opened by its target's record in
    :mod:`tfopt.targets` (OpenVINO at explicit f32 precision).

    Args:
        target: a target name: ``pb``, ``savedmodel``, ``tflite``, ``onnx`` or ``openvino``.
        path: the artifact (an OpenVINO IR's ``.xml``).
        model: the inputs/outputs it was converted from (:func:`tfopt.conversion.manifest.manifest_model`).
        threads: intra-op threads for the runtime (default: its own choice).
        timeout: seconds each call may take (``None``: unbounded). An artifact its target's ``loops`` role
            says holds a loop runs in a child process killed at the bound (:mod:`tfopt.runtimes.child`); a
            target without that role runs in TensorFlow, whose runs stop at the bound in process
            (:func:`tfopt._tf.deadline`); an artifact without a loop ends on its own.
        describe_bound: ``seconds -> text`` saying where the bound came from (for the message).

    Raises:
        TensorPairingError: the artifact's tensors cannot be paired with ``model``'s by name.
        VerificationTimeoutError: (on a call) it did not end within ``timeout``.
    """
    from tfopt.targets import target as record

    found = record(target, "format")
    describe = describe_bound or (lambda s: f"{s:g} s")
    if timeout and holds_loop(target, path):
        from tfopt.runtimes.child import ChildRunner

        return ChildRunner(target, path, model, threads, timeout, describe_bound=describe)
    runner: Runner = found.call("runner", path, model, threads)
    return _InTensorFlow(runner, target, path, timeout, describe(timeout)) if timeout and found.loops is None else runner


def holds_loop(target: str, path: str) -> bool:
    """Whether ``path`` holds a loop its runtime cannot be interrupted in (its target's ``loops`` role): what
    runs in a child process under a bound. Read once per file: verification and the report each open the
    artifact (:func:`runner_for`), and the answer is the file's until it changes (its size or modification
    time; a rewritten file is read again)."""
    import os

    from tfopt.targets import target as record

    if record(target, "format").loops is None:
        return False
    stat = os.stat(path)
    return _holds_loop(target, os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _holds_loop(target: str, path: str, mtime_ns: int, size: int) -> bool:
    from tfopt.targets import target as record

    return bool(record(target, "format").call("loops", path))


class _InTensorFlow:
    """A runner whose runtime is TensorFlow with each call stopped at ``seconds`` (:func:`tfopt._tf.deadline`)."""

    def __init__(self, runner: Runner, target: str, path: str, seconds: float, bound: str):
        self._runner, self.target, self.path, self.seconds, self.bound = runner, target, path, seconds, bound
        self.inputs, self.outputs = runner.inputs, runner.outputs

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        from tfopt._tf import deadline

        start = time.monotonic()
        try:
            with deadline(self.seconds):
                return self._runner(feeds)
        except Exception as exc:
            if time.monotonic() - start >= 0.95 * self.seconds:  # stopped by the bound (ms rounding)
                from tfopt.runtimes.child import timed_out

                raise timed_out(self.target, self.path, self.bound, "running it", stopped=False) from exc
            raise

    @property
    def unbounded(self) -> Runner:
        """The runner itself, for timing calls a bounded call on the same inputs showed to end."""
        return self._runner

    def close(self) -> None:
        self._runner.close()


__all__ = ["Runner", "runner_for"]
