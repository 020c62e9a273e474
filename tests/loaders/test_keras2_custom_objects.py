"""Keras 2 .h5 files whose custom-object module imports Keras as `tensorflow.keras` or `keras`
(Keras 3 under TensorFlow >= 2.16): the module is imported with those names bound to tf-keras."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tfopt
from tfopt.errors import OptionError
from tfopt.runtimes.tensorflow import GraphRunner

# How the module reaches Keras -> the names its layer code uses.
IMPORTS = {
    "from_tensorflow": ("from tensorflow import keras", "keras.layers.LSTM", "keras.layers.Layer"),
    "tensorflow_keras_as": ("import tensorflow.keras as K", "K.layers.LSTM", "K.layers.Layer"),
    "from_tensorflow_keras": ("from tensorflow.keras import layers", "layers.LSTM", "layers.Layer"),
    "from_tensorflow_keras_layers": ("from tensorflow.keras.layers import LSTM, Layer", "LSTM", "Layer"),
    "tf_attribute": ("", "tf.keras.layers.LSTM", "tf.keras.layers.Layer"),
    "plain_keras": ("import keras", "keras.layers.LSTM", "keras.layers.Layer"),
}

LAYERS = """\
import tensorflow as tf
{imports}


class ReversedLSTM({lstm}):
    \"\"\"An LSTM with an extra constructor argument, run over the reversed sequence.\"\"\"

    def __init__(self, units, flip=True, **kwargs):
        super().__init__(units, **kwargs)
        self.flip = flip

    def call(self, inputs, *args, **kwargs):
        return super().call(tf.reverse(inputs, [1]) if self.flip else inputs, *args, **kwargs)

    def get_config(self):
        return {{**super().get_config(), "flip": self.flip}}


class Attention({layer}):
    \"\"\"Additive attention pooling over time: softmax(v . tanh(W h)) weighted sum of h.\"\"\"

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def build(self, shape):
        self.w = self.add_weight(name="w", shape=(int(shape[-1]), self.size))
        self.v = self.add_weight(name="v", shape=(self.size, 1))

    def call(self, h):
        scores = tf.nn.softmax(tf.tensordot(tf.tanh(tf.tensordot(h, self.w, 1)), self.v, 1), axis=1)
        return tf.reduce_sum(scores * h, axis=1)

    def get_config(self):
        return {{**super().get_config(), "size": self.size}}


CUSTOM_OBJECTS = {{"ReversedLSTM": ReversedLSTM, "Attention": Attention}}
"""

BUILD = """\
import numpy as np
import tf_keras
import {module} as m
rng = np.random.default_rng(0)
steps, features, units = {steps}, {features}, {units}
x_in = tf_keras.Input((steps, features), name="chars")
h = m.ReversedLSTM(units, flip=True, return_sequences=True)(x_in)
out = tf_keras.layers.Dense(3, activation="softmax", name="probs")(m.Attention(5)(h))
model = tf_keras.Model(x_in, out)
model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in model.get_weights()])
model.save("{path}")
x = rng.normal(size=(2, steps, features)).astype(np.float32)
np.save("{path}.x.npy", x)
np.save("{path}.y.npy", model(x).numpy())
"""

SIZES = {"from_tensorflow": (7, 4, 6), "tensorflow_keras_as": (5, 3, 8), "from_tensorflow_keras": (9, 2, 4),
         "from_tensorflow_keras_layers": (4, 6, 3), "tf_attribute": (8, 3, 7), "plain_keras": (6, 5, 5)}


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory):
    """One .h5 per import style, written by tf-keras with the module seeing Keras 2."""
    root = tmp_path_factory.mktemp("keras2_custom")
    for style, (imports, lstm, layer) in IMPORTS.items():
        (root / f"k2layers_{style}.py").write_text(LAYERS.format(imports=imports, lstm=lstm, layer=layer))
    script = "\n".join(BUILD.format(module=f"k2layers_{style}", path=root / f"{style}.h5", steps=s, features=f, units=u)
                        for style, (s, f, u) in SIZES.items())
    # Keras 2's own `import keras` (keras 2.x) is tf-keras's code: bind it so for the writer.
    script = "import sys, tf_keras.api._v2.keras as k2\nsys.modules['keras'] = k2\n" + script
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=root)
    return root


@pytest.fixture
def importable(keras2_files, monkeypatch):
    monkeypatch.syspath_prepend(str(keras2_files))
    yield keras2_files
    for name in [m for m in sys.modules if m.startswith("k2layers_")]:
        del sys.modules[name]


@pytest.mark.parametrize("style", list(IMPORTS))
def test_keras2_h5_with_a_module_importing_keras3_names_converts(importable, style):
    path = str(importable / f"{style}.h5")
    module = f"k2layers_{style}"
    before = __import__(module)  # imported in this process first: Keras 3 classes, as a user's own import would
    frozen, _ = tfopt.freeze(path, custom_objects=module)
    x, want = np.load(f"{path}.x.npy"), np.load(f"{path}.y.npy")
    got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert sys.modules[module] is before  # the user's module as they imported it is left in place


def test_keras3_is_still_keras3_afterwards(importable, tmp_path):
    """The scope leaks nothing: tf.keras and keras are Keras 3 again, and Keras 3 files load."""
    import keras

    tfopt.freeze(str(importable / "from_tensorflow.h5"), custom_objects="k2layers_from_tensorflow")
    import tensorflow as tf

    assert tf.keras.layers.Dense is keras.layers.Dense and sys.modules["keras"] is keras
    import tensorflow.keras as tk
    from tensorflow.keras import layers

    assert tk.layers.Dense is keras.layers.Dense and layers.LSTM is keras.layers.LSTM
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.save(tmp_path / "k3.keras")
    frozen, _ = tfopt.freeze(str(tmp_path / "k3.keras"))
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name],
                               model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_a_module_bound_to_keras3_internals_is_a_typed_error(importable, tmp_path, monkeypatch):
    """A module that reaches Keras 3 past the public names cannot be made consistent: the error
    names the module, the classes and the fix."""
    source = LAYERS.format(imports="from keras.src import layers", lstm="layers.LSTM", layer="layers.Layer")
    (tmp_path / "k2layers_internal.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(OptionError, match=r"k2layers_internal defines ReversedLSTM, Attention on Keras 3") as info:
        tfopt.freeze(str(importable / "from_tensorflow.h5"), custom_objects="k2layers_internal")
    assert "import tf_keras as keras" in str(info.value)


@pytest.mark.slow  # tf2onnx's LSTM rewrite: about a minute; the freeze tests above prove the class
def test_keras2_h5_with_keras3_names_converts_to_onnx(importable, tmp_path):
    """End to end: the ONNX artifact, run in ONNX Runtime, gives the tf-keras model's numbers."""
    import onnxruntime as ort

    path = str(importable / "tensorflow_keras_as.h5")
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], custom_objects="k2layers_tensorflow_keras_as")
    (artifact,) = [a for a in result.artifacts if a.format == "onnx" and a.precision == "fp32"]
    session = ort.InferenceSession(os.path.join(result.outdir, artifact.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: np.load(f"{path}.x.npy")})
    np.testing.assert_allclose(got, np.load(f"{path}.y.npy"), rtol=1e-5, atol=1e-5)
