"""The TFLite emitter's keep-float build (selective int8) honours the options the plain int8 build does."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.emitters.tflite import emit_tflite
from tfopt.quantizing.native.layer_targets import quantizer_for


@pytest.fixture(scope="module")
def three_dense(tmp_path_factory):
    """Dense (90% zero weights, as pruned) -> Dense -> Dense, frozen, with calibration samples and the
    TFLite name of the middle layer."""
    import keras

    from tfopt.freezing import freeze
    from tfopt.loaders import load

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="x")
    h = keras.layers.Dense(256, activation="relu", name="first")(inputs)
    h = keras.layers.Dense(32, activation="relu", name="middle")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))
    rng = np.random.default_rng(1)
    weights, bias = model.get_layer("first").get_weights()
    weights[rng.random(weights.shape) < 0.9] = 0.0
    model.get_layer("first").set_weights([weights, bias])
    path = str(tmp_path_factory.mktemp("three_dense") / "sm")
    model.export(path, verbose=False)
    frozen, _ = freeze(load(path), verify=False)
    samples = [{"x": rng.normal(size=(1, 64)).astype(np.float32)} for _ in range(16)]
    layers = [layer["layer"] for layer in quantizer_for("tflite", "int8", frozen, samples).layers]
    middle = next(name for name in layers if "middle" in name)
    return frozen, samples, middle


def _tensor_dtypes(path: str) -> dict[str, type]:
    from ai_edge_litert.interpreter import Interpreter

    return {t["name"]: t["dtype"] for t in Interpreter(model_path=path).get_tensor_details()}


def test_keep_float_with_int8_io_gives_int8_io_and_a_float_layer(three_dense, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    frozen, samples, middle = three_dense
    path = emit_tflite(frozen, str(tmp_path / "m.tflite"), precision="int8", calibration=samples,
                       keep_float=[middle], int8_io=True)
    interpreter = Interpreter(model_path=path)
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.int8]
    assert [d["dtype"] for d in interpreter.get_output_details()] == [np.int8]
    dtypes = _tensor_dtypes(path)
    assert dtypes[middle] == np.float32  # the kept layer computes in float
    assert any(dtype == np.int8 for name, dtype in dtypes.items() if "first" in name)  # the others in int8


def test_keep_float_without_int8_io_keeps_float_io(three_dense, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    frozen, samples, middle = three_dense
    path = emit_tflite(frozen, str(tmp_path / "m.tflite"), precision="int8", calibration=samples,
                       keep_float=[middle])
    interpreter = Interpreter(model_path=path)
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.float32]
    assert _tensor_dtypes(path)[middle] == np.float32


def test_keep_float_with_sparse_stores_the_pruned_weights_sparse(three_dense, tmp_path):
    import os

    frozen, samples, middle = three_dense
    sizes = {sparse: os.path.getsize(emit_tflite(frozen, str(tmp_path / f"{sparse}.tflite"), precision="int8",
                                                 calibration=samples, keep_float=[middle], sparse=sparse))
             for sparse in (False, True)}
    assert sizes[False] - sizes[True] > 64 * 256 // 2  # over half of the 64x256 int8 weights saved (90% zeros)
