"""Made-up indices whose bound the graph computes (issue 24, the classes sessions 17 and 18 left open):
a ``GatherNd`` into a table the model computes (each component of the index's last axis below its own
axis's size: ``pair[:, 0]`` below the atoms, ``pair[:, 1]`` below the hidden width; a constant table's:
tests/verification/test_gather_nd_ids.py), ``UnsortedSegmentSum`` ids whose ``num_segments`` is
``tf.shape(x)[0]``, ``tensor_scatter_nd_add`` / ``scatter_nd`` indices into a computed table or shape, a
``tf.gather`` along axis 1 of a constant table (also with ``batch_dims=1``) and one whose axis the graph
computes (``tf.rank(x) - 1``: below every axis of the table). Made up in ``[0, 8)``, or below a constant
table's first axis, each fails in TensorFlow at the made-up batch of 2 (``indices[1] = [4, 2] does not
index into param shape [2,6]``). Generated: one SavedModel of the six, one output each."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function

ATOL = 1e-5  # a float32 dense layer, gathers and sums of a few terms: exact up to summation order, any runtime
F, W = 5, 6  # atom features, hidden width


def _indexing_model(path) -> str:
    from tfopt._tf import tf

    t = tf()
    rng = np.random.default_rng(0)
    w_in = t.constant(rng.normal(size=[F, W]).astype(np.float32))
    columns = t.constant(rng.normal(size=[10, 3]).astype(np.float32))  # gathered along axis 1: 3, not 10
    rows = t.constant(rng.normal(size=[3, 2, 4]).astype(np.float32))  # batch_dims=1, along axis 1: 2, not 3

    def serve(x, pair, edges, seg, upd, sidx, col, bidx):
        h = t.nn.relu(t.matmul(x, w_in))  # [N, W]: computed, one row per atom
        return {"nd": t.gather_nd(h, pair),
               "segment": h + t.math.unsorted_segment_sum(edges, seg, t.shape(x)[0]),
               "scatter": t.tensor_scatter_nd_add(h, sidx, upd), "scatter_nd": t.scatter_nd(sidx, upd, t.shape(h)),
               "column": t.gather(columns, col, axis=1), "any_axis": t.gather(h, col, axis=t.rank(x) - 1),
               "per_row": t.gather(rows, bidx, axis=1, batch_dims=1)}

    spec = t.TensorSpec
    return saved_function(path, serve, [
        spec([None, F], t.float32, name="x"), spec([None, 2], t.int32, name="pair"),
        spec([None, W], t.float32, name="edges"), spec([None], t.int32, name="seg"),
        spec([None, W], t.float32, name="upd"), spec([None, 1], t.int32, name="sidx"),
        spec([None], t.int32, name="col"), spec([3, None], t.int32, name="bidx")])


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """The model frozen and verified on made-up inputs (before: "the original model fails on tfopt's random
    verification inputs for 'pair'")."""
    return tfopt.freeze(_indexing_model(tmp_path_factory.mktemp("indexing") / "model"))


def _inside(feeds: dict[str, np.ndarray]) -> None:
    atoms = feeds["x"].shape[0]
    assert feeds["pair"].min() >= 0 and feeds["pair"][:, 0].max() < atoms and feeds["pair"][:, 1].max() < W
    assert feeds["seg"].min() >= 0 and feeds["seg"].max() < atoms
    assert feeds["sidx"].min() >= 0 and feeds["sidx"].max() < atoms
    assert feeds["col"].min() >= 0 and feeds["col"].max() < min(3, atoms, W)
    assert feeds["bidx"].min() >= 0 and feeds["bidx"].max() < 2


def test_computed_bounds_keep_made_up_indices_inside_and_verify(frozen):
    frozen, report = frozen
    at = report.verified_at
    assert at.source == "made up"
    _inside(at.feeds)
    assert all(d.max_abs_err <= ATOL for d in report.verification)
    from tfopt.verification.computed_tables import indexed_tables, table_sizes
    from tfopt.verification.made_up_inputs import index_bounds
    from tfopt.verification.testing import random_inputs

    # the bounds follow the made-up shapes: 7 atoms; each GatherNd component its own axis
    shapes = {"x": [7, F], "pair": [4, 2], "edges": [3, W], "seg": [3], "upd": [2, W],
              "sidx": [2, 1], "col": [4], "bidx": [3, 5]}
    sizes = table_sizes(frozen.graph_def, shapes, indexed_tables(frozen.graph_def))
    assert sizes == {"pair": (7, W), "sidx": (7,), "col": 3, "bidx": 2}  # col, bidx: axis 1 of constant tables
    assert index_bounds(frozen.graph_def) == {"col": 3, "bidx": 2}  # the constant tables alone, without the shapes
    for seed in range(3):
        _inside(random_inputs(frozen.inputs, seed=seed, shapes=shapes, graph_def=frozen.graph_def))


def test_segment_ids_below_a_computed_count_are_fed_whole_with_what_sizes_it(frozen):
    """One row of ``x`` is one segment: the report cutting ``seg`` into rows beside it would put ids past it."""
    from tfopt.verification.input_structure import Ref, fed_whole, input_needs

    frozen, _ = frozen
    need = input_needs(frozen.graph_def, {"seg"})["seg"]
    assert (need.kind, need.bound, need.count) == ("bounded_ids", Ref("x", 0), Ref("edges", 0))
    assert fed_whole(frozen.graph_def, {"x": 0, "edges": 0, "seg": 0}) == {"x": None, "edges": None, "seg": None}


def _segments(path) -> str:
    from tfopt._tf import tf

    t = tf()

    def serve(x, edges, seg):
        return {"y": t.nn.relu(x[:, :1]) + t.math.unsorted_segment_sum(edges, seg, t.shape(x)[0])}

    spec = t.TensorSpec
    return saved_function(path, serve, [spec([None, F], t.float32, name="x"), spec([None, W], t.float32, name="edges"),
                                        spec([None], t.int32, name="seg")])


@pytest.mark.slow  # the fast case is the fed_whole check above; this one measures the report's samples too
def test_segments_over_computed_count_convert_and_report_per_sample(tmp_path):
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(_segments(tmp_path / "segments"), str(tmp_path / "out"), to=targets, report_runs=3)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])


@pytest.mark.slow  # the classes' fast case is the freeze above; this one writes and verifies all three targets
def test_the_indexing_model_converts_to_every_target_within_the_bounds(tmp_path):
    targets = ["tflite", "onnx", "openvino"]
    model = _indexing_model(tmp_path / "model")  # scatter_nd's repeated indices add up: tfopt.emitters.scatter_lower
    result = tfopt.convert(model, str(tmp_path / "out"), to=targets, report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])
