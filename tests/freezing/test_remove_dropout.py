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
