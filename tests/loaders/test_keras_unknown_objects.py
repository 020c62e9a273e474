"""A Keras 2 file that names an object Keras does not know: the error quotes the name as stored
(``'<lambda>'`` for a lambda saved by Keras 2.1-2.3, not a word of Keras' message), says how to supply
it, and the fix it prints works."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from tfopt import OptionError
from tfopt.freezing import freeze
from tfopt.loaders import load

STORED = ["<lambda>", "leaky_relu_01", "activations.my_act"]


def _saved_with_activation(path: str, layer: str, stored: str) -> np.ndarray:
    """A tf-keras model whose ``layer`` has a relu activation, its stored name then rewritten to
    ``stored`` (as an old Keras wrote a lambda or a custom function); returns its output on ones."""
    import tf_keras as keras

    hidden = (keras.layers.Dense(5, activation="relu") if layer == "dense"
              else keras.layers.Conv1D(5, 3, activation="relu"))
    model = keras.Sequential([keras.Input((6, 4)), hidden, keras.layers.Flatten(), keras.layers.Dense(2)])
    expected = model(np.ones((1, 6, 4), np.float32)).numpy()
    model.save(path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert config.count('"activation": "relu"') == 1
        f.attrs["model_config"] = config.replace('"activation": "relu"', f'"activation": "{stored}"')
    return expected


@pytest.mark.parametrize("layer", ["dense", "conv1d"])
@pytest.mark.parametrize("stored", STORED, ids=["lambda", "function", "dotted"])
def test_unknown_object_is_named_as_stored_and_the_printed_fix_works(tmp_path, monkeypatch, layer, stored):
    path = str(tmp_path / "m.h5")
    expected = _saved_with_activation(path, layer, stored)
    with pytest.raises(OptionError) as caught:
        load(path)
    message = str(caught.value)
    assert f"the model uses '{stored}'" in message and "--custom-objects" in message
    lambda_like = not all(part.isidentifier() for part in stored.split("."))
    assert ("CUSTOM_OBJECTS" in message) == lambda_like  # only where a module's names cannot match

    module = f"custom_{layer}_{abs(hash(stored)) % 10**6}"
    (tmp_path / f"{module}.py").write_text(
        "import tf_keras as keras\n\n"
        "def relu(x):\n    return keras.activations.relu(x)\n\n"
        f"CUSTOM_OBJECTS = {{{stored!r}: relu}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        frozen, _ = freeze(load(path, custom_objects=module), verify=False)
    finally:
        sys.modules.pop(module, None)
    from tfopt.runtimes.tensorflow import GraphRunner

    got = GraphRunner(frozen)({frozen.inputs[0].name: np.ones((1, 6, 4), np.float32)})
    np.testing.assert_allclose(got[frozen.outputs[0].name], expected, rtol=1e-5, atol=1e-6)
