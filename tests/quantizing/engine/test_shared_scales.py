"""A concatenation's inputs and output share one int8 range, so TFLite's CONCATENATION converts."""

from __future__ import annotations

import numpy as np

from tests.helpers import graph_model
from tfopt.quantizing.engine.quantize import Recipe, quantize_model
from tfopt.quantizing.engine.shared_scales import share_concat_ranges


def _concat_net(t):
    """conv(a) -> relu, conv(b) -> relu -> maxpool(1x1), concat, then a 1x1 conv; the branches'
    ranges differ by 10x."""
    rng = np.random.default_rng(0)
    x = t.compat.v1.placeholder(t.float32, (None, 8, 8, 3), name="x")
    a = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"), name="a")
    b = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 10, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"), name="b")
    b = t.nn.max_pool2d(b, 1, 1, "SAME", name="pool")
    c = t.concat([a, b], axis=-1, name="cat")
    t.nn.conv2d(c, rng.normal(0, 1, (1, 1, 8, 2)).astype(np.float32), 1, "SAME", name="out")


def test_concat_inputs_and_output_share_the_union_through_scale_preserving_ops():
    model = graph_model(_concat_net, {"x": (None, 8, 8, 3)}, ["out"])
    ranges = {"x:0": (-1.0, 1.0), "a:0": (0.0, 2.0), "b:0": (0.0, 20.0), "cat:0": (0.0, 19.0), "out:0": (-5.0, 5.0)}
    shared = share_concat_ranges(model, ranges)
    assert shared["a:0"] == shared["b:0"] == shared["cat:0"] == (0.0, 20.0)  # b reached through the MaxPool
    assert shared["x:0"] == (-1.0, 1.0) and shared["out:0"] == (-5.0, 5.0)  # others untouched


def test_the_engines_concat_graph_converts_to_tflite_int8(tmp_path):
    from tfopt.emitters.tflite import emit_tflite
    from tfopt.quantizing.int8_ops import count_quantized_ops

    model = graph_model(_concat_net, {"x": (None, 8, 8, 3)}, ["out"])
    samples = {"x": np.random.default_rng(1).normal(0, 1, (32, 8, 8, 3)).astype(np.float32)}
    quantized, report = quantize_model(model, samples, Recipe.parse("minmax"))
    assert len({report.ranges[t] for t in ("a:0", "b:0", "cat:0") if t in report.ranges}) == 1
    path = emit_tflite(quantized, str(tmp_path / "m.tflite"), precision="int8", calibration=[samples],
                       quantization_aware=True)  # refused before: "violate the same scale constraint"
    assert count_quantized_ops("tflite", path)["float"] == 0
