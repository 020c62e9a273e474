"""Tiny graphs holding one op, converted by the TFLite emitter and run in LiteRT and TensorFlow."""

from __future__ import annotations

import numpy as np

from tests.helpers import graph_model
from tfopt.emitters.tflite import emit_tflite
from tfopt.graph import Model, TensorSpec

ULP = 2.0 ** -24
REL = 64 * ULP  # the lowered math's bound in LiteRT (tests of tflite_lower_math)


def one_op_model(build, shape, outputs=("y",), dtype="float32") -> Model:
    """A graph of ``build(tf, x)`` (a list of tensors, named ``outputs``) on one input ``x``."""

    def graph(t):
        x = t.compat.v1.placeholder(t.as_dtype(dtype), shape, name="x")
        for name, value in zip(outputs, build(t, x)):
            t.identity(value, name=name)

    model = graph_model(graph, {"x": shape}, list(outputs))
    return model.replace(inputs=[TensorSpec("x", "x:0", dtype, tuple(shape))])


def litert(model: Model, x: np.ndarray, tmp_path) -> dict[str, np.ndarray]:
    """``model`` through the TFLite emitter, run in LiteRT (its default delegates) on ``x``."""
    from tfopt.runtimes.tflite import open_runner

    path = emit_tflite(model, str(tmp_path / "m.tflite"))
    runner = open_runner(path, model)
    try:
        return runner({"x": x})
    finally:
        runner.close()


def tensorflow(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    from tfopt.runtimes.tensorflow import GraphRunner

    return GraphRunner(model)({"x": x})


def assert_close(out: np.ndarray, ref: np.ndarray, rel: np.ndarray | float) -> None:
    """``out`` within ``rel`` of ``ref`` relative to ``|ref|`` where ``ref`` is finite, and non-finite where it is."""
    assert out.shape == ref.shape and out.dtype == ref.dtype
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(out[~finite], ref[~finite])  # ±inf and NaN where TensorFlow has them
    err = np.abs(out[finite].astype(np.float64) - ref[finite])
    bound = np.broadcast_to(rel, ref.shape)[finite] * np.maximum(np.abs(ref[finite]), np.finfo(np.float32).tiny)
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (ref[finite][worst], out[finite][worst])
