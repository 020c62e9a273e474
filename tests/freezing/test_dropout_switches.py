"""Dropout switches in every form TF1 graphs carry them: a keep probability or rate placeholder of
scalar or unknown rank, a ``PlaceholderWithDefault`` defaulting to a training value, named like a
knob or not (``Placeholder_3``), read directly or only inside a ``while_loop`` body through its
``Enter``, and ``DropoutWrapper`` cells in ``dynamic_rnn`` (time- and batch-major). Each is bound
automatically, no random op is left, and the frozen model equals the original with dropout off."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model, graph_pb, keras2_builds, ops
from tfopt.demos.examples import control_flow_v1
from tfopt.freezing import freeze
from tfopt.freezing.remove_dropout import RemoveDropout, dropout_knobs
from tfopt.runtimes.tensorflow import GraphRunner

RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt"}
SHAPE = (3, 6)


def _knob(t, kind: str, rank: str, name: str, training: float):
    if rank == "default":
        return t.compat.v1.placeholder_with_default(training, [], name=name)
    return t.compat.v1.placeholder(t.float32, [] if rank == "scalar" else None, name=name)


def _builder(kind: str, rank: str, name: str, loop: bool):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        knob = _knob(t, kind, rank, name, 0.5)

        def drop(h):
            return (t.compat.v1.nn.dropout(h, keep_prob=knob) if kind == "keep_prob"
                    else t.nn.dropout(h, rate=knob))
        if loop:
            _, h = t.compat.v1.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, drop(t.tanh(h) + 0.1)),
                                          [t.constant(0), x])
        else:
            h = drop(t.nn.relu(x))
        t.identity(h * 2.0, name="out")
    return build


CASES = {f"{kind}-{rank}-{name}-{'loop' if loop else 'plain'}": (kind, rank, name, loop)
         for kind, rank, name, loop in itertools.product(("keep_prob", "rate"), ("scalar", "unknown-rank", "default"),
                                                         ("knob", "Placeholder_3"), (False, True))}


@pytest.mark.parametrize("case", list(CASES))
def test_switch_is_bound_and_every_random_op_goes(case):
    kind, rank, name, loop = CASES[case]
    name = f"{kind}" if name == "knob" else name
    off = 1.0 if kind == "keep_prob" else 0.0
    model = graph_model(_builder(kind, rank, name, loop), {"x": SHAPE}, ["out"], v1_control_flow=loop)
    assert ops(model)["RandomUniform"] >= 1 and (ops(model).get("Enter", 0) > 0) == loop
    assert dropout_knobs(model.graph_def, outputs=["out:0"]) == {name: off}
    frozen, report = freeze(model, atol=0, rtol=0)  # verified exactly against the original with the switch off
    assert report.bindings[name][0] == off
    assert [s.name for s in frozen.inputs] == ["x"]
    assert not RANDOM_OPS & set(ops(frozen))
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    np.testing.assert_array_equal(GraphRunner(frozen)({"x": x})["out"],
                                  GraphRunner(model)({"x": x, name: np.float32(off)})["out"])


@pytest.mark.parametrize("rank", ["scalar", "unknown-rank", "default"])
def test_set_accepts_every_switch_and_a_training_value_keeps_dropout(rank):
    model = graph_model(_builder("keep_prob", rank, "Placeholder_3", True), {"x": SHAPE}, ["out"],
                        v1_control_flow=True)
    frozen, report = freeze(model, set_values={"Placeholder_3": "0.5"}, verify=False)
    assert report.bindings["Placeholder_3"][1] == "--set"
    assert ops(frozen)["RandomUniform"] == 1
    skips = next(p for p in report.passes if p.name == "remove_dropout").skips
    assert skips and all("0.5" in s.reason for s in skips)


def test_a_threshold_from_no_placeholder_is_not_offered_to_set():
    """A rate computed from an input tensor: the skip names the node computing it, never a --set on it."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        t.identity(t.nn.dropout(x, rate=t.reduce_mean(t.sigmoid(x)) * 0.1), name="out")
    model = graph_model(build, {"x": SHAPE}, ["out"])
    skips = RemoveDropout().run(model).skips
    assert len(skips) == 1 and "--set" not in skips[0].reason and "not from a placeholder" in skips[0].reason


