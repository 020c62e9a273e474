"""TF1 inputs whose shape only the graph's ``_output_shapes`` records: a placeholder created with no
shape and refined afterwards (``x.set_shape``), or a legacy graph (producer <= 21) whose empty
``shape`` attribute means "unknown", not "scalar". The loaders take the recorded rank, so the made-up
verification inputs have the rank the model's ops need."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.loaders._signature import adopt_recorded_shapes

RANKS = [1, 2, 3]


def _graph(rank: int, *, legacy: bool):
    """``ids`` (int, no static shape, then ``set_shape`` of ``rank``) -> embedding -> mean -> dense."""
    t = tf()
    rng = np.random.default_rng(rank)
    graph = t.Graph()
    with graph.as_default():
        ids = t.compat.v1.placeholder(t.int32, shape=None, name="ids")
        ids.set_shape([None] * rank)
        table = t.constant(rng.standard_normal((11, 4)).astype(np.float32))
        emb = t.gather(table, ids)  # rank + 1
        pooled = t.reduce_mean(t.reshape(emb, [t.shape(ids)[0], -1, 4]), axis=1)
        t.nn.sigmoid(t.matmul(pooled, t.constant(rng.standard_normal((4, 2)).astype(np.float32))), name="prob")
    graph_def = graph.as_graph_def(add_shapes=True)
    node = next(n for n in graph_def.node if n.name == "ids")
    if legacy:  # how TF 1.0/1.1 wrote an unconstrained placeholder
        graph_def.versions.producer = 21
        node.attr["shape"].shape.Clear()
    else:
        assert node.attr["shape"].shape.unknown_rank
    return graph, graph_def


@pytest.mark.parametrize("legacy", [False, True], ids=["unknown-rank", "legacy-empty"])
@pytest.mark.parametrize("rank", RANKS)
def test_the_recorded_rank_is_the_inputs_and_the_graph_verifies(tmp_path, rank, legacy):
    graph, graph_def = _graph(rank, legacy=legacy)
    path = str(tmp_path / "model.pb")
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    model = tfopt.load(path)
    assert [(s.name, s.shape) for s in model.inputs] == [("ids", (None,) * rank)]
    assert tfopt.inspect(path)["inputs"][0]["shape"] == [None] * rank
    frozen, _ = tfopt.freeze(path)  # verified on made-up ids of that rank
    probe = np.random.default_rng(0).integers(0, 11, size=(3,) + (2,) * (rank - 1)).astype(np.int32)
    with tf().compat.v1.Session(graph=graph) as sess:
        expected = sess.run("prob:0", {"ids:0": probe})
    from tfopt.runtimes.tensorflow import GraphRunner

    np.testing.assert_allclose(GraphRunner(frozen)({"ids": probe})["prob"], expected, rtol=1e-6, atol=1e-6)


def test_a_legacy_empty_shape_with_nothing_recorded_is_unknown_not_scalar():
    _, graph_def = _graph(2, legacy=True)
    node = next(n for n in graph_def.node if n.name == "ids")
    del node.attr["_output_shapes"]
    assert adopt_recorded_shapes(graph_def) == ["ids"] and node.attr["shape"].shape.unknown_rank


def test_a_known_shape_is_left_alone():
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.identity(t.compat.v1.placeholder(t.float32, [None, 3], name="x"), name="y")
    graph_def = graph.as_graph_def(add_shapes=True)
    assert adopt_recorded_shapes(graph_def) == []


def test_a_tf1_checkpoint_input_takes_its_recorded_rank(tmp_path):
    t = tf()
    v1 = t.compat.v1
    graph = t.Graph()
    with graph.as_default():
        ids = v1.placeholder(t.int32, shape=None, name="ids")
        ids.set_shape([None, None])
        table = v1.get_variable("table", initializer=np.arange(44, dtype=np.float32).reshape(11, 4) / 44)
        t.reduce_mean(t.gather(table, ids), axis=1, name="pooled")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            prefix = v1.train.Saver().save(sess, os.path.join(tmp_path, "model.ckpt"))
    model = tfopt.load(prefix + ".meta")
    assert [(s.name, s.shape) for s in model.inputs] == [("ids", (None, None))]
    tfopt.freeze(prefix + ".meta")  # verified against the checkpoint on made-up [n, m] ids
