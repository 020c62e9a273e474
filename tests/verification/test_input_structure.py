"""Made-up inputs that are structure fit what the graph does with them (issue 24's open op-sweep case:
``ragged_to_dense`` from a frozen ``.pb``, whose made-up row lengths did not add up to the values' count):
ragged row partitions, segment ids and sparse indices, generated per kind, in the main graph and in a
function body, and a count tfopt cannot follow stops with ``MadeUpInputsError`` before any converter."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.verification.structure_builds import ALL, BUILDS, TARGETS, save

TOLERANCE = 1e-5  # fp32 artifacts of gathers, scatters and sums of a few values: exact but for rounding


def _function(name: str):
    """The build's ``tf.function`` (validating: TensorFlow's own asserts and kernel checks) and its
    frozen GraphDef (what tfopt reads)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    build = BUILDS[name]
    w = tf.constant(np.random.default_rng(0).standard_normal(build.weight).astype(np.float32) + 1.5)
    signature = [tf.TensorSpec(shape, dtype, name=n) for n, shape, dtype in build.inputs]
    concrete = tf.function(lambda *args: build.body(tf, *args, w), input_signature=signature).get_concrete_function()
    return concrete, convert_variables_to_constants_v2(concrete).graph.as_graph_def()


def _specs(name: str):
    from tfopt.graph import TensorSpec

    return [TensorSpec(n, f"{n}:0", dtype, shape) for n, shape, dtype in BUILDS[name].inputs]


def _holds(name: str, feeds: dict) -> None:
    """The structure each kind needs, checked on the made-up values themselves."""
    if name in ("row_lengths", "row_splits", "value_rowids"):
        part = feeds[{"row_lengths": "lengths", "row_splits": "splits", "value_rowids": "rowids"}[name]]
        count = len(feeds["values"])
        if name == "row_lengths":
            assert part.min() >= 0 and part.sum() == count
        elif name == "row_splits":
            assert part[0] == 0 and np.all(np.diff(part) >= 0) and part[-1] == count
        else:
            assert len(part) == count and np.all(np.diff(part) >= 0) and part.min() >= 0 and part.max() < 4
    elif name == "value_rowids_nrows":
        rows = feeds["rowids"]
        assert len(rows) == len(feeds["values"]) and 1 <= feeds["nrows"] <= 8
        assert np.all(np.diff(rows) >= 0) and rows.min() >= 0 and rows.max() < feeds["nrows"]
    elif name == "nested_row_lengths":  # the outer rows split the inner ones, which split the values
        assert feeds["outer"].sum() == len(feeds["inner"]) and feeds["inner"].sum() == len(feeds["values"])
    elif name in ("rowids_in_splits", "splits_in_rowids", "rowids_in_rowids"):
        _holds_nested(name, feeds)
    elif name == "ragged_gather":
        assert feeds["lengths"].sum() == len(feeds["values"]) and 0 <= feeds["rows"].min() <= feeds["rows"].max() < 4
    elif name == "sorted_segment_ids":
        assert feeds["ids"][0] == 0 and set(np.diff(feeds["ids"])) <= {0, 1}
    elif name == "sparse_segment_ids":
        assert feeds["ids"][0] == 0 and set(np.diff(feeds["ids"])) <= {0, 1}
        assert 0 <= feeds["rows"].min() <= feeds["rows"].max() < len(feeds["data"])
    elif name == "num_segments_input":
        assert 1 <= feeds["n"] <= 8 and feeds["ids"].min() >= 0 and feeds["ids"].max() < feeds["n"]
    elif name == "unsorted_segment_ids":
        assert feeds["ids"].min() >= 0 and feeds["ids"].max() < 3
    else:
        indices = feeds["indices"]
        shape = feeds["dense_shape"] if "dense_shape" in feeds else np.array([4, 6])
        assert np.all(indices >= 0) and np.all(indices < shape)
        flat = np.ravel_multi_index(tuple(indices.T), tuple(shape))
        assert np.all(np.diff(flat) > 0)  # distinct, in row-major order
        if name == "sparse_matmul":
            assert shape[1] == 6  # the dense operand's rows


def _holds_nested(name: str, feeds: dict) -> None:
    """Two ragged levels of different forms: each level's partition splits exactly the rows of the one
    below (value row ids imply theirs: last id + 1), the inner one the values."""
    def ids_ok(ids, rows):
        return np.all(np.diff(ids) >= 0) and (not len(ids) or (ids.min() >= 0 and ids.max() < rows))

    values = len(feeds["values"])
    if name == "rowids_in_splits":
        splits, ids = feeds["splits"], feeds["rowids"]
        assert len(ids) == values and ids_ok(ids, splits[-1]) and (not values or ids[-1] + 1 == splits[-1])
        assert splits[0] == 0 and np.all(np.diff(splits) >= 0)
    elif name == "splits_in_rowids":
        splits, ids = feeds["splits"], feeds["rowids"]
        assert splits[0] == 0 and np.all(np.diff(splits) >= 0) and splits[-1] == values
        assert len(ids) == len(splits) - 1 and ids_ok(ids, 3)
    else:
        outer, inner = feeds["outer"], feeds["inner"]
        assert len(inner) == values and ids_ok(inner, len(outer)) and (not values or inner[-1] + 1 == len(outer))
        assert ids_ok(outer, 3)


