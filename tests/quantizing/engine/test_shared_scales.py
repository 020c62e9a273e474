"""A concatenation's inputs and output share one int8 range, so TFLite's CONCATENATION converts; an op
whose TFLite kernel writes on its input's grid (AvgPool) joins that range with its input, so no requantize
comes between it and the concatenation (the converter's own int8 has none)."""

from __future__ import annotations

import numpy as np

from tests.helpers import graph_model
from tfopt.quantizing.engine.kernel_ranges import INPUT
from tfopt.quantizing.engine.quantize import Recipe, quantize_model
from tfopt.quantizing.engine.shared_scales import share_concat_ranges


def _concat_net(t, pooled: bool = False):
    """conv(a) -> relu, conv(b) -> relu -> maxpool(1x1), concat, then a 1x1 conv; the branches'
    ranges differ by 10x. ``pooled``: a 2x2 AvgPool after a and a 2x2 MaxPool after b instead, the
    pooled branches of an Inception- or DenseNet-style block."""
    rng = np.random.default_rng(2 if pooled else 0)
    x = t.compat.v1.placeholder(t.float32, (None, 8, 8, 3), name="x")
    a = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"), name="a")
    if pooled:
        a = t.nn.avg_pool2d(a, 2, 2, "VALID", name="avg")
    b = t.nn.relu(t.nn.conv2d(x, rng.normal(0, 10, (3, 3, 3, 4)).astype(np.float32), 1, "SAME"), name="b")
    b = t.nn.max_pool2d(b, 2, 2, "VALID", name="pool") if pooled else t.nn.max_pool2d(b, 1, 1, "SAME", name="pool")
    c = t.concat([a, b], axis=-1, name="cat")
    t.nn.conv2d(c, rng.normal(0, 1, (1, 1, 8, 2)).astype(np.float32), 1, "SAME", name="out")


def _pool_concat_net(t):
    _concat_net(t, pooled=True)


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


def test_an_input_grid_op_before_a_concat_joins_its_input_to_the_concat_range():
    model = graph_model(_pool_concat_net, {"x": (None, 8, 8, 3)}, ["out"])
    ranges = {"x:0": (-1.0, 1.0), "a:0": (0.0, 2.0), "avg:0": (0.0, 2.0), "b:0": (0.0, 20.0), "cat:0": (0.0, 19.0),
              "out:0": (-5.0, 5.0)}
    shared = share_concat_ranges(model, ranges, ["AvgPool"])
    assert shared["a:0"] == shared["avg:0"] == shared["b:0"] == shared["cat:0"] == (0.0, 20.0)
    assert shared["x:0"] == (-1.0, 1.0) and shared["out:0"] == (-5.0, 5.0)
    assert share_concat_ranges(model, ranges)["a:0"] == (0.0, 2.0)  # AvgPool is not scale-preserving elsewhere


def test_tflite_runs_no_requantize_between_an_avgpool_and_its_concat(tmp_path):
    """The engine's graph as TFLite gets it (AvgPool on its input's grid, the target table's entry): no
    int8 -> int8 QUANTIZE, and the int8 model computes the float one within 2 % of its output's span
    (mean absolute error; measured: 0.3 %)."""
    from dataclasses import replace

    from tests.helpers import engine_tflite

    model = graph_model(_pool_concat_net, {"x": (None, 8, 8, 3)}, ["out"])
    samples = {"x": np.random.default_rng(3).normal(0, 1, (32, 8, 8, 3)).astype(np.float32)}
    recipe = replace(Recipe.parse("minmax"), fixed_ranges=(("AvgPool", INPUT),))
    ops, got, want = engine_tflite(model, samples, recipe, str(tmp_path / "m.tflite"))
    assert ("QUANTIZE", "int8") not in ops, ops
    assert np.mean(np.abs(got - want)) <= 0.02 * np.ptp(want)
