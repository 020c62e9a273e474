"""An artifact that answers a data-sized output (non-max suppression's selected boxes) at its padded
maximum, where TensorFlow answers only the rows selected: the error names the op and the ways out
(found by the op sweep: TFLite's non-max suppression over ``non_max_suppression`` and
``non_max_suppression_with_scores``), instead of a bare "shape (5, 4) != (1, 4)".

Generated frozen graphs: NMS flavour x max_output_size.
"""

from __future__ import annotations

import pytest

import tfopt
from tfopt._tf import tf
from tfopt.errors import VerificationError
from tfopt.verification.data_sized import padded_output_hint

NMS = {
    "v3": lambda t, b, s, k: t.image.non_max_suppression(b, s, k, iou_threshold=0.5),
    "v5": lambda t, b, s, k: t.image.non_max_suppression_with_scores(b, s, k, iou_threshold=0.5)[0],
}


def _frozen(path, flavour, k):
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        boxes = t.compat.v1.placeholder(t.float32, [None, 4], name="boxes")
        scores = t.compat.v1.placeholder(t.float32, [None], name="scores")
        corners = t.concat([t.minimum(boxes[:, :2], boxes[:, 2:]), t.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        t.identity(t.gather(corners, NMS[flavour](t, corners, scores, k)), name="kept")
    with open(path, "wb") as f:
        f.write(t.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), ["kept"]).SerializeToString())
    return graph.as_graph_def()


@pytest.mark.parametrize("k", [3, 7])
@pytest.mark.parametrize("flavour", list(NMS))
def test_padded_nms_output_names_the_op_and_the_way_out(tmp_path, flavour, k):
    path = str(tmp_path / "model.pb")
    _frozen(path, flavour, k)
    with pytest.raises(VerificationError) as info:
        tfopt.convert(path, str(tmp_path / "out"), to=["tflite"], report_runs=1)
    message = str(info.value)
    assert "NonMaxSuppressionV" in message and "pad_to_max_output_size=True" in message
    assert "leave tflite out of --to" in message


def test_no_hint_where_the_shape_is_not_longer_or_no_op_sizes_by_data(tmp_path):
    graph_def = _frozen(str(tmp_path / "m.pb"), "v3", 3)
    assert padded_output_hint(graph_def, "shape (5, 4) != (1, 4)", "x")
    assert padded_output_hint(graph_def, "shape (1, 4) != (5, 4)", "x") == ""
    assert padded_output_hint(graph_def, "dtype int32 != int64", "x") == ""
    t = tf()
    plain = t.Graph()
    with plain.as_default():
        t.identity(t.compat.v1.placeholder(t.float32, [None], name="x"), name="y")
    assert padded_output_hint(plain.as_graph_def(), "shape (5, 4) != (1, 4)", "x") == ""
