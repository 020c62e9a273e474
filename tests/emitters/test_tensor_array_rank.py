"""A TF1 ``TensorArrayV3`` whose element rank OpenVINO's frontend cannot learn (cutkum's frozen
segmenter: a ``map_fn`` over what a ``dynamic_rnn``-style loop gathered) stopped the OpenVINO build
with "No conversion rule found for operations: TensorArrayV3". ``tfopt.emitters.tensor_array_rank``
writes the rank TensorFlow knows into the node. Generated graphs, with v1 control flow as TF1 froze
them: a time-major loop over ``[time, batch, F]`` that writes one step per iteration, then one or two
``map_fn`` over the stacked result, with elements of rank 2 or 3. Each is converted to ONNX and
OpenVINO and verified by tfopt within 1e-5 of TensorFlow (TFLite's builtins cannot lower
``TensorArrayV3`` at all: that is the converter's limit, documented)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model

F, H = 4, 5


def _build(t, *, maps: int, element_rank: int) -> None:
    rng = np.random.default_rng(0)
    x = t.compat.v1.placeholder(t.float32, [None, None, F], name="x")  # time-major: [time, batch, F]
    steps = t.shape(x)[0]
    w = t.constant(rng.standard_normal((F, H)).astype(np.float32))
    u = t.constant(rng.standard_normal((H, H)).astype(np.float32) * 0.3)
    inputs = t.TensorArray(t.float32, size=steps).unstack(x)
    written = t.TensorArray(t.float32, size=steps)

    def body(i, h, ta):
        h = t.tanh(t.matmul(inputs.read(i), w) + t.matmul(h, u))
        step = h if element_rank == 2 else t.stack([h, h * h], axis=-1)  # [batch, H] or [batch, H, 2]
        return i + 1, h, ta.write(i, step)

    h0 = t.zeros(t.stack([t.shape(x)[1], H]))
    _, _, written = t.while_loop(lambda i, h, ta: i < steps, body, (0, h0, written))
    y = written.stack()
    for k in range(maps):  # each map_fn scatters what the loop before it gathered
        y = t.map_fn(lambda s, k=k: t.sigmoid(s * (k + 1.0)), y)
    t.identity(y, name="y")


# two-maps-rank3 holds every TensorArray kind of one-map-rank2 and more (two map_fn, a rank-3 element): the
# fast lane converts it; the rank-2 element's rank is written in the fast lane by
# test_the_ranks_are_written_only_where_the_container_ops_tell_one_and_tensorflow_computes_the_same.
CASES = {"one-map-rank2": pytest.param(1, 2, marks=pytest.mark.slow), "two-maps-rank3": (2, 3)}


@pytest.mark.parametrize(("maps", "element_rank"), CASES.values(), ids=CASES.keys())
def test_a_tensor_array_of_unknown_element_rank_converts_to_openvino(tmp_path, maps, element_rank):
    import tfopt

    model = graph_model(lambda t: _build(t, maps=maps, element_rank=element_rank), {"x": (None, None, F)}, ["y"],
                        v1_control_flow=True)
    result = tfopt.convert(model, str(tmp_path / "out"), to=["onnx", "openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    artifacts = result.report["artifacts"]
    assert sorted(a["format"] for a in artifacts) == ["onnx", "openvino"]
    assert all(a["fidelity"]["max_abs_err"] <= 1e-5 for a in artifacts), artifacts


def test_the_ranks_are_written_only_where_the_container_ops_tell_one_and_tensorflow_computes_the_same():
    from tfopt._tf import tf
    from tfopt.emitters.tensor_array_rank import set_tensor_array_ranks

    model = graph_model(lambda t: _build(t, maps=1, element_rank=3), {"x": (None, None, F)}, ["y"],
                        v1_control_flow=True)
    fixed = set_tensor_array_ranks(model.graph_def)
    ranks = sorted(len(n.attr["element_shape"].shape.dim) for n in fixed.node if n.op == "TensorArrayV3")
    assert ranks == [2, 3, 3, 3]  # the loop's input steps [batch, F]; its written steps; map_fn's in and out
    assert all(not n.attr["element_shape"].shape.unknown_rank and
               all(d.size == -1 for d in n.attr["element_shape"].shape.dim)
               for n in fixed.node if n.op == "TensorArrayV3")
    assert any(n.attr["element_shape"].shape.unknown_rank for n in model.graph_def.node if n.op == "TensorArrayV3")
    x = np.random.default_rng(1).standard_normal((7, 3, F)).astype(np.float32)
    got = []
    for graph_def in (model.graph_def, fixed):
        graph = tf().Graph()
        with graph.as_default():
            tf().graph_util.import_graph_def(graph_def, name="")
        with tf().compat.v1.Session(graph=graph) as sess:
            got.append(sess.run("y:0", {"x:0": x}))
    np.testing.assert_array_equal(got[0], got[1])
    # a container whose ops tell no rank (the value written has none) is left as it is
    def unknown(t):
        v = t.compat.v1.placeholder(t.float32, None, name="x")
        t.identity(t.TensorArray(t.float32, size=2).write(0, v).read(0), name="y")

    told_nothing = graph_model(unknown, {"x": None}, ["y"], v1_control_flow=True)
    assert set_tensor_array_ranks(told_nothing.graph_def) is told_nothing.graph_def
    # nothing to learn: a graph without TensorArrays comes back as it is
    plain = graph_model(lambda t: t.identity(t.compat.v1.placeholder(t.float32, [None, F], name="x") * 2.0, name="y"),
                        {"x": (None, F)}, ["y"])
    assert set_tensor_array_ranks(plain.graph_def) is plain.graph_def
