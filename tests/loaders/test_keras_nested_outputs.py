""".keras archives whose Sequential nests a model stored with a one-element output list, as Keras 3.4-3.8
wrote the transfer-learning pattern ``Sequential([base_model, pooling, Dense])`` (keras#20084; the eighth
held-out set's capricorn): today's Keras cannot load them, tfopt loads them through an unwrapped copy
and converts them to every target within the fp32 bound.

Each archive is written here by today's Keras and its ``config.json`` rewritten as those versions laid
it out: the nested model's ``output_layers`` is ``[[name, node, index]]`` instead of the leaf.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import tfopt
from tests.helpers import assert_artifacts_match
from tfopt.freezing import freeze
from tfopt.loaders import load
from tfopt.loaders._keras_nested_outputs import unwrap
from tfopt.runtimes.tensorflow import GraphRunner

TOLERANCE = 1e-4  # fp32 artifacts against the Keras model at these magnitudes
BASES = ["conv_batchnorm", "conv1d_pooled", "nested_sequential_of_functional"]


def _base(keras, kind: str, size: int):
    if kind == "conv_batchnorm":
        x = keras.Input((size, size, 3))
        h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, activation="relu")(x))
        return keras.Model(x, keras.layers.Conv2D(5, 1)(h), name="backbone"), (size, size, 3)
    if kind == "conv1d_pooled":
        x = keras.Input((size, 3))
        h = keras.layers.Conv1D(6, 3, activation="tanh")(keras.layers.Conv1D(size + 2, 2)(x))
        return keras.Model(x, h, name="encoder"), (size, 3)
    x = keras.Input((size, 4))
    inner = keras.Model(x, keras.layers.Conv1D(3, 2)(x), name="inner")
    return keras.Sequential([keras.Input((size, 4)), inner, keras.layers.Flatten()], name="wrapper"), (size, 4)


def _written_by_keras_3_8(kind: str, size: int, tmp_path) -> tuple[str, np.ndarray, np.ndarray]:
    """(archive as Keras 3.4-3.8 wrote it, input, the in-memory model's output on it)."""
    import keras

    keras.utils.set_random_seed(size)
    base, shape = _base(keras, kind, size)
    pool = {"conv_batchnorm": [keras.layers.GlobalAveragePooling2D()],
            "conv1d_pooled": [keras.layers.GlobalMaxPooling1D()]}.get(kind, [])
    model = keras.Sequential([keras.Input(shape), base, *pool, keras.layers.Dense(3)])
    x = np.random.default_rng(size).standard_normal((2, *shape)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    today = str(tmp_path / "today.keras")
    model.save(today)
    path = str(tmp_path / f"{kind}_{size}.keras")
    wrapped = 0
    with zipfile.ZipFile(today) as zf, zipfile.ZipFile(path, "w") as out:
        for info in zf.infolist():
            data = zf.read(info)
            if info.filename == "config.json":
                config = json.loads(data)

                def wrap(node):
                    nonlocal wrapped
                    if isinstance(node, dict):
                        outs = node.get("config", {}).get("output_layers") if node.get("class_name") else None
                        if node.get("class_name") == "Functional" and isinstance(outs, list) and isinstance(outs[0], str):
                            node["config"]["output_layers"] = [outs]
                            wrapped += 1
                        for v in node.values():
                            wrap(v)
                    elif isinstance(node, list):
                        for v in node:
                            wrap(v)
                wrap(config)
                data = json.dumps(config).encode()
            out.writestr(info, data)
    assert wrapped >= 1
    with pytest.raises((ValueError, AttributeError)):  # the class: today's Keras cannot load it
        keras.saving.load_model(path, compile=False)
    return path, x, expected


@pytest.mark.parametrize("kind", BASES)
@pytest.mark.parametrize("size", [6, 9])
def test_nested_one_element_outputs_load_and_freeze_to_the_same_numbers(tmp_path, kind, size):
    path, x, expected = _written_by_keras_3_8(kind, size, tmp_path)
    with open(path, "rb") as f:
        before = f.read()
    model = load(path)
    assert model.provenance["nested_outputs_unwrapped"]
    frozen, _ = freeze(model, verify=False)
    got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    with open(path, "rb") as f:
        assert f.read() == before  # the user's file is only read


def test_nested_one_element_outputs_convert_to_every_target(tmp_path):
    path, x, expected = _written_by_keras_3_8("conv_batchnorm", 7, tmp_path)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], report_runs=1)
    assert {a.format for a in result.artifacts} >= {"tflite", "onnx", "openvino"}
    assert_artifacts_match(out, result, x, expected, TOLERANCE)


def test_only_sequential_layers_are_unwrapped():
    """Inside a Functional a consumer names the nested model's tensor by index: left alone."""
    leaf = ["m", 0, 0]
    functional = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Functional", "config": {"name": "m", "output_layers": [leaf]}}]}}
    sequential = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Functional", "config": {"name": "m", "output_layers": [leaf]}},
        {"class_name": "Functional", "config": {"name": "two", "output_layers": [leaf, leaf]}}]}}
    assert unwrap(functional) == [] and functional["config"]["layers"][0]["config"]["output_layers"] == [leaf]
    assert unwrap(sequential) == ["m"]
    assert sequential["config"]["layers"][0]["config"]["output_layers"] == leaf
    assert sequential["config"]["layers"][1]["config"]["output_layers"] == [leaf, leaf]
