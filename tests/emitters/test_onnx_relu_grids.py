"""A ReLU/ReLU6 output quantized on a concatenation's shared grid gets its own zero point at 0.

Hand-written QDQ graphs of the form tf2onnx writes from the engine's fake quants (uint8, per
tensor): the rewrite fires where the concatenation requantizes to the same grid, and the outputs
are the same numbers, bit for bit, in ONNX Runtime with its optimizations off and on; it leaves
every other form unchanged. The generated Inception-like block that ONNX Runtime now runs as int8
layers end to end is in ``test_onnx_int8_kernels.py`` (``concat_block``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tfopt.emitters.onnx_relu_grids import own_relu_grids

SCALE, ZERO = 0.03, 120  # a shared range [-3.6, 4.05]: a ReLU6 layer's top 6 is above it
SHAPE = [2, 3, 4, 4]


def _graph(*, act="Relu", clip=(0.0, 6.0), zero=ZERO, concat_zero=ZERO, extra_reader=False, pool=False):
    inits = [numpy_helper.from_array(np.float32(SCALE), "s"), numpy_helper.from_array(np.uint8(zero), "z"),
             numpy_helper.from_array(np.uint8(concat_zero), "zc"),
             numpy_helper.from_array(np.float32(clip[0]), "lo"), numpy_helper.from_array(np.float32(clip[1]), "hi")]
    nodes = [helper.make_node("Relu", ["a"], ["r"], name="act") if act == "Relu"
             else helper.make_node("Clip", ["a", "lo", "hi"], ["r"], name="act"),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"], name="q_relu"),
             helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["rd"], name="dq_relu"),
             helper.make_node("QuantizeLinear", ["b", "s", "z"], ["bq"], name="q_linear"),
             helper.make_node("DequantizeLinear", ["bq", "s", "z"], ["bd"], name="dq_linear"),
             helper.make_node("MaxPool", ["rd"], ["rp"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
             if pool else helper.make_node("Identity", ["rd"], ["rp"], name="pool"),
             helper.make_node("Concat", ["rp", "bd"], ["c"], name="concat", axis=1),
             helper.make_node("QuantizeLinear", ["c", "s", "zc"], ["cq"], name="q_concat"),
             helper.make_node("DequantizeLinear", ["cq", "s", "zc"], ["out"], name="dq_concat")]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 6, 4, 4])]
    if extra_reader:  # another op reads the ReLU's quantized output
        nodes.append(helper.make_node("Neg", ["rd"], ["other"], name="other"))
        outputs.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, [2, 6, 4, 4]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, SHAPE) for n in "ab"],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {n: rng.uniform(-8, 8, SHAPE).astype(np.float32) for n in "ab"}
    feed["a"][0, 0, 0, :2] = [SCALE * 7.5, SCALE * 8.5]  # ties: the zero point's shift keeps their rounding
    return session.run(None, feed)


@pytest.mark.parametrize("form", [{}, {"pool": True}, {"act": "Clip"}, {"act": "Clip", "clip": (0.0, 4.05)}],
                         ids=["relu", "relu-maxpool", "relu6-above-the-shared-top", "clip-at-the-shared-top"])
def test_a_relu_before_a_concatenation_gets_zero_point_0_and_the_same_numbers(form):
    model = _graph(**form)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    assert own_relu_grids(model.graph) == 1
    onnx.checker.check_model(model, full_check=True)
    nodes = {n.name: n for n in model.graph.node}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert nodes["act"].op_type == "Relu" and list(nodes["act"].input) == ["a"]
    for name in ("q_relu", "dq_relu"):
        assert inits[nodes[name].input[1]] == np.float32(SCALE) and inits[nodes[name].input[2]] == 0
    assert inits[nodes["q_linear"].input[2]] == ZERO  # the other input keeps the shared grid
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
        np.testing.assert_array_equal(_run(model, level)[0], _run(before, level)[0])


@pytest.mark.parametrize("form", [
    {"extra_reader": True},                 # another reader would see the top clamp move
    {"act": "Clip", "clip": (0.0, 3.0)},    # a clip below the shared top: rounding twice
    {"act": "Clip", "clip": (-1.0, 1.0)},   # not a clamp at 0
    {"concat_zero": ZERO + 1},              # the concatenation requantizes to another grid
    {"zero": 0, "concat_zero": 0},          # clamps at 0 already
], ids=["other-reader", "clip-below-top", "clip-not-at-0", "other-grid", "zero-point-0"])
def test_other_forms_are_left_alone(form):
    model = _graph(**form)
    before = model.SerializeToString()
    assert own_relu_grids(model.graph) == 0
    assert model.SerializeToString() == before
