"""``tf.scatter_nd`` with repeated indices into ONNX and OpenVINO through :mod:`tfopt.emitters.scatter_lower`,
checked by value against TensorFlow: the updates of a repeated index add up (TensorFlow's documented
semantics; tf2onnx's ``ScatterND`` and OpenVINO's ``ScatterNDUpdate`` kept one of them before the lowering).

Generated graph: ``scatter_nd(idx, upd, tf.shape(x))`` plus ``x`` (the shape computed from an input, as a
graph network's messages into its atoms), fed indices ``[1, 1, 3, 1, 0]`` (index 1 three times). Bound:
1e-6 of ``max|y|`` (float32 sums of three terms in another order)."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.graph import Model, TensorSpec
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

RTOL = 1e-6
W = 6


def _scatter_model() -> Model:
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, (None, W), name="x")
        upd = t.compat.v1.placeholder(t.float32, (None, W), name="upd")
        idx = t.compat.v1.placeholder(t.int32, (None, 1), name="idx")
        t.identity(t.scatter_nd(idx, upd, t.shape(x)) + x, name="y")
    return Model(graph_def=graph.as_graph_def(),
                 inputs=[TensorSpec("x", "x:0", "float32", (None, W)), TensorSpec("upd", "upd:0", "float32", (None, W)),
                         TensorSpec("idx", "idx:0", "int32", (None, 1))],
                 outputs=[TensorSpec("y", "y:0", "float32", None)])


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_repeated_scatter_indices_add_up_as_in_tensorflow(tmp_path, target):
    from tfopt.emitters.onnx import emit_onnx
    from tfopt.emitters.openvino import emit_openvino

    model = _scatter_model()
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, W)).astype(np.float32),
             "upd": rng.standard_normal((5, W)).astype(np.float32),
             "idx": np.array([[1], [1], [3], [1], [0]], np.int32)}
    emit = emit_onnx if target == "onnx" else emit_openvino
    got = runner_for(target, emit(model, str(tmp_path / target)), model)(feeds)["y"]
    want = GraphRunner(model)(feeds)["y"]
    assert got.shape == want.shape == (4, W)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * np.abs(want).max())
