"""The same model and options give byte-identical artifacts in separate processes, whatever each
process's string-hash salt (``PYTHONHASHSEED``): tf2onnx's optimizers walk sets, and TensorFlow's
SavedModel export lists constants in hash order (see tfopt.emitters.onnx_worker)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def branchy_savedmodel(tmp_path_factory):
    """Parallel conv paths joined by Concat and Add: where tf2onnx's transpose optimizer has
    choices to make, and the captured constants TensorFlow orders by hash are many."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3), name="images")
    paths = [keras.layers.Conv2D(4, k, padding="same", activation="relu", name=f"path{k}")(x) for k in (1, 3, 5)]
    y = keras.layers.Concatenate(name="concat")(paths)
    y = keras.layers.Add(name="add")([keras.layers.Conv2D(4, 1, name="left")(y), keras.layers.Conv2D(4, 3, padding="same",
                                                                                                   name="right")(y)])
    y = keras.layers.Dense(5, name="logits")(keras.layers.GlobalAveragePooling2D()(y))
    directory = tmp_path_factory.mktemp("branchy")
    keras.Model(x, y).export(str(directory / "model"), verbose=False)
    np.savez(directory / "calib.npz", images=np.random.default_rng(0).random((16, 8, 8, 3), np.float32))
    return str(directory / "model"), str(directory / "calib.npz")


def _convert(model: str, calib: str, out: str, seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}
    subprocess.run([sys.executable, "-m", "tfopt", "convert", model, "-o", out, "--to", "tflite,onnx,openvino",
                    "--quantize", "none,int8", "--calibration", calib, "--no-verify", "--json"],
                   env=env, check=True, capture_output=True, cwd=ROOT)


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.startswith("report."):
                continue  # measurements (latency), not artifacts
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


@pytest.mark.slow
def test_artifacts_identical_across_hash_seeds(branchy_savedmodel, tmp_path):
    model, calib = branchy_savedmodel
    _convert(model, calib, str(tmp_path / "a"), "1")
    _convert(model, calib, str(tmp_path / "b"), "2")
    a, b = _files(str(tmp_path / "a")), _files(str(tmp_path / "b"))
    assert sorted(a) == sorted(b)
    assert {"model.fp32.onnx", "model.int8.onnx", "model.fp32.tflite", "openvino.fp32/model.xml"} <= set(a)
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"differ between PYTHONHASHSEED=1 and =2: {differ}"


def test_canonical_order_ignores_the_order_nodes_came_in(branchy_savedmodel):
    """The canonical node order tfopt gives every loaded graph: the same whatever order it came in."""
    from tfopt._tf import graph_def_class
    from tfopt.graphdef.order import canonical_order
    from tfopt.loaders import load

    graph_def = load(branchy_savedmodel[0]).graph_def
    shuffled = graph_def_class()()
    shuffled.CopyFrom(graph_def)
    nodes = list(shuffled.node)[::-1]
    del shuffled.node[:]
    shuffled.node.extend(nodes)
    canonical_order(shuffled)
    assert [n.name for n in shuffled.node] == [n.name for n in graph_def.node]
