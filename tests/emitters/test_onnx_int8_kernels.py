"""The engine's int8 ONNX runs ONNX Runtime's fast int8 kernels, layer by layer, and the engine's numbers.

Generated conv / depthwise / dense stacks (ReLU, ReLU6, none, a residual Add, average pooling, a
flatten into dense layers) at several channel counts are quantized by tfopt's engine as the ONNX
target gets them (``mse``, 7-bit weights), emitted, and read back through ONNX Runtime's own
optimized model (``ORT_ENABLE_EXTENDED``, where its QDQ fusions happen). Invariants that hold on
any x86-64 CPU (with or without VNNI; nothing about latencies or which kernel variant runs):

- every compute layer of the TF graph is an int8 kernel (``QLinearConv``/``QLinearMatMul``/``QGemm``);
- no DequantizeLinear -> float op(s) -> QuantizeLinear island is left between int8 layers;
- every int8 layer reads an int8 weight with zero point 0, the form ONNX Runtime's symmetric
  kernels (``MlasConvSym``, the symmetric QGEMM) take;
- the outputs are the TF fake-quant graph's: 99% within one step of the output's int8 grid, none
  beyond two (ONNX Runtime and TensorFlow round a requantization tie differently);
- the file passes ONNX's full checker.

8-bit weights (beyond ±64 steps, where u8 x s8 pair sums saturate on CPUs without VNNI) keep the
uint8 grid and stay exact (:mod:`tfopt.emitters.onnx_weight_quant`).
"""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.helpers import graph_model
from tfopt.emitters.onnx import emit_onnx
from tfopt.quantizing.engine.quantize import Recipe, quantize_model
from tfopt.quantizing.int8_ops import ONNX_PRECISION, count_quantized_ops
from tfopt.runtimes.tensorflow import GraphRunner

TF_LAYERS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
INT8_KERNELS = ("QLinearConv", "QLinearMatMul", "QGemm")  # their weight is input 3, its zero point input 5
# outputs against the TF fake-quant graph, in steps of the output's int8 grid: ONNX Runtime rounds a
# requantization tie to even, TensorFlow's fake quant away from zero, so a layer's output may sit one
# step apart, which a residual Add can carry into two (measured, the same before and after the weight
# storage change: residual-24ch 2 steps on 0.6% of outputs, 98.1% exact)
WITHIN_ONE_STEP, MAX_STEPS = 0.99, 2.0
SHAPE = (8, 8, 3)


def _conv(t, x, k, c_out, name, act, *, depthwise=False, stride=1):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    c_in = int(x.shape[-1])
    if depthwise:
        w = rng.normal(0, 0.5, (k, k, c_in, 1)).astype(np.float32)
        y = t.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], "SAME", name=name)
        c_out = c_in
    else:
        w = rng.normal(0, (2 / (k * k * c_in)) ** 0.5, (k, k, c_in, c_out)).astype(np.float32)
        y = t.nn.conv2d(x, w, stride, "SAME", name=name)
    y = t.nn.bias_add(y, rng.normal(0, 0.1, c_out).astype(np.float32))
    return {"relu": t.nn.relu, "relu6": t.nn.relu6, "none": lambda v: v}[act](y)


def _dense(t, x, units, name, act):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    w = rng.normal(0, (2 / int(x.shape[-1])) ** 0.5, (int(x.shape[-1]), units)).astype(np.float32)
    y = t.nn.bias_add(t.matmul(x, w, name=name), rng.normal(0, 0.1, units).astype(np.float32))
    return {"relu": t.nn.relu, "relu6": t.nn.relu6, "none": lambda v: v}[act](y)


def _head(t, h):
    return t.identity(_dense(t, t.reduce_mean(h, [1, 2]), 5, "logits", "none"), name="out")


def conv_stack(t, c):
    h = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 3, c, "c1", "relu")
    h = _conv(t, h, 3, 2 * c, "c2", "relu6")
    return _head(t, _conv(t, h, 1, c, "c3", "none"))


