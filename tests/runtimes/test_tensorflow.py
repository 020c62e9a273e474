"""TensorFlow sessions over frozen graphs (:func:`tfopt._tf.graph_session`, what ``GraphRunner``,
calibration and ``tfopt debug`` run): a graph holding large constants runs as it is, without
grappler's optimizers (each copies the whole graph, constants included: tens of seconds per session
at 64 MB); a small one keeps them. Either way the numbers are the graph's."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt._tf import PLAIN_SESSION_CONST_BYTES, graph_session, tf
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.tensorflow import GraphRunner


def _graph(rows: int, dim: int):
    """ids -> Gather(table) -> mean -> Identity ``mid`` (what grappler's pruner removes) -> * 5."""
    t = tf()
    rng = np.random.default_rng(rows)
    table = rng.standard_normal((rows, dim)).astype("float32")
    graph = t.Graph()
    with graph.as_default():
        ids = t.compat.v1.placeholder(t.int32, [None, 4], name="ids")
        mid = t.identity(t.reduce_mean(t.gather(t.constant(table), ids), axis=1), name="mid")
        t.identity(mid * 5.0, name="out")
    return graph.as_graph_def(), table


def _executed_ops(graph_def, feeds) -> dict[str, str]:
    """Name -> op of the nodes the session executed (its partition graph, after any rewriting)."""
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(graph_def, name="")
    meta = t.compat.v1.RunMetadata()
    options = t.compat.v1.RunOptions(output_partition_graphs=True)
    with graph_session(graph, graph_def) as session:
        session.run("out:0", feeds, options=options, run_metadata=meta)
    return {n.name: n.op for g in meta.partition_graphs for n in g.node}


@pytest.mark.parametrize("rows,dim,large", [(64, 16, False), (1000, 1024, False), (4200, 1024, True), (9000, 1024, True)])
def test_large_constants_run_without_grappler(rows, dim, large):
    graph_def, table = _graph(rows, dim)
    assert (rows * dim * 4 >= PLAIN_SESSION_CONST_BYTES) == large
    ids = np.random.default_rng(0).integers(0, rows, (3, 4)).astype("int32")
    executed = _executed_ops(graph_def, {"ids:0": ids})
    assert (executed.get("mid") == "Identity") == large  # grappler prunes it; as it is, the graph runs it
    model = Model(graph_def, [TensorSpec("ids", "ids:0", "int32", (None, 4))], [TensorSpec("out", "out:0", "float32", (None, dim))])
    runner = GraphRunner(model)
    try:
        got = runner({"ids": ids})["out"]
    finally:
        runner.close()
    np.testing.assert_allclose(got, table[ids].mean(axis=1) * 5.0, rtol=1e-6, atol=1e-6)

