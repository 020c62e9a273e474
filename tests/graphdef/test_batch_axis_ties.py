"""The batch axis of inputs tied through structure a walk of the main graph alone cannot see (issue 24, B1):
a TF2 functional ``While`` (loop-carried and captured inputs, a ``tf.TensorArray`` = TensorList), an
``If`` branch, a ``Reshape`` that keeps the axis, a ``Shape`` compared with a packed size, a shape read
from one input used as the size of another. Each is a tiny ``tf.function`` over a time-major ``x [time,
batch, N]``, written as a SavedModel and as a frozen ``.pb`` that keeps its functional control flow.

Asserted: the axis and source recorded for each input (``manifest.json``), and a conversion with made-up
inputs verifying against TensorFlow at the report's batch of 8 (made up on the recorded axis: the rows of
``x`` are cut on axis 1). Before the fix every input of these graphs was axis 0 ``"default"``."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function, tf

N, H = 4, 5
ATOL = 1e-5  # float32 tanh recurrences of <= 8 steps, any runtime
W = np.random.default_rng(0).normal(size=[N + H, H]).astype(np.float32) * 0.5


def _spec(t, shape, name, dtype="float32"):
    return t.TensorSpec(shape, getattr(t, dtype), name=name)


def _loop(t, x, h0, seq_len=None):
    """A TF2 ``while_loop`` over ``TensorArray.unstack(x)`` (a TensorList): ``h = tanh([x_t, h] W)``,
    rows past ``seq_len`` keep their ``h`` (``seq_len`` captured by the body)."""
    steps = t.TensorArray(t.float32, size=t.shape(x)[0]).unstack(x)

    def body(i, h):
        z = t.tanh(t.matmul(t.concat([steps.read(i), h], 1), W))
        return i + 1, z if seq_len is None else t.where(t.expand_dims(i < seq_len, 1), z, h)

    return t.while_loop(lambda i, h: i < t.shape(x)[0], body, [t.constant(0), h0])[1]


def _while(t):
    """The state and the lengths meet the sequence's batch only inside the While body."""
    return (lambda x, state, seq_len: {"y": _loop(t, x, state[0], seq_len)},
            [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state"), _spec(t, [None], "seq_len", "int32")])


def _cond(t):
    """Inside the branches of an ``If`` on a data-dependent predicate: ``mean_t(x) +/- state[0]``."""
    v = np.ones([N, H], np.float32) * 0.1

    def fn(x, state):
        mean = t.matmul(t.reduce_mean(x, 0), v)
        return {"y": t.cond(t.reduce_sum(x) > 0, lambda: mean + state[0], lambda: mean - state[0])}
    return fn, [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state")]


def _reshape(t):
    """A Reshape chain: ``x`` merged to ``[time*batch, N]``, a dense layer, split back to
    ``[shape(x)[0], shape(x)[1], H]``, then batch-major; ``state [1, batch, H]`` reshaped to
    ``[-1, H]`` (its leading 1 dropped: the -1 is exactly its batch) and added."""
    v = np.ones([N, H], np.float32) * 0.1

    def fn(x, state):
        dense = t.reshape(t.matmul(t.reshape(x, [-1, N]), v), [t.shape(x)[0], t.shape(x)[1], H])
        return {"y": t.reduce_mean(t.transpose(dense, [1, 0, 2]), 1) + t.reshape(state, [-1, H])}
    return fn, [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state")]


def _sizes(t):
    """``dynamic_rnn``'s length check (``Equal(shape(seq_len), stack([shape(x)[1]]))`` under an Assert), a
    zero state ``Fill``ed to ``[shape(x)[1], H]``, and ``state`` reshaped to ``[shape(x)[1], H]``, a size read
    from another input: no elementwise op ties ``seq_len`` or ``state`` to ``x``."""
    def fn(x, state, seq_len):
        with t.control_dependencies([t.debugging.assert_equal(t.shape(seq_len), t.stack([t.shape(x)[1]]))]):
            seq_len = t.identity(seq_len)
        h = _loop(t, x, t.zeros(t.stack([t.shape(x)[1], H])))
        r = t.reshape(state, t.stack([t.shape(x)[1], H]))
        return {"y": h + t.reduce_sum(r) + t.cast(t.reduce_max(seq_len), t.float32)}
    return fn, [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state"), _spec(t, [None], "seq_len", "int32")]


CASES = {
    "while": (_while, {"x": 1, "state": 1, "seq_len": 0}),
    "cond": (_cond, {"x": 1, "state": 1}),
    "reshape": (_reshape, {"x": 1, "state": 1}),
    "sizes": (_sizes, {"x": 1, "state": 1, "seq_len": 0}),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """case -> {"savedmodel": dir, "pb": frozen .pb keeping functional While/If}."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    t = tf()
    root = tmp_path_factory.mktemp("ties")
    out = {}
    for name, (build, _) in CASES.items():
        fn, signature = build(t)
        sm = saved_function(root / name, fn, signature)
        frozen = convert_variables_to_constants_v2(t.function(fn, input_signature=signature).get_concrete_function(),
                                                   lower_control_flow=False)
        pb = root / f"{name}.pb"
        pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
        output = frozen.outputs[0].name.split(":")[0]
        out[name] = {"savedmodel": (sm, {}), "pb": (str(pb), {"outputs": [output]})}
    return out


@pytest.mark.parametrize("fmt", ["savedmodel", "pb"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_graph_ties_each_input_to_the_sequences_batch(built, case, fmt):
    path, kw = built[case][fmt]
    model = tfopt.load(path, **kw)
    if case != "reshape":  # the ties this checks are inside functional control flow
        assert {"While", "StatelessWhile", "If", "StatelessIf"} & {n.op for n in model.graph_def.node}
    assert {s.name: s.batch_axis for s in model.inputs} == CASES[case][1]


CONVERT = [pytest.param(c, f, id=f"{c}-{f}", marks=() if f == "savedmodel" and c in ("while", "reshape") else pytest.mark.slow)
           for c in CASES for f in ("savedmodel", "pb")]


@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize(("case", "fmt"), CONVERT)
def test_made_up_inputs_at_batch_8_verify_on_the_recorded_axes(built, case, fmt, tmp_path):
    path, kw = built[case][fmt]
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx", "openvino"], report_runs=1, **kw)
    with open(os.path.join(tmp_path, "out", "manifest.json")) as f:
        recorded = {s["name"]: (s["batch_axis"], s["batch_axis_source"]) for s in json.load(f)["inputs"]}
    assert recorded == {name: (axis, "graph") for name, axis in CASES[case][1].items()}
    assert result.report["samples"] == 8
    assert {a["format"] for a in result.report["artifacts"]} == {"onnx", "openvino"}, result.failed
    for row in result.report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row
