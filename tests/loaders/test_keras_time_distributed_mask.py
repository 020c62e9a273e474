"""Keras 3 ``TimeDistributed`` over an open time axis whose inner layer takes the mask (issue 24, class
T1): a recurrent layer over each sentence's words after ``Embedding(mask_zero=True)``, a Bidirectional
one, one returning every word's state, a ``TimeDistributed`` inside a ``TimeDistributed``, and custom
layers with a ``mask`` argument (a ``[rows, words]`` mask, and Masking's ``[batch, time]`` one, a
``[rows]`` mask per step). Keras 3 maps them with ``vectorized_map`` (a recurrent inner layer's loop
inside pfor's does not even freeze); tfopt folds the input and the mask into ``[batch * time, ...]``
and calls the inner layer once, with the folded mask.

Keras 3's references: its eager call (the time axis static: unrolled, one call per step), at a batch
that is not the time length, and its traced open-time call (``vectorized_map``) where the batch is the
time length: Keras 3.15's ``vectorized_map`` path maps over ``range(batch)``, not ``range(time)``
(``ops.arange(input_shape[0])`` before the transpose), so elsewhere it is wrong or fails."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tfopt
from tests.helpers import assert_artifacts_match
from tfopt.runtimes.tensorflow import GraphRunner

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")

LAYERS = """\
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="td")
class MaskedMean(keras.layers.Layer):
    \"\"\"[rows, words, d] with a [rows, words] mask -> the mean of the unmasked words, [rows, d].\"\"\"

    def call(self, x, mask=None):
        w = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        return ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)

    def compute_output_shape(self, shape):
        return (shape[0], shape[2])


@keras.saving.register_keras_serializable(package="td")
class MaskedScale(keras.layers.Layer):
    \"\"\"[rows, f] with a [rows] mask -> each row scaled by a weight, masked rows zeroed.\"\"\"

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x, mask=None):
        return x * self.w * ops.expand_dims(ops.cast(mask, x.dtype), -1)

    def compute_output_shape(self, shape):
        return shape
"""

WRITER = """\
import sys
import keras
import numpy as np
import tensorflow as tf
import td_layers

L = keras.layers


def build(kind):
    words = L.Embedding(20, 8, mask_zero=True)
    if kind == "masking-scale":  # Masking's [batch, time] mask -> a [rows] mask per step
        inp = keras.Input((None, 5), name="frames")
        return keras.Model(inp, L.TimeDistributed(td_layers.MaskedScale())(L.Masking(0.0)(inp)))
    inp = keras.Input((None,) * (3 if kind == "nested" else 2), name="ids")
    inner = {"lstm-words": lambda: L.LSTM(6), "bilstm-words": lambda: L.Bidirectional(L.LSTM(5)),
             "gru-sequences": lambda: L.GRU(4, return_sequences=True), "custom-mean": td_layers.MaskedMean,
             "nested": lambda: L.TimeDistributed(L.LSTM(4))}[kind]()
    y = L.TimeDistributed(inner)(words(inp))
    if kind == "bilstm-words":  # then a per-sentence Dense, which takes no mask
        y = L.TimeDistributed(L.Dense(3))(y)
    return keras.Model(inp, y)


