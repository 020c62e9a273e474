"""Streaming metrics found by their accumulator (tfopt.loaders.metric_state): ``tf.compat.v1.metrics.mean_iou``
(a ``total_confusion_matrix`` that each batch's confusion matrix is added to) and hand-written
confusion-matrix metrics at the top level, with ref or resource variables, several class counts and
thresholds. The metric's update and value ops are never candidates; the prediction they read is the head."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt._tf import tf
from tfopt.loaders.output_choice import choose_outputs
from tfopt.loaders.training_nodes import explain_outputs


def _graph(kind: str, classes: int, resource: bool, seed: int):
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    graph = t.Graph()
    with graph.as_default():
        x = v1.placeholder(t.float32, [None, 6, 6, 3], name="x")
        y = v1.placeholder(t.int32, [None, 6, 6], name="y")
        w = v1.get_variable("w", initializer=rng.standard_normal((3, 3, 3, classes)).astype(np.float32),
                            use_resource=resource)
        prob = t.nn.softmax(t.nn.conv2d(x, w, 1, "SAME"), name="prob")
        truth = t.reshape(y, [-1])
        pred = t.reshape(t.argmax(prob, -1), [-1]) if kind != "thresholds" else None
        if kind == "mean_iou":
            with v1.variable_scope("eval", use_resource=resource):
                v1.metrics.mean_iou(truth, pred, classes)
        elif kind == "thresholds":
            for threshold in (0.3, 0.6):
                hit = t.cast(t.reshape(prob[..., 0], [-1]) >= threshold, t.int32)
                v1.metrics.mean_iou(t.cast(t.equal(truth, 0), t.int32), hit, 2, name=f"iou_{threshold}")
        else:  # a hand-written streaming confusion matrix, no scope
            cm = v1.get_local_variable("total_confusion_matrix", [classes, classes], t.float64,
                                       initializer=v1.zeros_initializer(), use_resource=resource)
            increment = t.math.confusion_matrix(truth, pred, classes, dtype=t.float64)
            update = v1.assign_add(cm, increment) if not resource else cm.assign_add(increment)
            t.identity(update, name="update_op")
            diag = t.linalg.diag_part(t.identity(cm))
            t.reduce_mean(diag / (t.reduce_sum(cm, 0) + t.reduce_sum(cm, 1) - diag + 1e-9), name="miou")
    return graph.as_graph_def()


CASES = [(kind, classes, resource) for kind, classes in (("mean_iou", 3), ("thresholds", 2), ("top-level", 4),
                                                         ("top-level", 2)) for resource in (False, True)]


@pytest.mark.parametrize(("kind", "classes", "resource"), CASES,
                         ids=[f"{k}-{c}cls-{'resource' if r else 'ref'}" for k, c, r in CASES])
def test_a_confusion_matrix_metric_is_metric_plumbing(kind, classes, resource):
    graph_def = _graph(kind, classes, resource, classes)
    reasons = explain_outputs(graph_def)
    choice = choose_outputs(graph_def, reasons)
    assert choice.chosen == ["prob"], reasons
    assert all("metric" in why for why in reasons.values()), reasons  # prob, or its slices and decisions
    assert not [c for c in reasons if "confusion" in c or "iou" in c or c.startswith("update")], reasons
