"""The original model's runs during verification are bounded (issue 24): a while-loop that does not end on
made-up inputs is a typed error within the bound, naming the input that reaches the loop and the way out,
whether the original runs as a TF2 function (eager cancellation) or as a frozen GraphDef (a session's deadline)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function
from tfopt._tf import deadline, tf
from tfopt.errors import OptionError, VerificationTimeoutError
from tfopt.verification.deadline import artifact_bound, loop_inputs, reference_bound, verify_timeout

BOUND = 2.0  # seconds: the test's --verify-timeout
SLACK = 25.0  # seconds beyond the bound the whole freeze may take (loading, tracing, one made-up size)


def _loop(t, looped, other):
    """Counts while every value of ``looped`` is non-zero: made-up (random normal) values never end it; real
    data holding a zero does. ``other`` only adds to the result."""
    def body(i, x):
        return i + 1, x

    count, _ = t.while_loop(lambda i, x: t.reduce_min(t.abs(x)) > 0.0, body, [t.constant(0.0), looped])
    return count + t.reduce_sum(other)


def _saved_function(root, looped: str, other: str) -> str:
    """A SavedModel whose signature takes ``x`` and ``bias`` (its arguments' names); ``looped`` is the one
    that reaches the loop."""
    t = tf()
    spec = [t.TensorSpec([None, 3], t.float32, name="x"), t.TensorSpec([None, 3], t.float32, name="bias")]

    def serve(x, bias):
        inputs = {"x": x, "bias": bias}
        return {"y": _loop(t, inputs[looped], inputs[other])}

    return saved_function(os.path.join(root, f"fn_{looped}"), serve, spec)


def _frozen_graph(root, looped: str, other: str) -> str:
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        a = t.compat.v1.placeholder(t.float32, [None, 3], name=looped)
        b = t.compat.v1.placeholder(t.float32, [None, 3], name=other)
        t.identity(_loop(t, a, b), name="y")
    path = os.path.join(root, f"graph_{looped}.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize("build,looped,other", [(_saved_function, "x", "bias"), (_saved_function, "bias", "x"),
                                                (_frozen_graph, "tokens", "scale")],
                         ids=["tf2-function", "tf2-function-second-input", "frozen-graph"])
def test_a_loop_that_never_ends_on_made_up_inputs_is_a_typed_error_naming_its_input(tmp_path, build, looped, other):
    path = build(str(tmp_path), looped, other)
    outputs = {"outputs": ["y"]} if path.endswith(".pb") else {}
    start = time.monotonic()
    with pytest.raises(VerificationTimeoutError) as err:
        tfopt.freeze(path, verify_timeout=BOUND, **outputs)
    took = time.monotonic() - start
    message = str(err.value)
    assert took < BOUND + SLACK, took
    assert f"'{looped}'" in message and f"'{other}'" not in message, message  # the input that reaches the loop
    assert "--verify-timeout" in message and "--calibration" in message and "--no-verify" in message, message
    assert err.value.exit_code == 7


def test_real_inputs_the_loop_ends_on_verify(tmp_path):
    """The same graph verifies on data it ends on: the bound only stops what does not end."""
    path = _saved_function(str(tmp_path), "x", "bias")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((2, 3), np.float32), bias=np.ones((2, 3), np.float32))
    _, report = tfopt.freeze(path, verify_timeout=BOUND,
                             verify_data=_verify_data(str(data)))
    assert report.verified_at.source == "eval-data"


def _verify_data(path: str):
    from tfopt.verification.verify_inputs import VerifyData

    return VerifyData(eval_data=path)


def test_deadline_stops_a_tensorflow_loop_in_process():
    """:func:`tfopt._tf.deadline` stops a ``While`` of 2**31 steps, in a tf.function and in a session."""
    t = tf()

    @t.function(input_signature=[t.TensorSpec([], t.int32)])
    def count(n):
        return t.while_loop(lambda i: i < n, lambda i: [i + 1], [t.constant(0)])

    start = time.monotonic()
    with pytest.raises((t.errors.CancelledError, t.errors.DeadlineExceededError)), deadline(0.5):
        count(t.constant(2 ** 31 - 1))
    assert time.monotonic() - start < 5.0
    assert int(t.nest.flatten(count(t.constant(5)))[0]) == 5  # no deadline: as before


@pytest.mark.parametrize("given,expected", [(None, "derived"), (0, None), (7.5, 7.5)])
def test_bounds_follow_the_option(given, expected):
    with verify_timeout(given):
        artifact, reference = artifact_bound(2.0), reference_bound()
    if expected == "derived":
        assert artifact >= 2.0 * 10 and reference > 0  # scaled by the original's own time, never below a floor
    else:
        assert artifact == expected and reference == expected


def test_negative_verify_timeout_is_refused_before_any_work(tmp_path):
    with pytest.raises(OptionError, match="--verify-timeout"):
        tfopt.freeze(str(tmp_path / "missing"), verify_timeout=-1)


def test_loop_inputs_name_only_inputs_reaching_a_loop():
    from tests.helpers import graph_model

    model = graph_model(lambda t: t.identity(_loop(t, t.compat.v1.placeholder(t.float32, [None, 3], name="p"),
                                                   t.compat.v1.placeholder(t.float32, [None, 3], name="q")),
                                             name="y"), {"p": (None, 3), "q": (None, 3)}, ["y"])
    assert loop_inputs(model.graph_def, model.inputs) == ["p"]
