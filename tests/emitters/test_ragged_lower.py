"""``RaggedTensorToTensor`` with mixed row partitions rewritten to row splits only (the form tf2onnx
converts): it fires on every mix of two levels, TensorFlow computes the same dense tensor from the
rewritten graph (exactly: integer partitions, values moved, not computed), and forms tf2onnx already
converts are left alone."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.emitters.ragged_lower import lower_ragged_partitions

FEEDS = {"values": np.arange(1, 8, dtype=np.float32), "splits": np.array([0, 1, 3, 3]),  # 3 rows of 3 inner rows
         "rowids": np.array([0, 0, 1, 1, 1, 2, 2]), "outer": np.array([0, 1, 1]), "lengths": np.array([2, 3, 2])}


BUILDS = {  # name -> (inputs, body), each a two-level ragged tensor made dense
    "rowids_in_splits": (("values", "splits", "rowids"), lambda tf, v, s, r: tf.RaggedTensor.from_row_splits(
        tf.RaggedTensor.from_value_rowids(v, r), s)),
    "rowids_in_lengths": (("values", "splits", "rowids"), lambda tf, v, s, r: tf.RaggedTensor.from_row_lengths(
        tf.RaggedTensor.from_value_rowids(v, r), s[1:] - s[:-1])),
    "lengths_in_rowids": (("values", "outer", "lengths"), lambda tf, v, o, n: tf.RaggedTensor.from_value_rowids(
        tf.RaggedTensor.from_row_lengths(v, n), o, nrows=3)),
    "splits_only": (("values", "splits", "lengths"), lambda tf, v, s, n: tf.RaggedTensor.from_row_splits(
        tf.RaggedTensor.from_row_lengths(v, n), s)),
    "rowids_only": (("values", "outer", "rowids"), lambda tf, v, o, r: tf.RaggedTensor.from_value_rowids(
        tf.RaggedTensor.from_value_rowids(v, r), o, nrows=3)),
}


def _graph(name: str):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    names, body = BUILDS[name]
    signature = [tf.TensorSpec([None], tf.float32 if n == "values" else tf.int64, name=n) for n in names]
    fn = tf.function(lambda *args: body(tf, *args).to_tensor(shape=[3, 4, 5]), input_signature=signature)
    return convert_variables_to_constants_v2(fn.get_concrete_function()).graph.as_graph_def(), names


def _run(graph_def, names):
    import tensorflow as tf

    out = next(n.name for n in graph_def.node if n.op == "Identity" and n.name.startswith("Identity"))
    fn = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    pruned = fn.prune([fn.graph.get_tensor_by_name(f"{n}:0") for n in names], fn.graph.get_tensor_by_name(f"{out}:0"))
    return pruned(*[tf.constant(FEEDS[n]) for n in names]).numpy()


def _types(graph_def):
    return [[t.decode() for t in n.attr["row_partition_types"].list.s] for n in graph_def.node
            if n.op == "RaggedTensorToTensor"]


@pytest.mark.parametrize("name", ["rowids_in_splits", "rowids_in_lengths", "lengths_in_rowids"])
def test_mixed_partitions_become_row_splits_and_compute_the_same(name):
    graph_def, names = _graph(name)
    assert any(len(set(types) - {"FIRST_DIM_SIZE"}) > 1 for types in _types(graph_def))  # a mix
    lowered = lower_ragged_partitions(graph_def)
    assert _types(lowered) and all(set(types) == {"ROW_SPLITS"} for types in _types(lowered))
    want = _run(graph_def, names)
    assert np.count_nonzero(want) == len(FEEDS["values"])  # every value landed: the feeds are valid
    np.testing.assert_array_equal(_run(lowered, names), want)


@pytest.mark.parametrize("name", ["splits_only", "rowids_only"])
def test_forms_tf2onnx_converts_are_left_alone(name):
    graph_def, _ = _graph(name)
    assert lower_ragged_partitions(graph_def) is graph_def
