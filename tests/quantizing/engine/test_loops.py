"""The int8 engine on TF1 graphs with v1 control-flow loops (Enter/Merge/Switch/NextIteration/Exit frames,
TensorArrayV3), as TF1's ``dynamic_rnn`` leaves them (cutkum). Ops inside a loop run once per iteration:
a Session cannot fetch them ("Retval[k] has already been set"), so the engine leaves them float and says
so in manifest.json, and quantizes everything outside the loop. Generated: a time-major recurrent layer
(MatMul + BiasAdd + Tanh over ConcatV2 in a ``tf.compat.v1.while_loop``, TensorArrays in and out), then a
dense layer outside the loop; converted to int8 for ONNX and OpenVINO (TFLite cannot lower TensorArrayV3),
numbers against the float original."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tfopt.demos.examples import control_flow_v1
from tfopt.errors import OptionError

FEATURES, UNITS, CLASSES = 4, 8, 3
INT8_SCALED = 0.05  # int8 of the dense layers outside the loop: error / (1 + max|y|), a few 8-bit steps


def _recurrent(t, *, nested: bool = False):
    """``y = (h_T + mean_t h_t) · W_out``, ``h_t = tanh([x_t, h_{t-1}] · W + b)`` (``nested``: each
    step's layer in an inner v1 loop of one iteration)."""
    with control_flow_v1():  # TensorArrayV3 and Enter/Exit frames, as TF1 built them
        _recurrent_v1(t, nested)


def _recurrent_v1(t, nested: bool) -> None:
    v1 = t.compat.v1
    rng = np.random.default_rng(0)
    x = v1.placeholder(t.float32, [None, None, FEATURES], name="x")  # time-major
    steps = t.shape(x)[0]
    xs = t.TensorArray(t.float32, size=steps).unstack(x)
    w = t.constant((rng.normal(size=[FEATURES + UNITS, UNITS]) * 0.5).astype(np.float32))
    b = t.constant((rng.normal(size=[UNITS]) * 0.1).astype(np.float32))

    def step(inputs):
        return t.tanh(t.nn.bias_add(t.matmul(inputs, w), b))

    def body(i, h, ys):
        joined = t.concat([xs.read(i), h], 1)
        if nested:
            _, h = v1.while_loop(lambda j, a: j < 1, lambda j, a: (j + 1, step(joined)), [t.constant(0), h])
        else:
            h = step(joined)
        return i + 1, h, ys.write(i, h)

    _, state, ys = v1.while_loop(lambda i, h, ys: i < steps, body,
                                 [t.constant(0), t.zeros(t.stack([t.shape(x)[1], UNITS])),
                                  t.TensorArray(t.float32, size=steps)])
    out = t.constant(rng.normal(size=[UNITS, CLASSES]).astype(np.float32))
    t.identity(t.matmul(state + t.reduce_mean(ys.stack(), 0), out), name="y")


def test_loop_frames_follow_enter_and_exit(tmp_path):
    """Nested v1 loops: each op in its innermost frame; an Exit in the frame around its loop."""
    from tfopt._tf import graph_def_class
    from tfopt.graphdef.frames import loop_frames

    graph = graph_def_class()()
    with open(graph_pb(tmp_path / "nested.pb", lambda t: _recurrent(t, nested=True)), "rb") as f:
        graph.ParseFromString(f.read())
    frames, ops = loop_frames(graph), {n.name: n.op for n in graph.node}
    outer, inner = "while/while_context", "while/while/while_context"
    assert frames["while/while/MatMul"] == frames["while/while/Tanh"] == inner
    assert frames["while/concat"] == frames["while/while/Exit"] == frames["while/Merge"] == outer
    assert frames["while/concat/axis"] == outer  # a constant of the body (control input from the pivot)
    outside = {n for n, op in ops.items() if op in ("Placeholder", "Identity", "Mean") and not n.startswith("while/")}
    assert outside >= {"x", "y", "Mean"} and not outside & frames.keys()
    assert not [n for n in frames if n.startswith("while/Exit") or not n.startswith("while/")]
    assert all(n in frames for n, op in ops.items() if op in ("Merge", "NextIteration", "Switch", "LoopCond"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v1_loop")
    pb = graph_pb(tmp / "loop.pb", _recurrent)
    rng = np.random.default_rng(1)
    np.savez(tmp / "calib.npz", x=rng.normal(size=[6, 40, FEATURES]).astype(np.float32))  # [time, batch, F]
    result = tfopt.convert(pb, str(tmp / "out"), to=["onnx", "openvino"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax", calibration=str(tmp / "calib.npz"), report_runs=1)
    return result, tmp / "out"


def test_v1_loop_model_converts_to_int8_with_the_loop_left_float(converted):
    """Before the fix the statistics pass fetched ``while/Tanh`` and stopped: "Retval[k] has already been set"."""
    result, out = converted
    assert not result.failed, result.failed
    rows = {row["format"]: row for row in result.report["artifacts"]}
    assert set(rows) == {"onnx", "openvino"} and all(r["precision"] == "int8" for r in rows.values())
    for row in rows.values():
        assert row["fidelity"]["scaled_err"] <= INT8_SCALED, row  # against the float original
    (engine,) = json.loads((out / "manifest.json").read_text())["int8_engine"]["engine"].values()
    (skip,) = engine["skips"]  # one loop, named with its ops and the reason
    assert "while/MatMul" in skip and "while/Tanh" in skip and "while/while_context" in skip, skip
    assert "statistics per iteration cannot be fetched" in skip
    # outside the loop: the input, the AddV2 and Mean after the Exits, the dense layer's output
    assert engine["activation_ranges"] >= 4, engine


def test_ops_inside_loops_get_no_range_and_outside_ones_do(tmp_path):
    """On the portable graph the engine quantizes: no range inside the loop, each one outside it."""
    from tfopt.quantizing.engine.loops import loop_skips
    from tfopt.quantizing.engine.placement import activation_tensors, layers

    model, *_ = tfopt.optimize(graph_pb(tmp_path / "loop.pb", _recurrent), outputs=["y"])
    tensors = activation_tensors(model)
    assert not [t for t in tensors if t.startswith("while/")], tensors
    assert {"x:0", "y:0", "Mean:0"} <= set(tensors) and [layer.linear for layer in layers(model)] == ["y"]
    assert len(loop_skips(model)) == 1 and "while/concat" in loop_skips(model)[0]
    with pytest.raises(OptionError, match=r"--keep-float while/MatMul: .*inside a TF1 while loop"):
        activation_tensors(model, keep_float=["while/MatMul"])
