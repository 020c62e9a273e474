"""Outputs whose size depends on the values (detection post-processing: non-max suppression with a
score threshold; ``tf.where``/``boolean_mask`` over a threshold) can be empty at standard-normal made-up
inputs, and the size search cannot help (found by the op sweep on ``non_max_suppression`` over
``boxes [None, 4]``, ``scores [None]``): the made-up floats then take the value ladder of
:mod:`tfopt.verification.saturation` before tfopt gives up, and the record says which rung.

Generated frozen graphs: op x threshold; the chosen inputs give every output elements, and the rung is
recorded (never "standard normal" for inputs that are not standard normal).
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.verification.saturation import NORMAL
from tfopt.verification.verify import choose_inputs, reference_runner


def _nms(t, threshold):
    boxes = t.compat.v1.placeholder(t.float32, [None, 4], name="boxes")
    scores = t.compat.v1.placeholder(t.float32, [None], name="scores")
    corners = t.concat([t.minimum(boxes[:, :2], boxes[:, 2:]), t.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    keep = t.image.non_max_suppression(corners, scores, 5, iou_threshold=0.5, score_threshold=threshold)
    t.identity(t.gather(corners, keep), name="kept")


def _where(t, threshold):
    x = t.compat.v1.placeholder(t.float32, [None], name="x")
    t.identity(t.boolean_mask(x * 2.0, x > threshold), name="kept")


OPS = {"nms": _nms, "boolean_mask": _where}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("op", list(OPS))
def test_values_dependent_output_is_not_empty_on_the_chosen_inputs(tmp_path, op, threshold):
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        OPS[op](t, threshold)
    path = str(tmp_path / "model.pb")
    with open(path, "wb") as f:
        f.write(t.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), ["kept"]).SerializeToString())
    model = tfopt.load(path)
    # at batch 1 (the report's) standard normal leaves a row below any threshold > 0 half the time or more
    chosen = choose_inputs(reference_runner(model), model.inputs, batch=1, graph_def=model.graph_def)
    out = reference_runner(model)(chosen.feeds)["kept"]
    assert np.asarray(out).size > 0
    if chosen.values != NORMAL:  # said, with why standard normal did not do
        assert chosen.values in chosen.summary() and "kept" in chosen.summary()
