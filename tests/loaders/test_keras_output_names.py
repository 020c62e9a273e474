"""Keras 3 models that nest a Functional in a Sequential or a Sequential in a Functional (the eighth
held-out set's capricorn, ``Sequential([DenseNet121, pooling, Dense])``): every artifact names its
output as Keras does (a Functional's ``output_names``; a Sequential's last layer), never ``output_0``,
and gives the Keras model's numbers.

A Keras 3 ``Sequential`` has no ``output_names`` (tf-keras's has); its output is its last layer's.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.conversion.manifest import manifest_model
from tfopt.loaders import load
from tfopt.runtimes import runner_for

TOLERANCE = 1e-5  # fp32 artifacts of small dense/conv stacks against Keras


def _nested(keras, kind: str, size: int):
    """``(model, input shape, the output name Keras gives it)`` for one nesting ``kind``."""
    shape = (size, 3)

    def functional(name: str, inner=None):
        x = keras.Input(shape)
        h = keras.layers.Conv1D(4, 2, activation="tanh", name=f"{name}_conv")(x if inner is None else inner(x))
        return keras.Model(x, keras.layers.GlobalAveragePooling1D(name=f"{name}_pool")(h), name=name)

    if kind == "sequential_of_functional":  # capricorn's pattern
        head = f"head_{size}"
        return keras.Sequential([keras.Input(shape), functional("backbone"), keras.layers.Dense(2, name=head)]), \
            shape, head
    if kind == "sequential_ending_in_functional":
        return keras.Sequential([keras.Input(shape), keras.layers.Dense(3, name="proj"), functional("tail")]), \
            shape, "tail"
    if kind == "functional_of_sequential":
        body = keras.Sequential([keras.Input(shape), keras.layers.Dense(5, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(size, name="logits")], name="body")
        x = keras.Input(shape)
        return keras.Model(x, body(x), name="outer"), shape, "body"
    if kind == "sequential_functional_sequential":  # two levels below a Sequential
        inner = keras.Sequential([keras.Input(shape), keras.layers.Dense(3, name="inner_dense")], name="inner")
        return keras.Sequential([keras.Input(shape), functional("middle", inner),
                                 keras.layers.Dense(2, activation="softmax", name="probs")]), shape, "probs"
    # functional_sequential_functional: two levels below a Functional
    mid = keras.Sequential([keras.Input(shape), functional("leaf"), keras.layers.Dense(3, name="mid_dense")],
                           name="mid")
    x = keras.Input(shape)
    return keras.Model(x, keras.layers.Dense(2, name="score")(mid(x)), name="top"), shape, "score"


KINDS = ["sequential_of_functional", "sequential_ending_in_functional", "functional_of_sequential",
         "sequential_functional_sequential", "functional_sequential_functional"]


def _saved(kind: str, size: int, tmp_path):
    import keras

    keras.utils.set_random_seed(size)
    model, shape, name = _nested(keras, kind, size)
    path = str(tmp_path / f"{kind}_{size}.keras")
    model.save(path)
    x = np.random.default_rng(size).standard_normal((3, *shape)).astype(np.float32)
    return path, x, np.asarray(model(x, training=False)), name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [4, 7])
def test_nested_models_keep_the_output_name_keras_gives(tmp_path, kind, size):
    path, _, _, name = _saved(kind, size, tmp_path)
    assert [o.name for o in load(path).outputs] == [name]


@pytest.mark.parametrize("kind", KINDS)
def test_every_target_names_the_output_as_keras_does_and_matches_it(tmp_path, kind):
    path, x, expected, name = _saved(kind, 5 + KINDS.index(kind), tmp_path)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], report_runs=1)
    assert {a.format for a in result.artifacts} >= {"tflite", "onnx", "openvino"}
    loaded = manifest_model(out)
    assert [o.name for o in loaded.outputs] == [name]
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), loaded)
        try:
            got = runner({loaded.inputs[0].name: x})
        finally:
            getattr(runner, "close", lambda: None)()
        assert list(got) == [name], artifact.format
        np.testing.assert_allclose(got[name], expected, atol=TOLERANCE, rtol=TOLERANCE, err_msg=artifact.format)
