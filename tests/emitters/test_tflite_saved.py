"""The TFLite converter's SavedModel step runs once per model for all its precisions, and the
flatbuffers are the bytes the converter's own path writes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import tf
from tfopt.emitters.tflite import emit_tflite
from tfopt.runtimes.tensorflow import concrete_function

PRECISIONS = ("fp32", "fp16", "dynamic")


def _net(width, depth, seed):
    def build(t):
        rng = np.random.default_rng(seed)
        y = t.compat.v1.placeholder(t.float32, (None, 8, 8, 3), name="x")
        for _ in range(depth):
            w = rng.normal(0, 0.5, (3, 3, int(y.shape[-1]), width)).astype(np.float32)
            y = t.nn.relu6(t.nn.bias_add(t.nn.conv2d(y, w, 1, "SAME"), rng.normal(0, 0.1, width).astype(np.float32)))
        t.identity(t.matmul(t.reduce_mean(y, axis=[1, 2]), rng.normal(0, 1, (width, 5)).astype(np.float32)),
                   name="out")
    return graph_model(build, {"x": (None, 8, 8, 3)}, ["out"])


def _own_path(model, precision):
    """What the emitter did before: a new converter from a new concrete function every time (its
    outputs then named as the model's, :mod:`tfopt.emitters.tflite_names`)."""
    from tfopt.emitters.tflite_names import name_outputs

    t = tf()
    holder = t.Module()
    holder.function = concrete_function(model)
    converter = t.lite.TFLiteConverter.from_concrete_functions([holder.function], trackable_obj=holder)
    if precision != "fp32":
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [t.float16]
    converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS]
    return name_outputs(bytes(converter.convert()), [s.name for s in model.outputs])


@pytest.mark.parametrize(("width", "depth", "seed"), [(4, 1, 0), (8, 3, 1), (6, 2, 2)])
def test_precisions_share_one_saved_model_and_keep_the_bytes(width, depth, seed, tmp_path, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.python.saved_model import save as saved_model_save

    from tfopt.runtimes.tensorflow import GraphRunner

    models = [_net(width, depth, seed), _net(width + 1, depth, seed)]  # a second model must not reuse the first's
    want = {(i, p): _own_path(m, p) for i, m in enumerate(models) for p in PRECISIONS}
    saves = []
    real = saved_model_save.save
    monkeypatch.setattr(saved_model_save, "save", lambda *a, **k: saves.append(a[1]) or real(*a, **k))
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    for i, model in enumerate(models):
        for precision in (*PRECISIONS, "fp32"):  # converted again: still the same bytes
            path = emit_tflite(model, str(tmp_path / f"{i}.{precision}.tflite"), precision=precision)
            with open(path, "rb") as f:
                assert f.read() == want[(i, precision)], (i, precision)
        assert len(saves) == i + 1  # one SavedModel per model, not one per conversion
        interpreter = Interpreter(model_path=str(tmp_path / f"{i}.fp16.tflite"))
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        ref = GraphRunner(model)({"x": x})["out"]
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-2 * np.abs(ref).max())  # float16 weights
