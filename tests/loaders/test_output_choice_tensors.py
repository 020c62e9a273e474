"""Output choice reads tensors, not nodes: a frozen graph whose output is the second (int) output of a
multi-output op (``TopKV2:1``, ``Unique:1``, a function call's ``PartitionedCall:1`` such as
``non_max_suppression_padded``'s valid count) gets exactly that tensor as its output, never the op's
first output in its place (found by the op sweep: tfopt.coverage.op_sweep).

Generated tf.compat.v1 graphs: each op x with or without its first output also a sink x several widths;
the chosen outputs are the sinks, by name, and the loaded model answers what TensorFlow answers.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.runtimes.tensorflow import GraphRunner


def _call(t, h, k):
    @t.function
    def pair(v):
        return v * 2.0, t.argmax(v, 1, output_type=t.int32) + k
    return pair(h)


OPS = {
    "top_k": lambda t, h, k: t.math.top_k(h, k),
    "unique": lambda t, h, k: t.unique(t.reshape(t.cast(t.round(h * k), t.int32), [-1])),
    "nms_padded": lambda t, h, k: t.image.non_max_suppression_padded(
        t.concat([h[:, :2], h[:, :2] + t.abs(h[:, 2:4]) + 0.1], 1), h[:, 4], k, pad_to_max_output_size=True),
    "function_call": _call,
}


def _frozen(path, op, k, first_too):
    t = tf()
    rng = np.random.default_rng(k)
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, [None, 6], name="x")
        h = t.matmul(x, t.constant(rng.standard_normal((6, 6)).astype(np.float32)))
        first, second = OPS[op](t, h, k)
        t.identity(second, name="out_int")
        if first_too:
            t.identity(first, name="out_first")
    sinks = ["out_int"] + (["out_first"] if first_too else [])
    with open(path, "wb") as f:  # pruned to the sinks, as a frozen graph is
        f.write(t.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), sinks).SerializeToString())
    return graph


# nms_padded at k=5 in the slow lane (each load of its graph takes seconds); k=2 and every other op at both.
@pytest.mark.parametrize("first_too", [False, True], ids=["second-only", "both"])
@pytest.mark.parametrize("op,k", [pytest.param(op, k, id=f"{op}-{k}", marks=pytest.mark.slow if (op, k) == ("nms_padded", 5)
                                               else ()) for op in OPS for k in (2, 5)])
def test_the_sink_reading_a_second_output_is_the_output(tmp_path, op, k, first_too):
    path = str(tmp_path / "model.pb")
    graph = _frozen(path, op, k, first_too)
    model = tfopt.load(path)
    sinks = {"out_int"} | ({"out_first"} if first_too else set())
    chosen = {s.name for s in model.outputs} | set(model.provenance.get("output_alternatives", {}))
    assert sinks <= chosen, (model.outputs, model.provenance.get("output_alternatives"))
    assert "out_int" in {s.name for s in model.outputs}
    assert all(s.tensor in {f"{n}:0" for n in sinks} for s in model.outputs), model.outputs
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    got = GraphRunner(model)({"x": x})
    with tf().compat.v1.Session(graph=graph) as session:
        want = session.run("out_int:0", {"x:0": x})
    np.testing.assert_array_equal(got["out_int"], want)
