""".keras archives whose weight file names its groups with '\\' (saved on Windows by Keras 2.13-2.15,
tf-keras#664): tfopt loads them through a renamed copy, converts them to every target within the
fp32 bound, records the renaming, and leaves the user's file byte for byte as it was.

Each archive is written here by tf-keras or Keras 3 and its ``model.weights.h5`` rewritten as the
Windows writer laid it out: every ``.../vars`` group under one root group whose name is the layer's
whole inner path joined with '\\' (``layers\\functional\\layers\\dense/vars/0``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile

import h5py
import numpy as np
import pytest

import tfopt
from tests.helpers import assert_artifacts_match
from tfopt.freezing import freeze
from tfopt.loaders import load
from tfopt.runtimes.tensorflow import GraphRunner

TOLERANCE = 1e-4  # fp32 artifacts against the Keras model (the artifact bound at these magnitudes)
KINDS = ["sequential_dense", "functional_conv_batchnorm", "nested_lstm"]
WRITERS = ["tf_keras", "keras3"]


def _model(keras, kind: str, seed: int):
    keras.utils.set_random_seed(seed)
    if kind == "sequential_dense":
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="tanh"),
                                 keras.layers.Dense(3)])
    if kind == "functional_conv_batchnorm":
        x = keras.Input((12, 4))
        h = keras.layers.Conv1D(6, 3, activation="relu")(x)
        h = keras.layers.BatchNormalization()(h)
        return keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)))
    inner = keras.Sequential([keras.Input((8, 3)), keras.layers.LSTM(5, return_sequences=True),
                              keras.layers.BatchNormalization()], name="encoder")
    x = keras.Input((8, 3))
    return keras.Model(x, keras.layers.Dense(4)(keras.layers.LSTM(6)(inner(x))))


def _randomise_batchnorm(model, seed: int) -> None:
    """Non-trivial moving statistics, so a BatchNorm that loaded no weights shows."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if "batch_normalization" in layer.name:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _windows_layout(src: str, dst: str) -> int:
    """``src``'s weights with each ``P/vars`` moved under the root name ``P`` joined with '\\'."""
    moved = 0
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g.attrs.update(dict(f.attrs))

        def move(name, obj):
            nonlocal moved
            if isinstance(obj, h5py.Group) and name.rpartition("/")[2] == "vars":
                parent = name.rpartition("/")[0]
                root = parent.replace("/", "\\")
                f.copy(obj, g.require_group(root) if root else g, name="vars")
                moved += "\\" in root
        f.visititems(move)
    return moved


def _saved_on_windows(writer: str, kind: str, seed: int, tmp_path) -> tuple[str, np.ndarray, np.ndarray]:
    """(archive with '\\' names, input, the Keras model's output on it)."""
    if writer == "tf_keras":
        import tf_keras as keras
    else:
        import keras
    model = _model(keras, kind, seed)
    _randomise_batchnorm(model, seed)
    x = np.random.default_rng(seed).standard_normal((3, *model.inputs[0].shape[1:])).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    linux = str(tmp_path / "linux.keras")
    model.save(linux)
    path = str(tmp_path / f"{writer}_{kind}.keras")
    with zipfile.ZipFile(linux) as zf, zipfile.ZipFile(path, "w") as out:
        for info in zf.infolist():
            if info.filename != "model.weights.h5":
                out.writestr(info, zf.read(info))
                continue
            zf.extract(info, str(tmp_path / "x"))
            moved = _windows_layout(str(tmp_path / "x" / info.filename), str(tmp_path / "win.h5"))
            out.write(str(tmp_path / "win.h5"), info.filename)
    assert moved >= 2  # the class under test: root names that hold '\\'
    return path, x, expected


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", WRITERS)
def test_windows_weight_names_load_and_freeze_to_the_same_numbers(tmp_path, monkeypatch, writer, kind):
    seed = KINDS.index(kind) + 3 * WRITERS.index(writer)
    path, x, expected = _saved_on_windows(writer, kind, seed, tmp_path)
    before = _digest(path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = load(path)
    assert not os.listdir(scratch)  # the renamed copy is gone once the model is loaded
    note = model.provenance["weight_names_normalised"]
    assert note["groups"] >= 2 and "\\" in note["example"]
    frozen, _ = freeze(model, verify=False)
    got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert _digest(path) == before  # the user's file is only read


@pytest.mark.parametrize(("writer", "kind"), [
    ("tf_keras", "functional_conv_batchnorm"), ("keras3", "functional_conv_batchnorm"),
    pytest.param("tf_keras", "nested_lstm", marks=pytest.mark.slow)])
def test_windows_archive_converts_to_every_target(tmp_path, writer, kind):
    path, x, expected = _saved_on_windows(writer, kind, 11, tmp_path)
    before = _digest(path)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], report_runs=1)
    assert {a.format for a in result.artifacts} >= {"tflite", "onnx", "openvino"}
    assert_artifacts_match(out, result, x, expected, TOLERANCE)
    assert _digest(path) == before


def test_only_root_names_are_renamed_and_every_value_and_attribute_is_kept(tmp_path):
    """A '\\' below the root is part of one layer's own name (a Linux writer keeps it): left alone."""
    from tfopt.loaders._keras_archive import normalise_weights

    src, dst = str(tmp_path / "src.h5"), str(tmp_path / "dst.h5")
    rng = np.random.default_rng(0)
    stored = {"layers\\dense/vars/0": rng.standard_normal((3, 4)), "layers\\dense/vars/1": np.arange(4.0),
              "layers\\sub\\layers\\conv/vars/0": rng.standard_normal((2, 2, 3)),
              "layers/odd\\name/vars/0": np.ones(2), "vars/0": np.zeros(1, np.int64)}
    with h5py.File(src, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        for name, value in stored.items():
            f.create_dataset(name, data=value, compression="gzip")
        f["layers\\dense"].attrs["note"] = "kept"
    assert normalise_weights(src, dst) == 2
    renamed = {"layers/dense/vars/0", "layers/dense/vars/1", "layers/sub/layers/conv/vars/0",
               "layers/odd\\name/vars/0", "vars/0"}
    with h5py.File(dst, "r") as g:
        found = []
        g.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert set(found) == renamed
        for old, value in stored.items():
            new = old.partition("/")[0].replace("\\", "/") + "/" + old.partition("/")[2]
            np.testing.assert_array_equal(g[new][()], value)
            assert g[new].dtype == value.dtype and g[new].compression == "gzip"
        assert g.attrs["keras_version"] == "2.15.0" and g["layers/dense"].attrs["note"] == "kept"
