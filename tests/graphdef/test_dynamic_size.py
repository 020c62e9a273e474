"""A count of what values select is a head (tfopt.graphdef.dynamic_size).

Generated tf.compat.v1 graphs, frozen (weights as constants) and as TF1 checkpoints (weights as
variables): a float score head beside the count of elements the scores select — boxes non-max
suppression keeps (an SSD's ``num_detections``), ``tf.where`` / ``boolean_mask`` hits, unique values —
taken with ``Shape`` or ``Size``. The count's value comes from the inputs' values through a shape,
so it is an output, not shape plumbing; the count of a fixed-size tensor stays plumbing.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf

FEATURES = 6


def _boxes(t, x):
    corner = x[:, :2]
    return t.concat([corner, corner + t.abs(x[:, 2:4]) + 0.1], 1)


COUNTS = {  # the number of elements the scores ``s`` select, from the float32 inputs ``x``
    "boolean-mask": lambda t, x, s: t.shape(t.boolean_mask(s, s > 0.0))[0],
    "where-size": lambda t, x, s: t.size(t.where(s > 0.0)),
    "unique": lambda t, x, s: t.shape(t.unique(t.cast(s * 3.0, t.int32)).y)[0],
    "nms": lambda t, x, s: t.shape(t.image.non_max_suppression(_boxes(t, x), s, 10, 0.5))[0],
}


def _save(tmp_path, kind, form, seed):
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((FEATURES, 1)).astype(np.float32)
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, FEATURES], name="x")
        weight = t.constant(w) if form == "frozen" else v1.get_variable("w", initializer=w)
        scores = t.reshape(t.matmul(x, weight), [-1])
        t.sigmoid(scores, name="prob")
        t.cast(COUNTS[kind](t, x, scores), t.float32, name="count")
        t.cast(t.shape(x)[0], t.float32, name="rows")  # the batch size: plumbing, never a head
        if form == "frozen":
            path = str(tmp_path / "model.pb")
            with open(path, "wb") as f:
                f.write(graph.as_graph_def().SerializeToString())
            return path
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("form", ["frozen", "checkpoint"])
@pytest.mark.parametrize("kind", list(COUNTS))
def test_a_count_of_value_selected_elements_is_a_head(tmp_path, kind, form, seed):
    model = tfopt.load(_save(tmp_path, kind, form, seed))
    assert sorted(s.name for s in model.outputs) == ["count", "prob"]
    assert [s.name for s in model.inputs] == ["x"]
    if form != "frozen":
        return  # (a checkpoint's loaded graph reads variables: the frozen form checks the values)
    # the loaded graph computes the count from the values: the hits of ``s > 0`` among 7 rows
    t = tf()
    x = np.random.default_rng(seed).standard_normal((7, FEATURES)).astype(np.float32)
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(model.graph_def, name="")
    with t.compat.v1.Session(graph=graph) as sess:
        count, prob = sess.run(["count:0", "prob:0"], {"x:0": x})
    if kind in ("boolean-mask", "where-size"):
        assert count == np.sum(prob > 0.5)
    assert 1 <= count <= 7
