"""The ONNX target end to end on a model whose BatchNorms no conv can take (after an activation, and
on a one-channel input, as in a tempo model of the corpus): tf2onnx's literal Mul + Add become
what ONNX Runtime runs fast, and the file still matches TensorFlow."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import onnx
import pytest
import tensorflow as tf

from tfopt.conversion.convert import convert
from tfopt.conversion.manifest import manifest_model
from tfopt.runtimes import runner_for

TOL = 1e-5  # fp32 end to end: two graphs of the same float ops


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    keras = tf.keras
    inp = keras.Input((12, 16, 1), name="spec")
    x = keras.layers.BatchNormalization()(inp)  # one channel: no conv before it
    x = keras.layers.Conv2D(8, (1, 3), padding="same", activation="elu")(x)
    x = keras.layers.BatchNormalization()(x)  # after the activation: no conv can take it
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking statistics, so the BatchNorms are not identities
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape).astype("float32") if i in (0, 3)
                               else rng.standard_normal(w.shape).astype("float32")
                               for i, w in enumerate(layer.get_weights())])
    root = tmp_path_factory.mktemp("onnx_emitter")
    path = str(root / "model.keras")
    model.save(path)
    out = str(root / "out")
    result = convert(path, out, to=["onnx"])
    x = rng.standard_normal((4, 12, 16, 1)).astype("float32")
    return model, out, result, x


def test_the_bn_after_the_activation_is_one_batchnormalization(converted):
    _, out, result, _ = converted
    artifact = result.artifacts[0]
    proto = onnx.load(os.path.join(out, artifact.path))
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["BatchNormalization"] == 1, ops
    readers = {i for n in proto.graph.node if n.op_type in ("Mul", "Add") for i in n.input}
    ranks = {t.name: len(t.dims) for t in proto.graph.initializer if t.name in readers}
    assert ranks and all(r == 4 for r in ranks.values()), ranks  # the one-channel BN's constants: full rank


def test_the_file_matches_tensorflow(converted):
    model, out, result, x = converted
    artifact = result.artifacts[0]
    runner = runner_for(artifact.format, os.path.join(out, artifact.path), manifest_model(out))
    got = np.concatenate([next(iter(runner({"spec": x[i:i + 1]}).values())) for i in range(len(x))])
    np.testing.assert_allclose(got, model(x).numpy(), rtol=0, atol=TOL)


@pytest.mark.slow
def test_files_identical_across_hash_seeds(tmp_path):
    """Generated graphs with parallel branches (four attention heads, five concatenated branches,
    three outputs named out of order, a cond whose branches hold parallel paths) emitted fp32 and
    int8 in two processes whose string-hash salts differ: every file has the same bytes. The parent
    (tfopt's rewrites, ONNX Runtime's quantizer) runs under either salt; tf2onnx's child under its
    own fixed one (tfopt.emitters.onnx_worker). The fp32 files match TensorFlow within TOL."""
    import json
    import subprocess
    import sys

    from tests.emitters.onnx_seed_models import OUTPUTS, SHAPES, model
    from tfopt.runtimes.tensorflow import GraphRunner

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hashes = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = tmp_path / seed
        out.mkdir()
        done = subprocess.run([sys.executable, "-m", "tests.emitters.onnx_seed_models", str(out)], env=env, cwd=root,
                              capture_output=True, text=True, check=True)
        hashes.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert len(hashes[0]) == 2 * len(SHAPES) and hashes[0] == hashes[1]
    x = {name: np.random.default_rng(5).standard_normal((3, *shape[1:])).astype(np.float32)
         for name, shape in SHAPES.items()}
    for name in SHAPES:
        m = model(name)
        for sign in (1.0, -1.0):  # both branches of the cond
            got = runner_for("onnx", str(tmp_path / "1" / f"{name}.fp32.onnx"), m)({"x": sign * x[name]})
            want = GraphRunner(m)({"x": sign * x[name]})
            for output in OUTPUTS[name]:
                np.testing.assert_allclose(got[output], want[output], rtol=0, atol=TOL, err_msg=f"{name}/{output}")
