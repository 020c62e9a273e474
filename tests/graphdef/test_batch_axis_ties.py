"""The batch axis of inputs tied through structure a walk of the main graph alone cannot see (issue 24, B1):
a TF2 functional ``While`` (loop-carried and captured inputs, a ``tf.TensorArray`` = TensorList, its
stacked steps), a Keras GRU over a time-major input transposed to batch-major (tf.keras ``time_major``'s
way), an ``If`` branch, a ``Reshape`` chain that keeps the axis, a ``Shape`` compared with a packed size,
a shape read from one input used as the size of another (``Fill``, a ``Reshape`` target). Each is a tiny
``tf.function`` over a time-major ``x [time, batch, N]``, written as a SavedModel and as a frozen ``.pb``
that keeps its functional control flow.

Asserted: the axis of each input and output, and (conversions) the axis and source ``manifest.json``
records, with a conversion on made-up inputs verifying against TensorFlow at the report's batch of 8.
Before the fix every input of these graphs was axis 0 ``"default"`` and no output had an axis."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import tf
from tfopt.graphdef.batch_axis import output_batch_axes

N, H = 4, 5
ATOL = 1e-5  # float32 tanh recurrences of <= 8 steps, any runtime
W = np.random.default_rng(0).normal(size=[N + H, H]).astype(np.float32) * 0.5


def _spec(t, shape, name, dtype="float32"):
    return t.TensorSpec(shape, getattr(t, dtype), name=name)


def _loop(t, x, h0, seq_len=None, *, stacked=False):
    """A TF2 ``while_loop`` over ``TensorArray.unstack(x)`` (a TensorList): ``h = tanh([x_t, h] W)``,
    rows past ``seq_len`` keep their ``h`` (``seq_len`` captured by the body); ``stacked``: also every
    step's ``h`` written to a TensorArray and stacked, ``[time, batch, H]``."""
    steps = t.TensorArray(t.float32, size=t.shape(x)[0]).unstack(x)
    outs = t.TensorArray(t.float32, size=t.shape(x)[0])

    def body(i, h, outs):
        z = t.tanh(t.matmul(t.concat([steps.read(i), h], 1), W))
        z = z if seq_len is None else t.where(t.expand_dims(i < seq_len, 1), z, h)
        return i + 1, z, outs.write(i, z)

    _, h, outs = t.while_loop(lambda i, h, outs: i < t.shape(x)[0], body, [t.constant(0), h0, outs])
    return (h, outs.stack()) if stacked else h


def _while(t):
    """The state and the lengths meet the sequence's batch only inside the While body; the stacked
    steps ``ys [time, batch, H]`` carry it to their axis 1."""
    def fn(x, state, seq_len):
        y, ys = _loop(t, x, state[0], seq_len, stacked=True)
        return {"y": y, "ys": ys}
    return fn, [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state"), _spec(t, [None], "seq_len", "int32")]


def _gru(t):
    """A Keras GRU over the time-major ``x`` transposed to batch-major (tf.keras ``time_major``'s way), its
    initial state ``state[0]``: Keras runs the recurrence in a TF2 While."""
    import keras

    layer = keras.layers.GRU(H, seed=1)
    layer.build((None, None, N))
    return (lambda x, state: {"y": layer(t.transpose(x, [1, 0, 2]), initial_state=state[0])},
            [_spec(t, [None, None, N], "x"), _spec(t, [1, None, H], "state")], layer)


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


CASES = {  # case -> (build, the inputs' batch axes, the outputs')
    "while": (_while, {"x": 1, "state": 1, "seq_len": 0}, {"y": 0, "ys": 1}),
    "gru": (_gru, {"x": 1, "state": 1}, {"y": 0}),
    "cond": (_cond, {"x": 1, "state": 1}, {"y": 0}),
    "reshape": (_reshape, {"x": 1, "state": 1}, {"y": 0}),
    "sizes": (_sizes, {"x": 1, "state": 1, "seq_len": 0}, {}),  # y: the state and lengths summed away
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """case -> {format: (path, load options, output name -> its name in that format)}: a SavedModel and a
    frozen ``.pb`` keeping the functional While/If (``lower_control_flow=False``)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    t = tf()
    root = tmp_path_factory.mktemp("ties")
    out = {}
    for name, (build, _, _) in CASES.items():
        fn, signature, *layers = build(t)
        module = t.Module()
        module.layers, module.serve = layers, t.function(fn, input_signature=signature)  # the GRU's weights tracked
        t.saved_model.save(module, str(root / name), signatures=module.serve.get_concrete_function())
        concrete = module.serve.get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
        pb = root / f"{name}.pb"
        pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
        keys = sorted(concrete.structured_outputs)  # a dict's outputs are flattened in key order
        in_pb = {key: ref.name.split(":")[0] for key, ref in zip(keys, frozen.outputs, strict=True)}
        out[name] = {"savedmodel": (str(root / name), {}, {k: k for k in keys}),
                     "pb": (str(pb), {"outputs": list(in_pb.values())}, in_pb)}
    return out


@pytest.mark.parametrize("fmt", ["savedmodel", "pb"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_graph_ties_each_input_to_the_sequences_batch(built, case, fmt):
    path, kw, names = built[case][fmt]
    model = tfopt.load(path, **kw)
    if case != "reshape":  # the ties this checks are inside functional control flow
        assert {"While", "StatelessWhile", "If", "StatelessIf"} & {n.op for n in model.graph_def.node}
    assert {s.name: s.batch_axis for s in model.inputs} == CASES[case][1]
    assert output_batch_axes(model.graph_def, model.inputs, model.outputs) == {
        names[k]: axis for k, axis in CASES[case][2].items()}


CONVERT = [pytest.param(c, f, id=f"{c}-{f}", marks=() if (c, f) == ("while", "savedmodel") else pytest.mark.slow)
           for c in CASES for f in ("savedmodel", "pb")]


@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize(("case", "fmt"), CONVERT)
def test_made_up_inputs_at_batch_8_verify_on_the_recorded_axes(built, case, fmt, tmp_path):
    path, kw, names = built[case][fmt]
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx", "openvino"], report_runs=1, **kw)
    with open(os.path.join(tmp_path, "out", "manifest.json")) as f:
        manifest = json.load(f)
    recorded = {kind: {s["name"]: (s["batch_axis"], s["batch_axis_source"]) for s in manifest[kind]}
                for kind in ("inputs", "outputs")}
    assert recorded == {"inputs": {name: (axis, "graph") for name, axis in CASES[case][1].items()},
                        "outputs": {names[k]: (CASES[case][2][k], "graph") if k in CASES[case][2] else (None, None)
                                    for k in names}}
    assert result.report["samples"] == 8
    assert {a["format"] for a in result.report["artifacts"]} == {"onnx", "openvino"}, result.failed
    for row in result.report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row


def test_a_body_tensorflow_cannot_read_ends_the_trail_there(built):
    """A While body holding an op TensorFlow does not know (a custom op of another build) is left out of the
    walk: the inputs tied only inside it get no axis from it, and nothing fails."""
    from tfopt.graphdef.batch_axis import structural_batch_axes

    path, kw, _ = built["while"]["pb"]
    model = tfopt.load(path, **kw)
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    body = next(f for f in graph_def.library.function if "body" in f.signature.name)
    next(n for n in body.node_def if n.op == "Tanh").op = "NoSuchCustomOp"
    assert structural_batch_axes(graph_def, model.inputs, model.outputs) == {}
