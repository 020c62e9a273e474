"""A Keras file under a name of its package's own: CheckM2 ships its completeness model as
``specific_model_COMP.hd5`` (issue 24, set 19), and tfopt said the file "holds no model tfopt can read".
The kind is in the content (the HDF5 signature; a zip holding ``config.json``), so a file is read by
what it is, under any name; safe mode still refuses a Lambda layer in a legacy HDF5 file so named.
Generated: a small model of each writer (tf-keras 2, Keras 3), saved and renamed."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import tfopt
from tests.helpers import as_served
from tfopt.errors import UnsafeModelError

ATOL = 1e-5  # the frozen graph against the Keras model itself, float32 on the same runtime


def _keras(writer: str):
    if writer == "tf-keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _model(writer: str, *, lam: bool = False):
    k = _keras(writer)
    k.utils.set_random_seed(3)
    x = k.Input((12, 1), name="x")
    h = k.layers.Conv1D(4, 3, activation="relu")(x)
    if lam:
        h = k.layers.Lambda(lambda t: t * 2.0)(h)
    h = k.layers.BatchNormalization()(k.layers.Conv1D(3, 3)(h))
    return k.Model(x, k.layers.Dense(1, activation="sigmoid")(k.layers.Flatten()(h)))


def _saved_as(model, tmp_path, suffix: str, name: str) -> str:
    written = str(tmp_path / f"written{suffix}")
    model.save(written)
    renamed = str(tmp_path / name)
    shutil.move(written, renamed)
    return renamed


@pytest.mark.parametrize(("writer", "suffix", "name"), [
    ("tf-keras", ".h5", "specific_model_COMP.hd5"),  # CheckM2's name
    ("tf-keras", ".h5", "weights"),  # no suffix at all
    ("keras3", ".keras", "model.bin"),  # a Keras 3 archive
    ("keras3", ".h5", "model.hdf"),  # Keras 3's legacy HDF5, which Keras 3 reads only under .h5/.hdf5
], ids=["tf-keras-hd5", "tf-keras-no-suffix", "keras3-archive-bin", "keras3-h5-hdf"])
def test_a_keras_file_under_another_name_loads_by_its_content(tmp_path, writer, suffix, name):
    model = _model(writer)
    path = _saved_as(model, tmp_path, suffix, name)
    frozen, report = tfopt.freeze(path)
    x = np.random.default_rng(0).normal(size=(4, 12, 1)).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(as_served(frozen, x), expected, atol=ATOL, rtol=0)
    assert all(d.max_abs_err <= ATOL for d in report.verification)
    assert not [f for f in os.listdir(tmp_path) if f != name]  # no link or copy left beside the file


def test_safe_mode_refuses_a_lambda_in_an_hdf5_file_under_another_name(tmp_path):
    path = _saved_as(_model("tf-keras", lam=True), tmp_path, ".h5", "model.hd5")
    with pytest.raises(UnsafeModelError, match=r"model\.hd5"):
        tfopt.freeze(path)


@pytest.mark.slow  # the class's fast cases are the freezes above; this one writes and verifies all three targets
def test_the_renamed_hdf5_converts_to_every_target_within_the_bound(tmp_path):
    path = _saved_as(_model("tf-keras"), tmp_path, ".h5", "specific_model_COMP.hd5")
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(path, str(tmp_path / "out"), to=targets, report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(row["fidelity"]["max_abs_err"] <= 1e-4 for row in result.report["artifacts"])
