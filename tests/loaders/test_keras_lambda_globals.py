"""Keras 2 Lambda layers whose stored code reads a global of the module that defined it (deepac's
reverse-complement nets: ``Lambda(lambda x: K.reverse(x, axes=(1, 2)))`` in ``deepac.nn_train``, which
imports ``tensorflow.keras.backend as K``). Keras records the module's name with the bytecode and
finds the global only when that module is imported, as it is for the package's own users: with
--unsafe tfopt imports it (as Keras 2 code) and the model loads to the same numbers; a module that
cannot be imported here is a typed error naming the missing name, the module, why, and the fix, and
a name supplied through ``CUSTOM_OBJECTS`` loads the model to the same numbers.

The module is written here, imported to build and save the model (as the package did), then
forgotten (``sys.modules``), as in a fresh process.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tfopt.errors import ModelFormatError
from tfopt.freezing import freeze
from tfopt.loaders import load
from tfopt.runtimes.tensorflow import GraphRunner

DEFINING = '''\
import tf_keras.backend as K  # deepac: `import tensorflow.keras.backend as K` of its Keras 2 days


def reverse_strand():
    return lambda x: K.reverse(x, axes=(1, 2))
'''
SUPPLYING = '''\
import tf_keras

CUSTOM_OBJECTS = {"K": tf_keras.backend}
'''


def _saved(tmp_path, monkeypatch, module: str):
    """An .h5 whose Lambda's code reads ``K`` from ``module`` (then forgotten); its inputs and outputs."""
    import tf_keras as keras

    (tmp_path / f"{module}.py").write_text(DEFINING)
    monkeypatch.syspath_prepend(str(tmp_path))
    defining = __import__(module)
    try:
        keras.utils.set_random_seed(3)
        x = keras.Input((12, 4), name="dna")
        rc = keras.layers.Lambda(defining.reverse_strand(), name="reverse_complement")(x)
        shared = keras.layers.Conv1D(5, 3, name="conv")
        h = keras.layers.concatenate([shared(x), shared(rc)])
        model = keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(h)))
        path = str(tmp_path / "m.h5")
        model.save(path, save_format="h5")
        dna = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (3, 12))]
        return path, dna, model.predict(dna, verbose=0)
    finally:
        sys.modules.pop(module, None)


def _run(model, x):
    frozen, _ = freeze(model, verify=False)
    return GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]


@pytest.fixture(autouse=True)
def _keras2(monkeypatch):
    pytest.importorskip("tf_keras")


def test_the_module_that_defined_a_lambda_is_imported_and_the_model_loads_to_the_same_numbers(tmp_path, monkeypatch):
    path, dna, expected = _saved(tmp_path, monkeypatch, "lambda_globals_defining")
    model = load(path, unsafe=True)
    assert "lambda_globals_defining" not in sys.modules  # imported for the load only
    np.testing.assert_allclose(_run(model, dna), expected, rtol=1e-5, atol=1e-6)


def test_an_unimportable_defining_module_is_a_typed_error_naming_the_global_the_module_and_the_fix(
        tmp_path, monkeypatch):
    path, _, _ = _saved(tmp_path, monkeypatch, "lambda_globals_gone")
    (tmp_path / "lambda_globals_gone.py").write_text("from collections import Iterable\n")  # fails on Python >= 3.10
    with pytest.raises(ModelFormatError) as err:
        load(path, unsafe=True)
    text = str(err.value)
    assert "'K'" in text and "'reverse_complement'" in text and "lambda_globals_gone" in text and "ImportError" in text
    assert "CUSTOM_OBJECTS" in text and "--custom-objects" in text and path in text


def test_a_global_supplied_through_custom_objects_loads_the_model_to_the_same_numbers(tmp_path, monkeypatch):
    path, dna, expected = _saved(tmp_path, monkeypatch, "lambda_globals_absent")
    (tmp_path / "lambda_globals_absent.py").unlink()
    (tmp_path / "lambda_globals_supplying.py").write_text(SUPPLYING)
    try:
        model = load(path, unsafe=True, custom_objects="lambda_globals_supplying")
    finally:
        sys.modules.pop("lambda_globals_supplying", None)
    np.testing.assert_allclose(_run(model, dna), expected, rtol=1e-5, atol=1e-6)