def sample(kind, rng, batch, steps):
    if kind == "masking-scale":
        x = rng.normal(size=(batch, steps, 5)).astype(np.float32)
        x[-1, steps // 2:] = 0.0  # padded frames
        return x
    x = rng.integers(1, 20, size=(batch, *(2,) * (kind == "nested"), steps, 5)).astype(np.float32)
    x[0, ..., 3:] = 0  # padded words
    x[-1, ..., 1, :] = 0  # a padded sentence: every word masked
    return x


rng = np.random.default_rng(0)
for kind, path in zip(sys.argv[1::2], sys.argv[2::2]):
    model = build(kind)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(path)
    x = sample(kind, rng, 3, 4)
    np.save(path + ".x.npy", x)
    np.save(path + ".y.npy", np.asarray(model(x)))  # eager: the time axis static, unrolled
    square = sample(kind, rng, 4, 4)  # batch = time: where Keras 3's vectorized_map path is right
    spec = tf.TensorSpec([None, *[None] * (square.ndim - 2), *square.shape[-1:]] if kind == "masking-scale"
                         else [None] * square.ndim, tf.float32)
    try:
        traced = tf.function(lambda v: model(v), input_signature=[spec])(square).numpy()
    except Exception:  # nested: pfor cannot trace a TimeDistributed inside a TimeDistributed
        continue
    np.save(path + ".square.npy", square)
    np.save(path + ".traced.npy", traced)
"""

FAST = ("lstm-words", "custom-mean", "masking-scale")
SLOW = ("bilstm-words", "gru-sequences", "nested")
KINDS = [pytest.param(k, marks=() if k in FAST else pytest.mark.slow) for k in (*FAST, *SLOW)]
# Not converted to TFLite (docs/known-limits.md): the inner GRU's per-word TensorList has a
# [batch * sentences, 4] element, which the pinned retry (batch 1) makes [1, 4]: LiteRT refuses it.
TFLITE_OPEN = {"gru-sequences"}
# Keras 3 cannot trace these over an open time axis at all (pfor fails inside the outer map): the eager call is
# the only reference.
UNTRACEABLE = {"nested"}
TOL = 1e-5  # float32: one batched call of the inner layer vs Keras's per-step calls (measured <= 1e-6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``get(kind)``: the directory holding ``kind``'s model, written on first request with the rest of
    its group (FAST or SLOW) by one writer process (one TensorFlow import)."""
    root = tmp_path_factory.mktemp("time_distributed_mask")
    (root / "td_layers.py").write_text(LAYERS)
    (root / "writer.py").write_text(WRITER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    written: set[str] = set()

    def get(kind):
        if kind not in written:
            group = FAST if kind in FAST else SLOW
            args = [a for k in group for a in (k, str(root / f"{k}.keras"))]
            subprocess.run([sys.executable, str(root / "writer.py"), *args], check=True, env=env, cwd=root)
            written.update(group)
        return root

    return get


@pytest.fixture
def importable(saved, monkeypatch, request):
    root = saved(request.node.callspec.params["kind"])
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("td_layers", None)


def _names(graph_def):
    yield from (n.name for n in graph_def.node)
    for f in graph_def.library.function:
        yield from (n.name for n in f.node_def)


@pytest.mark.parametrize("kind", KINDS)
def test_the_fold_equals_keras_3s_call(importable, kind):
    path = str(importable / f"{kind}.keras")
    frozen, _ = tfopt.freeze(path, custom_objects="td_layers")
    assert not [n for n in _names(frozen.graph_def) if "pfor" in n.split("/")]  # one call, no vectorized_map
    run = GraphRunner(frozen)
    name, out = frozen.inputs[0].name, frozen.outputs[0].name
    np.testing.assert_allclose(run({name: np.load(path + ".x.npy")})[out], np.load(path + ".y.npy"), rtol=TOL, atol=TOL)
    assert os.path.exists(path + ".traced.npy") is (kind not in UNTRACEABLE)
    if kind not in UNTRACEABLE:
        got = run({name: np.load(path + ".square.npy")})[out]
        np.testing.assert_allclose(got, np.load(path + ".traced.npy"), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_every_target_converts_with_keras_numbers(importable, tmp_path, kind):
    path = str(importable / f"{kind}.keras")
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], quantize=["fp32"],
                           report_runs=1, custom_objects="td_layers")
    written = {a.format for a in result.artifacts}
    assert {"onnx", "openvino", *(() if kind in TFLITE_OPEN else ("tflite",))} <= written, result.failed
    # at another size than verification's made-up inputs, against Keras 3's eager call
    assert_artifacts_match(result.outdir, result, np.load(path + ".x.npy"), np.load(path + ".y.npy"), TOL)