@pytest.mark.parametrize("name", sorted(BUILDS))
@pytest.mark.parametrize(("batch", "size"), [(1, 8), (2, 16), (5, 32)], ids=lambda v: str(v))
def test_made_up_structure_holds_and_tensorflow_runs_it(name, batch, size):
    from tfopt.verification.testing import random_inputs

    concrete, graph_def = _function(name)
    feeds = random_inputs(_specs(name), batch=batch, dynamic_dim=size, graph_def=graph_def, seed=size)
    _holds(name, feeds)
    concrete(*[feeds[n] for n, _, _ in BUILDS[name].inputs])  # TensorFlow's checks: asserts, sorted ids, bounds


# From a frozen .pb one kind of each family in the fast lane (splits, nested lengths, nested ids, segment ids,
# sparse indices); every kind converts from a SavedModel below, and the rest from a .pb in the slow lane.
FROZEN_FAST = {"row_splits", "nested_row_lengths", "rowids_in_rowids", "sorted_segment_ids", "sparse_matmul"}


@pytest.mark.parametrize("name", [n if n in FROZEN_FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(BUILDS)])
def test_structure_converts_and_verifies_from_a_frozen_pb(name, tmp_path):
    _converts(name, "frozen", tmp_path)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_structure_converts_and_verifies_from_a_savedmodel(name, tmp_path):  # its own asserts run too
    _converts(name, "savedmodel", tmp_path)


def _converts(name: str, fmt: str, tmp_path) -> None:
    targets = TARGETS.get(name, ALL)
    result = tfopt.convert(save(BUILDS[name], str(tmp_path))[fmt], str(tmp_path / "out"), to=list(targets),
                           quantize=["fp32"], report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(a.max_abs_err is not None and a.max_abs_err <= TOLERANCE for a in result.artifacts)


@pytest.mark.parametrize("branch", ["cond", "while"])
def test_a_partition_passed_into_a_function_body(branch):
    """The ragged op inside a ``tf.cond`` branch or a ``tf.while_loop`` body (a library function in the
    graph): the lengths are followed in as the body's argument."""
    import tensorflow as tf

    from tfopt.graph import TensorSpec
    from tfopt.verification.input_structure import input_needs
    from tfopt.verification.testing import random_inputs

    def dense(v, n):
        return tf.RaggedTensor.from_row_lengths(v, n).to_tensor(shape=[4, 5])

    def body(values, lengths, flag):
        if branch == "cond":
            return tf.cond(flag > 0, lambda: dense(values, lengths), lambda: tf.zeros([4, 5]))
        return tf.while_loop(lambda i, acc: i < 2, lambda i, acc: (i + 1, acc + dense(values, lengths)),
                             (tf.constant(0), tf.zeros([4, 5])))[1]

    signature = [tf.TensorSpec([None], tf.float32, name="values"), tf.TensorSpec([4], tf.int32, name="lengths"),
                 tf.TensorSpec([], tf.int32, name="flag")]
    concrete = tf.function(body, input_signature=signature).get_concrete_function()
    graph_def = concrete.graph.as_graph_def()
    need = input_needs(graph_def)["lengths"]
    assert need.kind == "row_lengths" and " in " in need.why  # found in the body
    specs = [*_specs("row_lengths"), TensorSpec("flag", "flag:0", "int32", ())]
    for size in (8, 32):
        feeds = random_inputs(specs, dynamic_dim=size, batch=3, graph_def=graph_def, seed=size)
        feeds["flag"] = np.int32(1)
        assert feeds["lengths"].sum() == len(feeds["values"])
        concrete(feeds["values"], feeds["lengths"], feeds["flag"])


def test_a_count_tfopt_cannot_follow_stops_before_any_converter(tmp_path):
    """Values reshaped from a 2-D input: their count is no input's dimension, so no made-up lengths can be
    known to add up to it; the conversion stops naming the input, the op and the way out."""
    import tensorflow as tf

    from tfopt.errors import MadeUpInputsError

    module = tf.Module()
    module.serve = tf.function(
        lambda x, n: {"out": tf.RaggedTensor.from_row_lengths(tf.reshape(x, [-1]), n).to_tensor(shape=[3, 4])},
        input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"), tf.TensorSpec([3], tf.int32, name="n")])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    with pytest.raises(MadeUpInputsError) as caught:
        tfopt.convert(str(tmp_path / "m"), str(tmp_path / "out"), to=["onnx"], quantize=["fp32"])
    message = str(caught.value)
    assert "'n'" in message and "RaggedTensorToTensor" in message and "--calibration" in message
    assert not (tmp_path / "out" / "model.fp32.onnx").exists()


def test_more_indices_than_a_constant_dense_shape_holds_name_the_shape_that_fits(tmp_path):
    """A ``[2, 2]`` dense shape has 4 positions: the realistic size's 64 distinct indices cannot exist,
    and the error says which ``--verify-shape`` does; given it, the conversion verifies."""
    from tests.verification.structure_builds import Build
    from tfopt.errors import MadeUpInputsError

    small = Build("small", (("indices", (None, 2), "int64"), ("values", (None,), "float32")),
                  lambda tf, i, v, w: tf.sparse.to_dense(tf.SparseTensor(i, v * w, [2, 2])))
    path = save(small, str(tmp_path))["frozen"]
    with pytest.raises(MadeUpInputsError, match=r"'indices'.*SparseToDense.*at most 4 rows.*--calibration"):
        tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], quantize=["fp32"], report_runs=1)
    result = tfopt.convert(path, str(tmp_path / "fits"), to=["onnx"], quantize=["fp32"], report_runs=1,
                           verify_shape={"indices": [3, 2], "values": [3]})
    assert [a.format for a in result.artifacts] == ["onnx"] and result.artifacts[0].max_abs_err <= TOLERANCE
