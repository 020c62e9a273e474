"""A frozen ``.pb`` whose TF2 loops were lowered to TF1 frames (``convert_variables_to_constants_v2``'s
default ``lower_control_flow=True``: ``Enter``/``Merge``/``NextIteration``/``Exit``). A body's constants
are inside the loop's frame only through a control edge on a ``NoOp`` (``^.../input_control_node``);
freezing deleted the ``NoOp`` with its edges and TensorFlow refused the frozen graph ("has inputs from
different frames", a ``GraphError``). The node now waits on what the ``NoOp`` waited on."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt

TOLERANCE = 1e-5  # fp32 products and sums of a few values


def _bodies(tf, w):
    return {
        "map_fn": lambda x: tf.map_fn(lambda row: tf.reduce_sum(row * w) + 1.0, x),
        "while_loop": lambda x: tf.while_loop(lambda i, acc: i < 3, lambda i, acc: (i + 1, acc * 0.5 + x * w),
                                              (tf.constant(0), tf.zeros_like(x)))[1] - x,
        "nested": lambda x: tf.map_fn(lambda row: tf.map_fn(lambda v: v * w + 2.0, row), x),
    }


def _lowered_pb(name: str, path: str):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.float32(1.5))
    fn = tf.function(_bodies(tf, w)[name], input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    concrete = fn.get_concrete_function()
    graph_def = convert_variables_to_constants_v2(concrete).graph.as_graph_def()  # lower_control_flow=True
    assert any(n.op == "Enter" for n in graph_def.node)  # TF1 frames, not a functional While
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    return concrete


@pytest.mark.parametrize("name", ["map_fn", "while_loop", "nested"])
def test_a_lowered_loop_freezes_and_computes_the_same(name, tmp_path):
    import tensorflow as tf

    from tfopt.verification.verify import reference_runner

    original = _lowered_pb(name, str(tmp_path / "frozen.pb"))
    frozen, _ = tfopt.freeze(tfopt.load(str(tmp_path / "frozen.pb")))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    got = next(iter(reference_runner(frozen)({"x": x}).values()))
    np.testing.assert_allclose(got, original(tf.constant(x)).numpy(), rtol=TOLERANCE, atol=TOLERANCE)


def test_a_lowered_map_fn_converts_to_openvino(tmp_path):
    _lowered_pb("map_fn", str(tmp_path / "frozen.pb"))
    result = tfopt.convert(str(tmp_path / "frozen.pb"), str(tmp_path / "out"), to=["openvino"], quantize=["fp32"],
                           report_runs=1)
    assert [a.format for a in result.artifacts] == ["openvino"]
    assert result.artifacts[0].max_abs_err is not None and result.artifacts[0].max_abs_err <= TOLERANCE
