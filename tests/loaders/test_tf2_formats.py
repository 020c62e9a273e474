"""Keras 3 .keras, Keras 2 .h5, LSTM, tf.Module SavedModel with cond/while, TF2 checkpoints, .pb."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.testing import random_inputs


def _check_frozen_matches(frozen, call, *, seed=3, atol=1e-5):
    feeds = random_inputs(frozen.inputs, seed=seed, batch=3)
    got = GraphRunner(frozen)(feeds)
    expected = call(feeds)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=atol, rtol=1e-5, err_msg=name)
    ops = {n.op for n in frozen.graph_def.node}
    assert not ops & {"VarHandleOp", "ReadVariableOp", "VariableV2"}
    return ops


@pytest.fixture(scope="module")
def keras3_file(digits_model, tmp_path_factory):
    model = digits_model["keras"]  # the session's trained digits CNN (tests/conftest.py)
    path = str(tmp_path_factory.mktemp("k3") / "cnn.keras")
    model.save(path)
    return path, model


def test_keras3_file(keras3_file):
    path, model = keras3_file
    frozen, report = tfopt.freeze(path)
    ops = _check_frozen_matches(frozen, lambda f: {"probs": model(f["images"], training=False).numpy()})
    assert "FusedBatchNormV3" in ops or "Rsqrt" in ops or "Mul" in ops  # BN in inference form
    assert frozen.outputs[0].name == "probs" and frozen.inputs[0].shape == (None, 8, 8, 1)
    assert report.verification[0].max_abs_err < 1e-5


def test_keras2_h5(tmp_path):
    import tf_keras

    inputs = tf_keras.Input((6,), name="features")
    h = tf_keras.layers.Dense(5, activation="relu")(inputs)
    h = tf_keras.layers.BatchNormalization()(h)
    h = tf_keras.layers.Dropout(0.5)(h)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="score")(h))
    path = str(tmp_path / "legacy.h5")
    model.save(path)
    frozen, _ = tfopt.freeze(path)
    _check_frozen_matches(frozen, lambda f: {"score": model(f["features"], training=False).numpy()})
    assert tfopt.load(path).provenance["keras"] == "keras2"


def test_keras_lstm_while_loop(tmp_path):
    import keras

    inputs = keras.Input((5, 3), name="seq")
    h = keras.layers.LSTM(4, return_sequences=True)(inputs)
    outputs = keras.layers.GRU(2, name="state")(h)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    frozen, _ = tfopt.freeze(path)
    ops = _check_frozen_matches(frozen, lambda f: {"state": model(f["seq"]).numpy()})
    assert "While" in ops or "StatelessWhile" in ops


@pytest.mark.parametrize("unsafe", [False, True], ids=["safe-mode-refuses", "unsafe-opt-in"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_needs_opt_in(tmp_path, suffix, unsafe):
    if suffix == ".keras":
        import keras as k
    else:
        import tf_keras as k
    inputs = k.Input((3,), name="x")
    model = k.Model(inputs, k.layers.Lambda(lambda t: t * 2.0, name="double")(inputs))
    path = str(tmp_path / f"lambda{suffix}")
    model.save(path)
    if not unsafe:
        with pytest.raises(tfopt.UnsafeModelError, match=r"Lambda layer.*--unsafe"):
            tfopt.load(path)
        return
    frozen, _ = tfopt.freeze(path, unsafe=True)
    out = GraphRunner(frozen)({"x": np.ones((1, 3), np.float32)})
    np.testing.assert_allclose(next(iter(out.values())), 2.0 * np.ones((1, 3)))


class CondWhile(tf().Module):
    def __init__(self):
        super().__init__()
        self.w = tf().Variable(tf().random.stateless_normal([4, 3], seed=[1, 2]))
        self.b = tf().Variable(tf().fill([3], 0.25))

    @tf().function(input_signature=[tf().TensorSpec([None, 4], tf().float32, name="x"),
                                    tf().TensorSpec([], tf().bool, name="training")])
    def __call__(self, x, training):
        t = tf()
        y = t.matmul(x, self.w)
        y = t.cond(training, lambda: t.nn.dropout(y, 0.5), lambda: y + self.b)
        _, y = t.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 0.5 + t.reduce_sum(self.w)), [0, y])
        return {"out": y, "total": t.reduce_sum(y, axis=1)}


def test_module_savedmodel_cond_and_while(tmp_path):
    module = CondWhile()
    path = str(tmp_path / "sm")
    tf().saved_model.save(module, path, signatures=module.__call__)
    frozen, report = tfopt.freeze(path)
    ops = _check_frozen_matches(frozen, lambda f: {k: v.numpy() for k, v in module(f["x"], False).items()})
    assert report.bindings == {"training": (False, "training flag")}
    assert [s.name for s in frozen.inputs] == ["x"]
    assert not ops & {"If", "StatelessIf", "RandomUniform"}  # dropout branch gone
    assert "While" in ops or "StatelessWhile" in ops


def test_savedmodel_unknown_signature(tmp_path):
    module = CondWhile()
    path = str(tmp_path / "sm")
    tf().saved_model.save(module, path, signatures=module.__call__)
    with pytest.raises(tfopt.OptionError, match=r"no signature 'predict'.*available: serving_default"):
        tfopt.load(path, signature="predict")


@pytest.fixture(scope="module")
def tf2_ckpt(tmp_path_factory):
    from tests.model_fns import digits_cnn

    model = digits_cnn()
    model.set_weights([w + 0.5 for w in model.get_weights()])
    optimizer = tf().keras.optimizers.Adam() if hasattr(tf(), "keras") else None
    ckpt = tf().train.Checkpoint(model=model, optimizer=optimizer)
    prefix = ckpt.save(str(tmp_path_factory.mktemp("tf2") / "ckpt"))
    return prefix, model


def test_tf2_checkpoint_with_model_fn(tf2_ckpt):
    prefix, model = tf2_ckpt
    frozen, _ = tfopt.freeze(prefix, model_fn="tests.model_fns:digits_cnn")
    _check_frozen_matches(frozen, lambda f: {"probs": model(f["images"], training=False).numpy()})


def test_tf2_checkpoint_module(tmp_path):
    from tests.model_fns import Scaler

    module = Scaler()
    module.w.assign(tf().ones([4, 3]) * 3.0)
    prefix = tf().train.Checkpoint(net=module).save(str(tmp_path / "ckpt"))
    frozen, _ = tfopt.freeze(prefix, model_fn="tests.model_fns:scaler")
    out = GraphRunner(frozen)({"x": np.ones((2, 4), np.float32)})
    np.testing.assert_allclose(out["y"], np.full((2, 3), 12.0))


def test_tf2_checkpoint_mismatch_names_unmatched(tf2_ckpt):
    prefix, _ = tf2_ckpt
    with pytest.raises(tfopt.GraphError, match=r"does not match the checkpoint.*root attributes: .*model"):
        tfopt.load(prefix, model_fn="tests.model_fns:wrong_cnn")


def test_tf2_checkpoint_needs_model_fn(tf2_ckpt):
    with pytest.raises(tfopt.OptionError, match="--model-fn"):
        tfopt.load(tf2_ckpt[0])


@pytest.mark.parametrize("suffix", [".pb", ".pbtxt"])
def test_graphdef_round_trip(tmp_path, suffix):
    module = CondWhile()
    sm = str(tmp_path / "sm")
    tf().saved_model.save(module, sm, signatures=module.__call__)
    frozen, _ = tfopt.freeze(sm)
    path = tfopt.save(frozen, str(tmp_path / f"frozen{suffix}"))
    again, _ = tfopt.freeze(path, outputs=["out", "total"])
    assert [s.name for s in again.inputs] == ["x"]
    _check_frozen_matches(again, lambda f: {k: v.numpy() for k, v in module(f["x"], False).items()})


def _keras20_gru_file(tmp_path, *, reset_after, strip):
    """A tf-keras GRU model saved as .h5; ``strip`` drops ``reset_after`` from the stored config and
    stamps Keras 2.0.8, as Keras 2.0 wrote GRUs (shakkala 1.7's simple_model.h5)."""
    import json

    import h5py
    import tf_keras

    inputs = tf_keras.Input((7, 3), name="seq")
    h = tf_keras.layers.GRU(4, return_sequences=True, reset_after=reset_after, name="gru")(inputs)
    h = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(2, reset_after=reset_after), name="bigru")(h)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="score")(h))
    path = str(tmp_path / "gru.h5")
    model.save(path)
    if strip:
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            for layer in config["config"]["layers"]:
                layer["config"].pop("reset_after", None)
                layer["config"].get("layer", {}).get("config", {}).pop("reset_after", None)
            f.attrs["model_config"] = json.dumps(config).encode()
            f.attrs["keras_version"] = b"2.0.8"
    return path, model


# A stored reset_after=False (the default the loader must not replace) in the slow lane: the same
# kept attribute as a stored True, at the other value.
@pytest.mark.parametrize(("reset_after", "strip"), [(False, True), pytest.param(False, False, marks=pytest.mark.slow),
                                                    (True, False)],
                         ids=["keras2.0-no-reset_after", "reset_after-false-stored", "reset_after-true-stored"])
def test_keras2_h5_gru_keeps_the_writers_reset_after(tmp_path, reset_after, strip):
    path, model = _keras20_gru_file(tmp_path, reset_after=reset_after, strip=strip)
    loaded = tfopt.load(path)
    frozen, report = tfopt.freeze(loaded)
    _check_frozen_matches(frozen, lambda f: {"score": model(f["seq"], training=False).numpy()})
    assert report.verification[0].max_abs_err < 1e-5
