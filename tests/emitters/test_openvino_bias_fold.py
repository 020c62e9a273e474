"""A quantized layer's bias moves into its output FakeQuantize's thresholds: OpenVINO's CPU plugin then
runs each int8 convolution with its requantization and no separate per-channel Multiply post-op.

Generated conv / depthwise stacks with a bias on every layer (ReLU, ReLU6, none, a residual Add)
are quantized by tfopt's engine and converted; checked on the converted model before and after
the fold, and on the plugin's compiled model at f32 inference precision. The invariants hold on any
x86-64 CPU (checked with ``ONEDNN_MAX_CPU_ISA=AVX2`` too): which layers the plugin fuses is decided
on the graph, not by the kernel variant.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.emitters.openvino_bias_fold import LAYERS, fold_biases_into_quantize
from tfopt.quantizing.engine.quantize import Recipe, quantize_model

SHAPE = (10, 10, 3)


def _conv(t, x, c_out, name, act, *, depthwise=False):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    c_in = int(x.shape[-1])
    if depthwise:
        y = t.nn.depthwise_conv2d(x, rng.normal(0, 0.5, (3, 3, c_in, 1)).astype(np.float32), [1, 1, 1, 1], "SAME")
        c_out = c_in
    else:
        y = t.nn.conv2d(x, rng.normal(0, (2 / (9 * c_in)) ** 0.5, (3, 3, c_in, c_out)).astype(np.float32), 1, "SAME")
    y = t.nn.bias_add(y, rng.normal(0, 0.3, c_out).astype(np.float32))
    return {"relu": t.nn.relu, "relu6": t.nn.relu6, "none": lambda v: v}[act](y)


def mobilenet_block(t):
    h = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 8, "c1", "relu6")
    h = _conv(t, h, 8, "dw", "relu6", depthwise=True)
    return t.identity(t.reduce_mean(_conv(t, h, 12, "pw", "none"), [1, 2]), name="out")


def residual(t):
    x = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 8, "stem", "relu")
    h = t.nn.relu(x + _conv(t, _conv(t, x, 8, "a", "relu"), 8, "b", "none"))
    return t.identity(t.reduce_mean(h, [1, 2]), name="out")


ARCHS = {"mobilenet_block": mobilenet_block, "residual": residual}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def converted(request, tmp_path_factory):
    """(the engine's graph as OpenVINO's frontend converts it; as tfopt's emitter does, folded; how
    many the fold finds in the first; samples)."""
    import openvino as ov

    from tfopt.emitters.openvino import convert_to_openvino

    model = graph_model(ARCHS[request.param], {"x": (None, *SHAPE)}, ["out"])
    samples = {"x": np.random.default_rng(1).uniform(-1, 1, (48, *SHAPE)).astype(np.float32)}
    quantized, _ = quantize_model(model, samples, Recipe("mse"))
    pb = tmp_path_factory.mktemp(request.param) / "q.pb"
    pb.write_bytes(quantized.graph_def.SerializeToString())
    before = ov.convert_model(str(pb))
    return before, convert_to_openvino(quantized), fold_biases_into_quantize(before.clone()), samples


def _biases_before_quantize(ov_model):
    """Adds of a layer and a constant read by a FakeQuantize only."""
    found = 0
    for add in (op for op in ov_model.get_ordered_ops() if op.get_type_name() == "Add"):
        kinds = {add.input_value(i).get_node().get_type_name() for i in (0, 1)}
        readers = [t.get_node().get_type_name() for t in add.output(0).get_target_inputs()]
        found += bool(kinds & LAYERS) and "Constant" in kinds and readers == ["FakeQuantize"]
    return found


def _compiled(ov_model):
    import openvino as ov

    return ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def test_every_layer_bias_before_a_quantize_is_folded(converted):
    before, after, folded, _ = converted
    assert folded == _biases_before_quantize(before) >= 3
    assert _biases_before_quantize(after) == 0


def test_the_folded_model_computes_what_the_unfolded_one_does(converted):
    """Exact in real arithmetic; float32 may move a value across a rounding tie: one output step at most."""
    before, after, _, samples = converted
    x = samples["x"]
    want, got = (np.asarray(_compiled(m)(x)[0]) for m in (before, after))
    step = np.abs(want).max() / 127  # the output's int8 grid is at most this fine
    assert np.abs(got - want).max() <= step, np.abs(got - want).max()
    assert np.mean(got == want) >= 0.99


def test_each_int8_convolution_runs_with_its_requantization_only(converted):
    """The plugin folds the weights' dequantization scale into the FakeQuantize once no bias sits
    between them: no int8 convolution keeps a Multiply as a separate post-op (before the fold, each did)."""
    before, after, _, _ = converted

    def multiplies(ov_model):
        rows = [(op.get_rt_info()["runtimePrecision"].astype(str), op.get_rt_info()["originalLayersNames"].astype(str))
                for op in _compiled(ov_model).get_runtime_model().get_ordered_ops()
                if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
        assert rows and all(precision in ("u8", "i8") for precision, _ in rows), rows
        return sum("Multiply" in names for _, names in rows)

    assert multiplies(before) >= 1
    assert multiplies(after) == 0


def test_a_bias_read_twice_or_a_sum_of_two_layers_is_left_alone():
    """The pattern's guards: an Add another op also reads, and an Add of two computed tensors."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([1, 4, 6, 6], np.float32, name="x")
    weights = ops.constant(np.random.default_rng(0).normal(size=(4, 4, 1, 1)).astype(np.float32))
    conv = ops.convolution(x, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    shared = ops.add(conv, ops.constant(np.ones((1, 4, 1, 1), np.float32)))
    summed = ops.add(ops.convolution(x, weights, [1, 1], [0, 0], [0, 0], [1, 1]), x)

    def quantize(v):
        return ops.fake_quantize(v, *(ops.constant(np.float32(b)) for b in (-4, 4, -4, 4)), 256)

    model = ov.Model([quantize(shared), ops.relu(shared), quantize(summed)], [x])
    assert fold_biases_into_quantize(model) == 0
    assert sum(op.get_type_name() == "Add" for op in model.get_ordered_ops()) == 2
