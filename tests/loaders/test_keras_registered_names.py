"""Custom classes stored under a registered name (``Package>Class``, from register_keras_serializable)
load when --custom-objects supplies them by class name (issue 24, held-out set 12: tk-cbed's
``Custom>lay_c_cbed_pp``); a registered name nobody supplies is not called a lambda."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tfopt
from tfopt.errors import OptionError
from tfopt.runtimes.tensorflow import GraphRunner

# The training script registers its layers (one under the default package "Custom", one under its own);
# the released module the user passes defines the same classes without registering them.
WRITER = """\
import sys
import keras
import numpy as np
import tensorflow as tf
import tf_keras


def write(keras, register, path):
    @register()
    class Rescale(keras.layers.Layer):
        def call(self, x):
            return x / tf.maximum(0.001, tf.reduce_max(x, axis=[1], keepdims=True)) - 0.5

    @register(package="cbed")
    class Centroid(keras.layers.Layer):
        def call(self, x):
            w = tf.nn.softmax(x, axis=1)
            return tf.reduce_sum(w * tf.cast(tf.range(tf.shape(x)[1]), x.dtype)[None, :, None], axis=1)

    rng = np.random.default_rng(0)
    inp = keras.Input((9, 1), name="pattern")
    h = keras.layers.Conv1D(4, 3, padding="same", activation="relu")(Rescale(name="pp")(inp))
    model = keras.Model(inp, keras.layers.Dense(2, name="xy")(Centroid(name="com")(h)))
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(path)
    x = rng.uniform(0.0, 3.0, size=(3, 9, 1)).astype(np.float32)
    np.save(path + ".x.npy", x)
    np.save(path + ".y.npy", model(x).numpy())


write(tf_keras, tf_keras.utils.register_keras_serializable, sys.argv[1])  # Keras 2: class_name 'Custom>Rescale'
write(keras, keras.saving.register_keras_serializable, sys.argv[2])  # Keras 3: registered_name 'Custom>Rescale'
"""

RELEASED = """\
import tensorflow as tf
from tensorflow import keras


class Rescale(keras.layers.Layer):
    def call(self, x):
        return x / tf.maximum(0.001, tf.reduce_max(x, axis=[1], keepdims=True)) - 0.5


class Centroid(keras.layers.Layer):
    def call(self, x):
        w = tf.nn.softmax(x, axis=1)
        return tf.reduce_sum(w * tf.cast(tf.range(tf.shape(x)[1]), x.dtype)[None, :, None], axis=1)
"""

FILES = {"keras2": "registered.h5", "keras3": "registered.keras"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("registered")
    (root / "writer.py").write_text(WRITER)
    (root / "released_layers.py").write_text(RELEASED)
    (root / "half_layers.py").write_text(RELEASED.split("\n\nclass Centroid")[0] + "\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    subprocess.run([sys.executable, str(root / "writer.py"), *(str(root / name) for name in FILES.values())],
                   check=True, env=env, cwd=root)
    return root


@pytest.fixture
def importable(saved, monkeypatch):
    monkeypatch.syspath_prepend(str(saved))
    yield saved
    for name in ("released_layers", "half_layers"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("flavour", list(FILES))
def test_registered_classes_supplied_by_class_name_load_and_compute_the_same(importable, flavour):
    path = str(importable / FILES[flavour])
    frozen, _ = tfopt.freeze(path, custom_objects="released_layers")
    x, want = np.load(path + ".x.npy"), np.load(path + ".y.npy")
    got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_registered_name_nobody_supplies_is_named_as_a_registered_class_not_a_lambda(importable):
    with pytest.raises(OptionError, match=r"'cbed>Centroid'") as info:
        tfopt.freeze(str(importable / FILES["keras2"]), custom_objects="half_layers")
    message = str(info.value)
    assert "registered under" in message and "defines 'Centroid'" in message and "lambda" not in message