def mobilenet_block(t, c):
    """conv-ReLU6, depthwise-ReLU6 (stride 2), a linear 1x1 projection, then average pooling."""
    h = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 3, c, "c1", "relu6")
    h = _conv(t, h, 3, c, "dw", "relu6", depthwise=True, stride=2)
    h = _conv(t, h, 1, 2 * c, "pw", "none")
    return _head(t, t.nn.avg_pool2d(h, 2, 2, "VALID"))


def residual(t, c):
    """x + conv(conv(x)), ReLU after the Add; the inverted-residual form: a linear Add of two branches."""
    x = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 3, c, "stem", "relu")
    r = _conv(t, _conv(t, x, 1, 2 * c, "expand", "relu6"), 3, 2 * c, "dw", "relu6", depthwise=True)
    h = t.nn.relu(x + _conv(t, r, 1, c, "project", "none"))
    h = h + _conv(t, h, 3, c, "second", "none")
    return _head(t, h)


def dense_stack(t, c):
    h = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 3, c, "c1", "relu")
    h = t.reshape(t.nn.max_pool2d(h, 2, 2, "VALID"), [-1, 16 * c])
    h = _dense(t, _dense(t, h, 4 * c, "d1", "relu"), 2 * c, "d2", "relu6")
    return t.identity(_dense(t, h, 5, "logits", "none"), name="out")


def concat_block(t, c):
    """ReLU (max-pooled) and ReLU6 branches concatenated with a linear one (Inception-like: the shared
    range goes below 0), a ReLU layer added to a linear one, then dense ReLU and linear layers
    concatenated."""
    x = _conv(t, t.compat.v1.placeholder(t.float32, (None, *SHAPE), name="x"), 3, c, "stem", "relu")
    relu = t.nn.max_pool2d(_conv(t, x, 1, c, "b1", "relu"), 3, 1, "SAME")
    relu6 = _conv(t, _conv(t, x, 1, c, "b2a", "relu"), 3, c, "b2b", "relu6")
    h = t.concat([relu, relu6, _conv(t, x, 1, c, "linear", "none")], -1)
    h = _conv(t, h, 1, c, "mix", "relu")
    h = _conv(t, h, 3, c, "res", "relu") + _conv(t, h, 1, c, "skip", "none")
    g = t.reduce_mean(h, [1, 2])
    g = t.concat([_dense(t, g, 2 * c, "d_relu", "relu"), _dense(t, g, c, "d_linear", "none")], -1)
    return t.identity(_dense(t, g, 5, "logits", "none"), name="out")


ARCHS = {"conv_stack": conv_stack, "mobilenet_block": mobilenet_block, "residual": residual, "dense_stack": dense_stack,
         "concat_block": concat_block}
# each architecture at one channel count (a conversion costs a tf2onnx child process); more in the slow run
CASES = [("conv_stack", 4), ("mobilenet_block", 16), ("residual", 24), ("dense_stack", 8), ("concat_block", 16),
         *(pytest.param(arch, c, marks=pytest.mark.slow) for arch, c in [("conv_stack", 24), ("mobilenet_block", 4),
                                                                           ("residual", 8), ("dense_stack", 16)])]


def _engine_onnx(arch, channels, tmp_path, weight_bits=7):
    model = graph_model(lambda t: ARCHS[arch](t, channels), {"x": (None, *SHAPE)}, ["out"])
    samples = {"x": np.random.default_rng(1).uniform(-1, 1, (64, *SHAPE)).astype(np.float32)}
    quantized, _ = quantize_model(model, samples, Recipe("mse", weight_bits=weight_bits))
    path = emit_onnx(quantized, str(tmp_path / f"{arch}{channels}.onnx"))
    layers = sum(n.op in TF_LAYERS for n in model.graph_def.node)
    return quantized, path, layers


def _optimized(path, tmp_path):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return onnx.load(options.optimized_model_filepath).graph


