"""remove_dropout: dropout at rate 0 / keep probability 1 is removed exactly; elsewhere it stays, with a reason."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model, ops
from tfopt.freezing import freeze
from tfopt.freezing.remove_dropout import RemoveDropout, dropout_knobs
from tfopt.runtimes.tensorflow import GraphRunner

RANDOM = {"RandomUniform", "Floor", "GreaterEqual", "SelectV2"}


def _keep_prob_v1(t):
    """tf.compat.v1.nn.dropout(x, keep_prob=kp) as TF 2.21 writes it: SelectV2(U >= 1-kp, x/kp', 0)."""
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    kp = t.compat.v1.placeholder(t.float32, [], name="keep_prob")
    t.identity(t.compat.v1.nn.dropout(t.nn.relu(x), keep_prob=kp) * 2.0, name="out")


def _rate_v2(t):
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    rate = t.compat.v1.placeholder(t.float32, [], name="dropout_rate")
    t.identity(t.nn.dropout(t.nn.relu(x), rate=rate) * 2.0, name="out")


def _floor_tf1(t):
    """TF <= 1.12's tf.nn.dropout: (x / kp) * floor(kp + U)."""
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    kp = t.compat.v1.placeholder(t.float32, [], name="keep_prob")
    h = t.nn.relu(x)
    mask = t.floor(kp + t.random.uniform(t.shape(h)))
    t.identity(t.math.divide(h, kp) * mask * 2.0, name="out")


BUILDERS = {"keep_prob-tf2.21": (_keep_prob_v1, "keep_prob", 1.0), "rate-tf2": (_rate_v2, "dropout_rate", 0.0),
            "keep_prob-floor-tf1.12": (_floor_tf1, "keep_prob", 1.0)}


@pytest.mark.parametrize("case", list(BUILDERS))
def test_knob_bound_automatically_and_dropout_removed_exactly(case):
    build, knob, value = BUILDERS[case]
    model = graph_model(build, {"x": (2, 6), knob: ()}, ["out"])
    assert dropout_knobs(model.graph_def) == {knob: value}
    assert ops(model)["RandomUniform"] == 1
    model = model.replace(inputs=model.inputs[:1])
    frozen, report = freeze(model, verify=False)
    assert report.bindings[knob][0] == value
    assert not RANDOM & set(ops(frozen))
    dropout = next(p for p in report.passes if p.name == "remove_dropout")
    assert dropout.skips == []
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_array_equal(GraphRunner(frozen)({"x": x})["out"], np.maximum(x, 0) * 2.0)


@pytest.mark.parametrize("case", list(BUILDERS))
def test_training_rate_is_kept_with_a_reason(case):
    build, knob, _ = BUILDERS[case]
    model = graph_model(build, {"x": (2, 6), knob: ()}, ["out"])
    frozen, report = freeze(model.replace(inputs=model.inputs[:1]), set_values={knob: 0.5}, verify=False)
    assert ops(frozen)["RandomUniform"] == 1
    skips = next(p for p in report.passes if p.name == "remove_dropout").skips
    assert len(skips) == 1 and "dropout kept" in skips[0].reason and "0.5" in skips[0].reason


def test_unbound_knob_is_an_input_and_the_skip_says_what_to_bind():
    model = graph_model(_keep_prob_v1, {"x": (2, 6), "keep_prob": ()}, ["out"])
    result = RemoveDropout().run(model)
    assert not result.changed
    assert "--set keep_prob=1.0" in result.skips[0].reason


def test_placeholder_with_default_uses_its_default():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
        rate = t.compat.v1.placeholder_with_default(0.0, [], name="rate")
        t.identity(t.nn.dropout(x, rate=rate), name="out")
    model = graph_model(build, {"x": (2, 6)}, ["out"])
    assert dropout_knobs(model.graph_def) == {}  # a default is not overridden
    frozen, _ = freeze(model, verify=False)
    assert not RANDOM & set(ops(frozen))


def test_unrelated_placeholder_named_rate_is_not_bound():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
        rate = t.compat.v1.placeholder(t.float32, [], name="learning_rate")
        t.identity(x * rate, name="out")
    model = graph_model(build, {"x": (2, 6), "learning_rate": ()}, ["out"])
    assert dropout_knobs(model.graph_def) == {}



def test_training_default_is_overridden_and_set_still_accepted():
    """A PlaceholderWithDefault rate defaulting to a training rate is bound to 0 (the default would
    make the graph random); ``--set`` on it is accepted too."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [64, 16], name="x")
        rate = t.compat.v1.placeholder_with_default(0.5, [], name="drop_prob")
        t.identity(t.nn.dropout(x, rate=rate), name="out")
    model = graph_model(build, {"x": (64, 16)}, ["out"])
    frozen, report = freeze(model, atol=0, rtol=0)
    assert report.bindings["drop_prob"] == (0.0, "dropout rate")
    assert not RANDOM & set(ops(frozen))
    frozen, _ = tfopt.freeze(model, set={"drop_prob": 0.0})  # the public API: keywords = CLI names
    assert not RANDOM & set(ops(frozen))


def _training_checkpoint(directory, *, form, keep, in_loop, optimizer, seed):
    """A TF1 checkpoint whose dropout has a *constant* keep probability (an Estimator's TRAIN-mode graph),
    in TF <= 1.12's ``x / k * floor(k + U)`` form or today's ``x * 1/(1-r) * (U >= r)``, inside a while loop
    body or not, with or without its optimizer. Returns the prefix, an input and the output of the same
    weights without dropout (a second graph restored from the checkpoint)."""
    from tfopt._tf import tf
    from tfopt.demos.examples import control_flow_v1

    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((3, 4)).astype(np.float32)

    def build(with_dropout):
        x = v1.placeholder(t.float32, [None, 4], name="x")
        w = v1.get_variable("w", initializer=rng.standard_normal((4, 4)).astype(np.float32), use_resource=True)

        def drop(h):
            if not with_dropout:
                return h
            if form == "floor":
                k = t.constant(keep, name="keep_prob")
                return h / k * t.floor(k + v1.random_uniform(t.shape(h)))
            return v1.nn.dropout(h, rate=1.0 - keep)

        if in_loop:
            h = v1.while_loop(lambda i, h: i < 2, lambda i, h: (i + 1, drop(t.tanh(t.matmul(h, w)))), [0, x])[1]
        else:
            h = drop(t.tanh(t.matmul(x, w)))
        y = t.identity(t.reduce_sum(h, 1, keepdims=True) * 2.0, name="y")
        if optimizer and with_dropout:
            v1.train.AdamOptimizer(0.01).minimize(t.reduce_mean(t.square(y)))
        return y

    for with_dropout in (True, False):
        graph = t.Graph()
        with graph.as_default(), control_flow_v1():
            y = build(with_dropout)
            saver = v1.train.Saver([v for v in v1.global_variables() if v.op.name == "w"])
            with v1.Session(graph=graph) as sess:
                if with_dropout:
                    sess.run(v1.global_variables_initializer())
                    prefix = saver.save(sess, f"{directory}/model.ckpt")
                else:
                    saver.restore(sess, prefix)
                    expected = sess.run(y, {"x:0": xs})
    return prefix, xs, expected


TRAINING = [("floor", 0.8, True), ("floor", 0.5, False), ("rate", 0.9, True), ("rate", 0.7, False)]


@pytest.mark.parametrize(("form", "keep", "in_loop"), TRAINING,
                         ids=[f"{f}-keep{k}-{'loop' if i else 'plain'}" for f, k, i in TRAINING])
def test_constant_dropout_of_a_training_mode_graph_is_off_at_inference(tmp_path, form, keep, in_loop):
    """A graph that holds its optimizer was built in training mode: its constant-rate dropout (no switch
    to bind) is turned off, the original verified without it, and no random op is left."""
    prefix, xs, expected = _training_checkpoint(str(tmp_path), form=form, keep=keep, in_loop=in_loop,
                                                optimizer=True, seed=int(keep * 10))
    model = tfopt.load(prefix, outputs=["y"])
    assert model.provenance["training_dropout_off"]
    frozen, _ = tfopt.freeze(prefix, outputs=["y"])
    assert not {"RandomUniform", "RandomUniformInt"} & set(ops(frozen))
    np.testing.assert_allclose(GraphRunner(frozen)({"x": xs})["y"], expected, rtol=1e-5, atol=1e-5)


def test_constant_dropout_of_an_inference_graph_is_kept(tmp_path):
    """Without an optimizer the dropout is the author's (Monte Carlo dropout): kept, random op and all.
    (Whether the kept dropout then verifies depends on how often the seeded original ran before the
    comparison, so the check is on the graph, not on verification.)"""
    prefix, _, _ = _training_checkpoint(str(tmp_path), form="floor", keep=0.8, in_loop=False, optimizer=False, seed=3)
    assert "training_dropout_off" not in tfopt.load(prefix, outputs=["y"]).provenance
    frozen, _ = tfopt.freeze(prefix, outputs=["y"], verify=False)
    assert {"RandomUniform", "Floor"} <= set(ops(frozen))
