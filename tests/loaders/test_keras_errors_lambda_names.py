"""A Keras 3 ``.keras`` whose Lambda calls a named Python function stores only the function's name:
loading it with ``unsafe=True`` fails because Keras cannot locate the function. tfopt said "pass
--unsafe" (already passed: the word Lambda in Keras' message was read as a safe-mode refusal); it
now names the function and ``--custom-objects``, and with that module the model converts.
Generated over function names and the Lambda's place in the model."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.errors import OptionError


def cube_plus_one(t):
    return t * t * t + 1.0


def halve(t):
    return t * 0.5


@pytest.mark.parametrize("function,first", [(cube_plus_one, True), (halve, False)], ids=["cube-first", "halve-after-dense"])
def test_named_function_in_a_lambda_points_at_custom_objects(tmp_path, function, first):
    import keras

    import tfopt

    keras.utils.set_random_seed(0)
    x = keras.Input((5,), name="x")
    h = keras.layers.Lambda(function)(x) if first else keras.layers.Lambda(function)(keras.layers.Dense(3)(x))
    model = keras.Model(x, keras.layers.Dense(2)(h) if first else h)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with pytest.raises(OptionError) as info:
        tfopt.load(path, unsafe=True)
    message = str(info.value)
    assert f"'{function.__name__}'" in message and "--custom-objects" in message and "--unsafe" not in message, message
    loaded = tfopt.load(path, unsafe=True, custom_objects=__name__)  # the fix the message names works
    feed = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    got = loaded.reference({"x": feed}) if loaded.reference is not None else None
    assert got is not None
    np.testing.assert_allclose(next(iter(got.values())), np.asarray(model(feed)), rtol=1e-5, atol=1e-6)