def test_a_placeholder_that_also_feeds_the_model_is_not_bound_by_structure():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        p = t.compat.v1.placeholder(t.float32, [], name="Placeholder_1")
        t.identity(t.compat.v1.nn.dropout(x, keep_prob=p) + p, name="out")
    model = graph_model(build, {"x": SHAPE, "Placeholder_1": ()}, ["out"])
    assert dropout_knobs(model.graph_def, outputs=["out:0"]) == {}


BUILDER = os.path.join(os.path.dirname(__file__), "tf1_rnn_dropout_graph.py")
RNN_CASES = ["gru-time-unknown-rank", "lstm-batch-scalar", "lstm-batch-default-variational",
             *(pytest.param(c, marks=pytest.mark.slow) for c in ("gru-batch-default", "lstm-time-default",
                                                                  "gru-time-scalar-variational"))]


def _rnn_args(case: str, directory: str) -> list[str]:
    cell, major, knob = case.removesuffix("-variational").split("-", 2)
    return [directory, cell, major, knob, *(["variational"] if case.endswith("-variational") else [])]


@pytest.fixture(scope="module")
def rnn_checkpoints(tmp_path_factory):
    """case -> its checkpoint directory (the fast cases' written by one process)."""
    fast = [c for c in RNN_CASES if isinstance(c, str)]
    return keras2_builds(BUILDER, tmp_path_factory.mktemp("rnn_dropout"), fast, lambda case, path: _rnn_args(case, path))


@pytest.mark.parametrize("case", RNN_CASES)
def test_dropout_wrapper_in_dynamic_rnn_is_removed_inside_the_loop(case, rnn_checkpoints):
    directory = rnn_checkpoints(case)
    model = tfopt.load(directory, outputs=["y"])
    # input, state and output masks: drawn in the loop body, or once before it and read through Enter
    assert ops(model)["RandomUniform"] == 3
    frozen, report = tfopt.freeze(directory, outputs=["y"], atol=1e-6, rtol=1e-6)
    assert report.bindings["keep_prob"][0] == 1.0
    assert [s.name for s in frozen.inputs] == ["x"]
    assert not RANDOM_OPS & set(ops(frozen))
    with np.load(os.path.join(directory, "reference.npz")) as ref:
        np.testing.assert_allclose(GraphRunner(frozen)({"x": ref["x"]})["y"], ref["y"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("shape", [(), None, (3, 6), (None, 6)], ids=["scalar", "unknown-rank", "3x6", "?x6"])
def test_an_unbound_placeholder_error_suggests_only_a_set_tfopt_accepts(shape):
    """The --set the error suggests is one freezing then accepts; none for a shape it cannot bind."""
    from tfopt.errors import GraphError, OptionError

    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        t.identity(x * t.compat.v1.placeholder(t.float32, shape, name="scale"), name="out")
    model = graph_model(build, {"x": SHAPE}, ["out"])
    with pytest.raises(GraphError, match="'scale'") as info:
        freeze(model, verify=False)
    suggested = "--set scale=VALUE" in str(info.value)
    assert suggested == (shape is None or None not in shape)
    try:
        freeze(model, set_values={"scale": "2"}, verify=False)
        accepted = True
    except OptionError:
        accepted = False
    assert accepted == suggested


@pytest.mark.parametrize("case", ["keep_prob-unknown-rank-Placeholder_3-loop", "rate-default-knob-plain"])
def test_inspect_lists_the_switch_it_will_bind(case, tmp_path):
    kind, rank, name, loop = CASES[case]
    name = kind if name == "knob" else name
    with control_flow_v1():
        path = graph_pb(tmp_path / "m.pb", _builder(kind, rank, name, loop))
    assert tfopt.inspect(path)["dropout_knobs"] == {name: 1.0 if kind == "keep_prob" else 0.0}
