"""Made-up indices of a ``GatherNd`` into a constant table (issue 24, the classes set 19 left open): the
index's last axis addresses the table's first k axes, each with its own size, so an integer drawn in
``[0, 8)`` fails in TensorFlow when any of them is below 8. Generated: ``tf.gather_nd(table, idx)``
with ``table`` a constant ``[3, 5, W]`` and ``idx [?, 2]`` (int32), saved as a SavedModel; each
component is made up below its own axis (``idx[:, 0]`` below 3, ``idx[:, 1]`` below 5: k is read by shape
inference at the made-up shapes; below the smallest axis, 3, where it cannot be), the model verifies, and
every target matches TensorFlow. A computed table: tests/verification/test_computed_index_bounds.py."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function

ATOL = 1e-5  # a gather and a float32 sum: exact up to summation order, any runtime
W = 4


def _gather_nd(path) -> str:
    from tfopt._tf import tf

    t = tf()
    table = t.constant(np.random.default_rng(0).normal(size=[3, 5, W]).astype(np.float32))

    def serve(x, idx):
        return {"y": t.reduce_sum(t.gather_nd(table, idx), axis=-1) + t.reduce_sum(x, axis=-1)}

    spec = t.TensorSpec
    return saved_function(path, serve, [spec([None, W], t.float32, name="x"), spec([None, 2], t.int32, name="idx")])


def test_gather_nd_indices_stay_inside_every_addressed_axis_and_verify(tmp_path):
    from tfopt.verification.computed_tables import indexed_tables, table_sizes
    from tfopt.verification.made_up_inputs import index_bounds

    model = _gather_nd(tmp_path / "gnd")
    frozen, report = tfopt.freeze(model)
    assert index_bounds(frozen.graph_def) == {"idx": 3}  # k unknown: the smallest addressed axis, valid whatever k is
    tables = indexed_tables(frozen.graph_def)
    assert table_sizes(frozen.graph_def, {"x": [9, W], "idx": [9, 2]}, tables) == {"idx": (3, 5)}  # k = 2: each its own
    assert table_sizes(frozen.graph_def, {"x": [9, W], "idx": [9, 2]}, {}) == {}
    idx = report.verified_at.feeds["idx"]
    assert idx.min() >= 0 and idx[:, 0].max() < 3 and idx[:, 1].max() < 5
    assert all(d.max_abs_err <= ATOL for d in report.verification)


@pytest.mark.slow  # the class's fast case is the freeze above; this one writes and verifies all three targets
def test_gather_nd_converts_to_every_target_within_the_bound(tmp_path):
    model = _gather_nd(tmp_path / "gnd")
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(model, str(tmp_path / "out"), to=targets, report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])
