"""A legacy `.h5` is loaded by the Keras that wrote it: Keras 3's `model.save("m.h5")` stores a config
tf-keras cannot read (`InputLayer` with `batch_shape`), so tfopt reads the file's `keras_version`."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.conversion.manifest import manifest_model
from tfopt.loaders import load
from tfopt.runtimes import runner_for

TOLERANCE = 1e-4  # fp32 artifacts against the Keras 3 model itself


def _model(kind: str, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    if kind == "sequential":
        return keras.Sequential([keras.Input((12,)), keras.layers.Reshape((12, 1)),
                                 keras.layers.Conv1D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling1D(),
                                 keras.layers.Dense(3, activation="softmax")])
    a, b = keras.Input((8,), name="a"), keras.Input((5, 2), name="b")
    joined = keras.layers.Concatenate()([keras.layers.Dense(4)(a), keras.layers.LSTM(4)(b)])
    return keras.Model([a, b], [keras.layers.Dense(2, name="z")(joined), keras.layers.Dense(1, name="y")(joined)])


@pytest.mark.parametrize("kind,seed", [("sequential", 0), ("two_in_two_out", 1)])
def test_h5_written_by_keras3_converts(tmp_path, kind, seed):
    import h5py

    model = _model(kind, seed)
    path = str(tmp_path / "m.h5")
    model.save(path)
    with h5py.File(path, "r") as f:
        assert str(f.attrs["keras_version"]).startswith("3")  # the class under test
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], report_runs=1)
    assert load(path).provenance["keras"] == "keras3"
    rng = np.random.default_rng(seed)
    feeds = [rng.normal(size=(2, *i.shape[1:])).astype(np.float32) for i in model.inputs]
    expected = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    loaded = manifest_model(out)
    assert len(result.artifacts) == 3
    for artifact in result.artifacts:
        assert artifact.max_abs_err is not None and artifact.max_abs_err <= TOLERANCE, artifact.format
        got = runner_for(artifact.format, os.path.join(out, artifact.path), loaded)(
            {i.name: v for i, v in zip(loaded.inputs, feeds)})
        for spec, ref in zip(loaded.outputs, expected):
            np.testing.assert_allclose(got[spec.name], ref, atol=TOLERANCE, err_msg=f"{artifact.format} {spec.name}")