def _float_islands(graph):
    """``(DequantizeLinear, QuantizeLinear)`` name pairs joined by a path of float ops only."""
    readers = defaultdict(list)
    for node in graph.node:
        for ref in node.input:
            readers[ref].append(node)
    islands = []
    for dq in (n for n in graph.node if n.op_type == "DequantizeLinear"):
        frontier, seen = list(dq.output), set()
        while frontier:
            for node in readers[frontier.pop()]:
                if node.op_type == "QuantizeLinear":
                    islands.append((dq.name, node.name))
                elif node.name not in seen:
                    seen.add(node.name)
                    frontier.extend(node.output)
    return islands


def _output_step(path):
    graph = onnx.load(path).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    last = next(n for n in graph.node if n.output[0] == graph.output[0].name)
    assert last.op_type == "DequantizeLinear", last.op_type  # the engine quantizes the model's output
    return float(inits[last.input[1]])


def _assert_the_engines_numbers(quantized, path):
    x = np.random.default_rng(2).uniform(-1, 1, (32, *SHAPE)).astype(np.float32)
    expected = GraphRunner(quantized)({"x": x})["out"]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    steps = np.abs(got - expected) / _output_step(path)
    assert np.mean(steps <= 1.001) >= WITHIN_ONE_STEP and steps.max() <= MAX_STEPS + 1e-3, np.sort(steps.ravel())[-5:]


@pytest.mark.parametrize(("arch", "channels"), CASES)
def test_every_engine_layer_is_a_fast_int8_kernel_with_the_engines_numbers(arch, channels, tmp_path):
    quantized, path, layers = _engine_onnx(arch, channels, tmp_path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    counts = count_quantized_ops("onnx", path)
    assert (counts["int8"], counts["float"]) == (layers, 0), counts["layers"]
    graph = _optimized(path, tmp_path)
    assert [n.name for n in graph.node if ONNX_PRECISION.get(n.op_type) == "float"] == []  # no (Fused)Conv/Gemm
    assert _float_islands(graph) == []
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in (n for n in graph.node if n.op_type in INT8_KERNELS):
        weight, zero = inits[node.input[3]], inits[node.input[5]]
        assert weight.dtype == np.int8 and not zero.any(), (node.name, weight.dtype, zero)
    _assert_the_engines_numbers(quantized, path)


@pytest.mark.parametrize("arch", ["residual", pytest.param("conv_stack", marks=pytest.mark.slow)])
def test_8bit_weights_keep_the_uint8_grid_and_the_engines_numbers(arch, tmp_path):
    """Weights beyond ±64 steps would saturate u8 x s8 pair sums on CPUs without VNNI: they stay
    on the uint8 grid (zero point 128), and the outputs are still the engine's."""
    quantized, path, layers = _engine_onnx(arch, 16, tmp_path, weight_bits=8)
    counts = count_quantized_ops("onnx", path)
    assert (counts["int8"], counts["float"]) == (layers, 0), counts["layers"]
    graph = onnx.load(path).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    weights = [(inits[n.input[0]], inits[n.input[2]]) for n in graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert len(weights) == layers
    assert all(w.dtype == np.uint8 and np.all(z == 128) for w, z in weights)
    _assert_the_engines_numbers(quantized, path)


def test_the_onnx_target_gets_weights_its_fast_kernels_take(tmp_path):
    """``tfopt convert --quantize int8`` (the engine): the ONNX artifact's weights are int8 with zero
    point 0 (7-bit: exact on every CPU), every layer runs int8, and the artifact verifies."""
    import tfopt
    from tests.helpers import graph_pb

    pb = graph_pb(tmp_path / "m.pb", lambda t: mobilenet_block(t, 8))
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).uniform(-1, 1, (64, *SHAPE)).astype(np.float32))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], quantize=["int8"], outputs=["out"],
                           calibration=str(tmp_path / "calib.npz"), report_runs=1)
    (artifact,) = result.artifacts
    assert artifact.quantizer == "tfopt" and artifact.int8_ops["float"] == 0 and artifact.int8_ops["int8"] == 4
    graph = onnx.load(str(tmp_path / "out" / artifact.path)).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    weights = [(inits[n.input[0]], inits[n.input[2]]) for n in graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert len(weights) == 4
    assert all(w.dtype == np.int8 and not z.any() and np.abs(w.astype(int)).max() <= 63 for w, z in weights)
