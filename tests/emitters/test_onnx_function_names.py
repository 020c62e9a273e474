"""Frozen ``.pb`` files whose functional loops tf2onnx must keep as loops (``tfopt.emitters.onnx``:
``_lower_using_switch_merge`` off).

Two classes, each built here as a TF1 graph with control flow v2 (``While`` ops whose bodies are library
functions) frozen by TensorFlow's ``convert_variables_to_constants``, as users' ``.pb`` files are:

- a loop over a ``TensorArray`` (``TensorListReserve``/``SetItem`` in the body, what an RNN builds):
  tf2onnx lowered the ``While`` to Switch/Merge frames and then had "no conversion for TensorListReserve";
- loops nested in loops, whose bodies share node names (``add``): tf2onnx's Loop bodies break single
  static assignment ("'add:0' has been used as output names multiple times"). Making the names unique
  before tf2onnx let the checker pass but wired the inner loop's condition to the outer body's counter:
  ONNX Runtime then never returned. Until that is solved, such a file is refused with a typed error,
  and the conversion must end (the test would hang otherwise).

Every file written passes ONNX's full checker, loads in ONNX Runtime and gives TensorFlow's numbers (``TOL``).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import onnx
import pytest

import tfopt
from tfopt._tf import tf

TOL = 1e-5  # fp32 end to end, a few recurrent steps

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tf2onnx") is None, reason="the onnx extra is needed")


def _freeze_to_pb(graph, outputs: list[str], feeds: dict, path: str) -> dict:
    t = tf()
    v1 = t.compat.v1
    with graph.as_default(), v1.Session(graph=graph) as sess:
        sess.run(v1.global_variables_initializer())
        values = sess.run([f"{o}:0" for o in outputs], feeds)
        frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString())
    return dict(zip(outputs, values))


def _tensorlist_rnn(path: str, *, steps: int, units: int, time_major: bool) -> tuple[np.ndarray, dict]:
    """``h <- tanh(x_t W + h U)`` by ``tf.while_loop`` writing every ``h`` to a ``TensorArray``."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    rng = np.random.default_rng(steps * 10 + units)
    shape = [steps, None, 3] if time_major else [None, steps, 3]
    with graph.as_default():
        x = v1.placeholder(t.float32, shape, name="x")
        w = v1.get_variable("w", initializer=rng.normal(0, 0.5, [3, units]).astype(np.float32))
        u = v1.get_variable("u", initializer=rng.normal(0, 0.5, [units, units]).astype(np.float32))
        seq = x if time_major else t.transpose(x, [1, 0, 2])
        inputs = t.TensorArray(t.float32, size=steps).unstack(seq)

        def body(i, h, out):
            h = t.tanh(t.matmul(inputs.read(i), w) + t.matmul(h, u))
            return i + 1, h, out.write(i, h)

        _, h, out = v1.while_loop(lambda i, *_: i < steps, body,
                                  [0, t.zeros([t.shape(seq)[1], units]), t.TensorArray(t.float32, size=steps)])
        t.identity(out.stack(), name="seq")
        t.identity(h, name="last")
    xs = rng.normal(size=[steps, 2, 3] if time_major else [2, steps, 3]).astype(np.float32)
    return xs, _freeze_to_pb(graph, ["seq", "last"], {"x:0": xs}, path)


def _nested_loops(path: str, *, depth: int, width: int) -> tuple[np.ndarray, dict]:
    """``depth`` ``tf.while_loop``s, each in the previous one's body; every body counts with ``i + 1`` (a
    node named ``add`` in each body function) and adds to its carried tensor."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()

    def loop(a, level):
        def body(i, b):
            b = b * 0.5 + t.cast(i, t.float32)
            return i + 1, (loop(b, level + 1) if level < depth else b)
        return v1.while_loop(lambda i, b: i < 2 + level, body, [0, a])[1]

    with graph.as_default():
        x = v1.placeholder(t.float32, [None, width], name="x")
        t.identity(loop(x, 1), name="y")
    xs = np.random.default_rng(depth * 10 + width).normal(size=[2, width]).astype(np.float32)
    return xs, _freeze_to_pb(graph, ["y"], {"x:0": xs}, path)


def _check(out: str, result, x: np.ndarray, expected: dict) -> None:
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    assert [a.format for a in result.artifacts] == ["onnx"], result.failed
    path = os.path.join(out, result.artifacts[0].path)
    onnx.checker.check_model(path, full_check=True)
    assert "Loop" in {n.op_type for n in onnx.load(path).graph.node}  # the loop stayed a loop
    got = runner_for("onnx", path, manifest_model(out))({"x": x})  # ONNX Runtime
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, atol=TOL, rtol=TOL, err_msg=name)


@pytest.mark.parametrize("steps,units,time_major", [(3, 4, False), (5, 2, True), (2, 6, False)],
                         ids=["s3-u4-batch", "s5-u2-time", "s2-u6-batch"])
def test_a_frozen_tensorlist_loop_converts_to_onnx(steps, units, time_major, tmp_path):
    path = str(tmp_path / "rnn.pb")
    x, expected = _tensorlist_rnn(path, steps=steps, units=units, time_major=time_major)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["onnx"], outputs=list(expected), report_runs=1)
    _check(out, result, x, expected)


@pytest.mark.parametrize("depth,width", [(2, 3), (3, 2)], ids=["depth2-w3", "depth3-w2"])
def test_nested_loops_sharing_node_names_are_refused_not_hung(depth, width, tmp_path):
    from tfopt.errors import ConversionError

    path = str(tmp_path / "nested.pb")
    _nested_loops(path, depth=depth, width=width)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="checker"):
        tfopt.convert(path, str(out), to=["onnx"], outputs=["y"], report_runs=1)
    assert not out.exists()  # nothing half-written


