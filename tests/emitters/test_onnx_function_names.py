"""Frozen ``.pb`` files whose functional loops tf2onnx must keep as loops (``tfopt.emitters.onnx``:
``_lower_using_switch_merge`` off) and whose function names it must not confuse
(:mod:`tfopt.emitters.onnx_function_names`).

Two classes, each built here as a TF1 graph with control flow v2 (``While`` ops whose bodies are library
functions) frozen by TensorFlow's ``convert_variables_to_constants``, as users' ``.pb`` files are:

- a loop over a ``TensorArray`` (``TensorListReserve``/``SetItem`` in the body, what an RNN builds):
  tf2onnx lowered the ``While`` to Switch/Merge frames and then had "no conversion for TensorListReserve";
- loops nested in loops, whose bodies share node and argument names (``add``, ``placeholder_1``), and
  ``tf.image.non_max_suppression_padded`` (a loop over the batch around a loop over box tiles): tf2onnx's
  Loop bodies broke single static assignment ("'add:0' has been used as output names multiple times");
  making only the node names unique let the checker pass but wired the inner loop's condition to the
  outer body's values, and ONNX Runtime never returned. Node and argument names are now unique across
  the library (a conversion that hung would stop at verification's time bound, not hang the test).

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


# s2-u6-batch in the slow lane: another size of s3-u4-batch's batch-major loop (s5-u2-time: time-major).
@pytest.mark.parametrize("steps,units,time_major", [(3, 4, False), (5, 2, True),
                                                    pytest.param(2, 6, False, marks=pytest.mark.slow)],
                         ids=["s3-u4-batch", "s5-u2-time", "s2-u6-batch"])
def test_a_frozen_tensorlist_loop_converts_to_onnx(steps, units, time_major, tmp_path):
    path = str(tmp_path / "rnn.pb")
    x, expected = _tensorlist_rnn(path, steps=steps, units=units, time_major=time_major)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["onnx"], outputs=list(expected), report_runs=1)
    _check(out, result, x, expected)


@pytest.mark.parametrize("depth,width", [(2, 3), (3, 2)], ids=["depth2-w3", "depth3-w2"])
def test_nested_loops_sharing_names_convert_to_onnx(depth, width, tmp_path):
    path = str(tmp_path / "nested.pb")
    x, expected = _nested_loops(path, depth=depth, width=width)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["onnx"], outputs=["y"], report_runs=1)
    _check(out, result, x, expected)


def _padded_nms(path: str, *, boxes: int, batch: int) -> tuple[dict, dict]:
    """``tf.image.non_max_suppression_padded`` over a batch: its ``while_loop`` over box tiles sits in
    the body of a loop over the batch, both from the same TensorFlow code (shared names)."""
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        b = v1.placeholder(t.float32, [None, boxes, 4], name="boxes")
        s = v1.placeholder(t.float32, [None, boxes], name="scores")
        selected, valid = t.image.non_max_suppression_padded(b, s, max_output_size=8, iou_threshold=0.5,
                                                             score_threshold=0.1, pad_to_max_output_size=True)
        t.identity(selected, name="selected")
        t.identity(valid, name="valid")
    rng = np.random.default_rng(boxes + batch)
    corner = rng.uniform(0, 1, (batch, boxes, 2))
    feeds = {"boxes": np.concatenate([corner, corner + rng.uniform(0.05, 0.4, (batch, boxes, 2))], -1).astype(np.float32),
             "scores": rng.permutation(np.linspace(0.05, 1, batch * boxes)).reshape(batch, boxes).astype(np.float32)}
    return feeds, _freeze_to_pb(graph, ["selected", "valid"], {f"{k}:0": v for k, v in feeds.items()}, path)


def test_padded_nms_in_a_frozen_pb_converts_to_onnx(tmp_path, boxes=50, batch=3):
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    path = str(tmp_path / "nms.pb")
    feeds, expected = _padded_nms(path, boxes=boxes, batch=batch)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["onnx"], outputs=["selected", "valid"], report_runs=1)
    assert [a.format for a in result.artifacts] == ["onnx"], result.failed
    onnx_path = os.path.join(out, result.artifacts[0].path)
    onnx.checker.check_model(onnx_path, full_check=True)
    got = runner_for("onnx", onnx_path, manifest_model(out))(feeds)  # ONNX Runtime
    assert expected["valid"].min() > 0  # boxes were kept: the indices mean something
    for name, want in expected.items():  # box indices and counts: exact
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("depth", [2, 3])
def test_renamed_function_names_are_unique_and_compute_the_same(depth, tmp_path):
    """The rename itself: no two nodes or arguments of the graph and its functions share a name, the main
    graph keeps its names, and TensorFlow computes the same numbers from the renamed graph."""
    from tensorflow.core.framework import graph_pb2

    from tfopt.emitters.onnx_function_names import unique_function_names
    from tfopt.loaders import load
    from tfopt.runtimes.tensorflow import GraphRunner

    path = str(tmp_path / "nested.pb")
    x, expected = _nested_loops(path, depth=depth, width=3)
    graph_def = graph_pb2.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())

    def names(g):
        return ([n.name for n in g.node] + [n.name for f in g.library.function for n in f.node_def]
                + [a.name for f in g.library.function for a in f.signature.input_arg])

    assert len(set(names(graph_def))) < len(names(graph_def))  # the bodies' "add", "placeholder" collide
    renamed = unique_function_names(graph_def)
    assert len(set(names(renamed))) == len(names(renamed))
    assert [n.name for n in renamed.node] == [n.name for n in graph_def.node]
    assert unique_function_names(renamed) is renamed  # nothing left to rename
    model = load(path, outputs=["y"])
    got = GraphRunner(model.replace(graph_def=renamed))({"x": x})["y"]
    np.testing.assert_allclose(got, expected["y"], atol=1e-6, rtol=1e-6)
