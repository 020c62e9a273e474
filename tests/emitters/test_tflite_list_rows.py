"""A recurrence on rows the batch does not decide (``TimeDistributed(GRU(..., return_sequences=True))`` over an
open time axis: the GRU runs on ``[batch * time, steps, n]``) converts to TFLite with both time axes open: its
per-step list gets the rows of the steps its loop unstacks, computed at run time
(:mod:`tfopt.emitters.tflite_list_rows`). The file matches TensorFlow at two time lengths of each axis."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tfopt.emitters.tflite import emit_tflite, fixed_shapes
from tfopt.runtimes.tflite import TFLiteRunner

ATOL = 2e-5  # float32 recurrences of <= 6 steps, LiteRT's kernels vs TensorFlow's
LENGTHS = [(2, 3), (4, 6)]  # (time, steps): both axes open in the file


def _frozen(path: str):
    from tfopt.freezing import freeze
    from tfopt.loaders import load

    frozen, _ = freeze(load(path), verify=False)
    return frozen


def _inputs(features: int) -> list[np.ndarray]:
    rng = np.random.default_rng(features)
    return [rng.normal(size=(1, time, steps, features)).astype(np.float32) for time, steps in LENGTHS]


def _check(frozen, tmp_path, reference, xs: list[np.ndarray]) -> None:
    """Emit, check the file fixes the batch alone, and compare with ``reference(x)`` for each of ``xs``."""
    path = emit_tflite(frozen, str(tmp_path / "m.tflite"))
    assert fixed_shapes(path, frozen) == {"x": [1, -1, -1, *xs[0].shape[3:]]}
    runner = TFLiteRunner(path, frozen.inputs, frozen.outputs)
    for x in xs:
        got = runner({"x": x})[frozen.outputs[0].name]
        np.testing.assert_allclose(got, reference(x), atol=ATOL, rtol=0)


# Keras's layers in the slow lane; the fast lane's case of the class is the TensorArray form below.
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "units", "features"), [("GRU", 4, 5), ("LSTM", 3, 2), ("Bidirectional", 3, 4)])
def test_keras_time_distributed_recurrence_keeps_its_time_axes_open(tmp_path, kind, units, features):
    import keras

    keras.utils.set_random_seed(units * features)
    inner = (keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True)) if kind == "Bidirectional"
             else getattr(keras.layers, kind)(units, return_sequences=True))
    inputs = keras.Input((None, None, features), name="x")
    model = keras.Model(inputs, keras.layers.TimeDistributed(inner)(inputs))
    model.save(str(tmp_path / "m.keras"))
    _check(_frozen(str(tmp_path / "m.keras")), tmp_path, lambda x: np.asarray(model(x)), _inputs(features))


@pytest.mark.slow
def test_a_masked_keras_time_distributed_recurrence_keeps_its_time_axes_open(tmp_path):
    """Each sentence's words after ``Embedding(mask_zero=True)``: the GRU's loop unstacks the mask's steps too."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None), name="x")
    words = keras.layers.Embedding(20, 6, mask_zero=True)(inputs)
    model = keras.Model(inputs, keras.layers.TimeDistributed(keras.layers.GRU(4, return_sequences=True))(words))
    model.save(str(tmp_path / "m.keras"))
    rng = np.random.default_rng(0)
    xs = [rng.integers(1, 20, size=(1, time, steps)).astype(np.float32) for time, steps in LENGTHS]
    for x in xs:
        x[0, 0, -1] = 0  # a padded word
    _check(_frozen(str(tmp_path / "m.keras")), tmp_path, lambda x: np.asarray(model(x)), xs)


@pytest.mark.parametrize("masked", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["masked", "plain"])
def test_a_folded_tensor_array_recurrence_keeps_its_time_axes_open(tmp_path, masked):
    """The same class written with ``tf.TensorArray`` as Keras 2 traces it: the fold by ``reshape(x, [-1, steps,
    n])``, a list reserved with ``[None, units]`` elements, the unfold by ``time`` read from ``x``; ``masked``:
    the loop unstacks a mask's steps too (a row whose first feature is negative keeps its state)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
    u = tf.constant(rng.normal(size=(4, 4)).astype(np.float32) * 0.5)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="x")])
    def folded(x):
        rows = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
        seq = tf.transpose(rows, [1, 0, 2])
        steps = tf.TensorArray(tf.float32, size=tf.shape(seq)[0]).unstack(seq)
        keep = tf.TensorArray(tf.bool, size=tf.shape(seq)[0]).unstack(seq[..., :1] >= 0)
        out = tf.TensorArray(tf.float32, size=tf.shape(seq)[0], element_shape=[None, 4])
        h = tf.zeros([tf.shape(rows)[0], 4])
        for i in tf.range(tf.shape(seq)[0]):
            new = tf.tanh(tf.matmul(steps.read(i), w) + tf.matmul(h, u))
            h = tf.where(keep.read(i), new, h) if masked else new
            out = out.write(i, h)
        y = tf.transpose(out.stack(), [1, 0, 2])
        return {"y": tf.reshape(y, tf.concat([[-1, tf.shape(x)[1]], tf.shape(y)[1:]], 0))}

    module = tf.Module()
    module.serve = folded
    tf.saved_model.save(module, str(tmp_path / "folded"), signatures=folded.get_concrete_function())
    _check(_frozen(str(tmp_path / "folded")), tmp_path, lambda x: folded(tf.constant(x))["y"].numpy(), _inputs(3))


KERAS2 = """\
import sys
import numpy as np
import tf_keras as keras

keras.utils.set_random_seed(0)
inputs = keras.Input((None, None, 5), name="x")
model = keras.Model(inputs, keras.layers.TimeDistributed(keras.layers.GRU(4, return_sequences=True))(inputs))
model.save(sys.argv[1])
for i, x in enumerate(np.load(sys.argv[2])[name] for name in ("a", "b")):
    np.save(f"{sys.argv[1]}.{i}.npy", model(x).numpy())
"""


@pytest.mark.slow
def test_keras2_time_distributed_recurrence_keeps_its_time_axes_open(tmp_path):
    path, xs = str(tmp_path / "k2.h5"), _inputs(5)
    np.savez(str(tmp_path / "xs.npz"), a=xs[0], b=xs[1])
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", KERAS2, path, str(tmp_path / "xs.npz")], check=True, env=env, capture_output=True)
    answers = {x.tobytes(): np.load(f"{path}.{i}.npy") for i, x in enumerate(xs)}
    _check(_frozen(path), tmp_path, lambda x: answers[x.tobytes()], xs)
