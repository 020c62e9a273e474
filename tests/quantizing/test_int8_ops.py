"""What each runtime executes for an int8 artifact: the layers running int8 kernels, whether each
layer's activation runs inside its kernel or as a separate op, and float islands between int8 layers.

The models are chains whose execution order is their layer order in every runtime, so layer ``i``
of a count is layer ``i`` of :data:`CHAIN`. Assertions hold on any x86-64 CPU: TFLite's converter and
ONNX Runtime's graph rewrites do not depend on the CPU; OpenVINO's CPU plugin may fuse differently,
so for it only the class is checked (an activation is fused or separate, never missing).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tfopt.quantizing.int8_fusion import KernelOp, analyze
from tfopt.quantizing.int8_ops import count_quantized_ops

TARGETS = ["tflite", "onnx", "openvino"]
# (layer, what follows it) in execution order; "min" is ReLU then a per-channel Minimum, which no
# runtime fuses into a conv (TFLite has no such fused activation; ONNX Runtime's ClipQuantFusion
# takes a scalar Clip only; OpenVINO's CPU plugin fuses activations and scale-shifts, not Minimum).
CHAIN = [("conv", "relu"), ("depthwise", "relu6"), ("conv", None), ("conv", "min"), ("conv", "relu6"),
         ("dense", "relu"), ("dense", None)]
# what a layer with a fusable activation reports, per runtime
FUSABLE = {"tflite": {"fused"}, "onnx": {"fused"}, "openvino": {"fused", "separate"}}


def _chain_model(path: str, size: int, width: int) -> None:
    """:data:`CHAIN` as a Keras model on ``size x size x 3`` images with ``width`` channels, as a SavedModel."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(width)
    bound = np.linspace(0.5, 2.0, width).astype(np.float32)  # a different bound per channel
    layers = {"conv": lambda k: keras.layers.Conv2D(width, k, padding="same"),
              "depthwise": lambda k: keras.layers.DepthwiseConv2D(k, padding="same")}
    after = {"relu": keras.layers.ReLU, "relu6": lambda: keras.layers.ReLU(6.0), None: lambda: (lambda h: h),
             "min": lambda: keras.layers.Lambda(lambda h: tf.minimum(tf.nn.relu(h), bound))}
    inputs = keras.Input((size, size, 3), name="images")
    h = inputs
    for i, (kind, activation) in enumerate(CHAIN):
        if kind == "dense":
            if len(h.shape) == 4:
                h = keras.layers.GlobalAveragePooling2D()(h)
            units = width if i < len(CHAIN) - 1 else 4
            h = after[activation]()(keras.layers.Dense(units)(h))
        else:
            h = after[activation]()(keras.layers.BatchNormalization()(layers[kind](3 if kind == "depthwise" or i % 2 == 0 else 1)(h)))
    keras.Model(inputs, h).export(path, verbose=False)


# The second width in the slow lane: the same invariants (counts, fused activations, the engine's fast paths
# against native's) at 16 channels; this file runs in all three lanes of .ci/run.
@pytest.fixture(scope="module", params=[(10, 8), pytest.param((7, 16), marks=pytest.mark.slow)], ids=["10px-8ch", "7px-16ch"])
def chain(request, tmp_path_factory):
    """The chain as a SavedModel and its calibration data: the folder holding ``sm`` and ``calib.npz``."""
    size, width = request.param
    root = tmp_path_factory.mktemp(f"chain{size}x{width}")
    _chain_model(str(root / "sm"), size, width)
    rng = np.random.default_rng(size)
    np.savez(root / "calib.npz", images=rng.normal(size=(32, size, size, 3)).astype(np.float32))
    return root


def _convert(root, quantizer):
    import tfopt

    out = str(root / f"out-{quantizer}")
    result = tfopt.convert(str(root / "sm"), out, to=TARGETS, quantize=["int8"], calibration=str(root / "calib.npz"),
                           quantizer=quantizer, report_runs=1)  # verified against the original (int8 tolerances)
    return result, out


@pytest.fixture(scope="module")
def native(chain):
    """The chain quantized by each converter's own quantizer, verified and reported: (result, outdir)."""
    return _convert(chain, "native")


@pytest.fixture(scope="module")
def engine(chain):
    """The chain as ``tfopt convert --quantize int8`` writes it (the engine's default recipe): (result, outdir)."""
    return _convert(chain, "tfopt")


def _counts(native, target):
    result, out = native
    artifact = next(a for a in result.artifacts if a.format == target)
    return count_quantized_ops(target, os.path.join(out, artifact.path))


@pytest.mark.parametrize("target", TARGETS)
def test_counts_are_consistent_with_the_layers(native, target):
    counts = _counts(native, target)
    layers = counts["layers"]
    assert counts["int8"] + counts["float"] == len(layers) == len(CHAIN), layers
    assert counts["int8"] == len(CHAIN), layers
    with_activation = sum(activation is not None for _, activation in CHAIN)
    assert counts["fused"] + counts["unfused"] <= with_activation, layers
    assert counts["fused"] == sum(layer["activation"] == "fused" for layer in layers)
    assert counts["float_islands"] == len(counts["islands"]) >= 0
    for layer, (_, activation) in zip(layers, CHAIN, strict=True):
        if activation is None:  # a linear layer's output is two-sided: nothing clamps it
            assert layer["activation"] is None, layer


@pytest.mark.parametrize("target", TARGETS)
def test_fusable_activations_run_in_the_layers_kernel(native, target):
    """conv/depthwise/dense + ReLU/ReLU6: TFLite fuses them into the op (fused_activation_function),
    ONNX Runtime into QLinearConv/QLinearMatMul's requantization (Relu/Clip removed before the
    QuantizeLinear); OpenVINO reports each as fused or separate, never as missing."""
    layers = _counts(native, target)["layers"]
    for layer, (_, activation) in zip(layers, CHAIN, strict=True):
        if activation in ("relu", "relu6"):
            assert layer["activation"] in FUSABLE[target], layer


@pytest.mark.parametrize("target", TARGETS)
def test_a_per_channel_minimum_after_a_conv_runs_separately(native, target):
    counts = _counts(native, target)
    index = next(i for i, (_, activation) in enumerate(CHAIN) if activation == "min")
    assert counts["layers"][index]["activation"] == "separate", counts["layers"]
    assert counts["unfused"] >= 1
    if target == "tflite":  # an int8 MINIMUM: a kernel more, no float
        assert counts["int8_elementwise"] >= 1 and counts["float_islands"] == 0, counts
    if target == "onnx":  # DequantizeLinear -> Min -> QuantizeLinear between two QLinearConvs
        assert counts["float_islands"] >= 1 and any("Min " in op for island in counts["islands"] for op in island)


@pytest.mark.parametrize("target", TARGETS)
def test_the_engines_default_int8_keeps_every_fast_path_the_native_int8_has(native, engine, target):
    """What makes int8 fast, per runtime: every layer an int8 kernel, each ReLU/ReLU6 fused where the
    runtime fuses it, and no more separate activations, int8 elementwise kernels, float islands or
    per-channel offsets than the converter's own int8 of the same model (an engine transform that
    broke a fusion, as equalization through ReLU6 once did, or left a Dequantize -> float ->
    Quantize, fails here; so does a bias the engine gives a layer the float model has none on, which
    OpenVINO's CPU plugin runs as a per-channel add in the layer's kernel: the chain's layers have
    zero biases, Keras' initial ones)."""
    counts, reference = _counts(engine, target), _counts(native, target)
    layers = counts["layers"]
    assert (counts["int8"], counts["float"]) == (len(CHAIN), 0), layers
    for layer, (_, activation) in zip(layers, CHAIN, strict=True):
        if activation in ("relu", "relu6"):
            assert layer["activation"] in FUSABLE[target], layer
    for key in ("unfused", "int8_elementwise", "float_islands", "offsets"):
        assert counts[key] <= reference[key], (key, counts, reference)
    with_offset = [i for i, layer in enumerate(layers) if layer["offset"]]
    assert with_offset == [i for i, layer in enumerate(reference["layers"]) if layer["offset"]], (layers, reference)


def test_the_report_shows_fused_activations_per_int8_artifact(native, capsys):
    from tfopt.report.console import print_int8
    from tfopt.report.table import HEADER, rows

    result, out = native
    report = result.report
    column = HEADER.index("int8 kernels")
    for row, cells in zip(report["artifacts"], rows(report), strict=True):
        ops = row["int8_ops"]
        assert ops["int8"] == len(CHAIN) and {"fused", "unfused", "float_islands"} <= set(ops)
        assert cells[column].startswith(f"int8 {len(CHAIN)}/{len(CHAIN)}, act fused {ops['fused']}/"
                                        f"{ops['fused'] + ops['unfused']}"), cells
    with open(os.path.join(out, "report.md")) as f:
        assert "| int8 kernels |" in f.read()
    print_int8(result)
    printed = capsys.readouterr().out
    assert printed.count("act fused") == len(TARGETS) and "separate activation after" in printed


def _op(name, role="other", *, inputs=(), float_=False, precision=None, fused=False):
    return KernelOp(name, name.rstrip("0123456789"), tuple(inputs), (name,), role, float_, precision, fused)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_a_float_island_is_the_float_ops_between_two_int8_layers(length):
    """Dequantize -> ``length`` float ops -> Quantize between int8 layers is one island; float ops
    after the last int8 layer (the output's) are none; a separate activation after a fused layer
    wins over the fused flag."""
    ops = [_op("conv0", "layer", inputs=["x"], precision="int8", fused=True), _op("dq0", "dequantize", inputs=["conv0"])]
    for i in range(length):  # a chain: each reads the one before
        ops.append(_op(f"min{i}", "activation", inputs=[ops[-1].name], float_=True))
    ops += [_op("q0", "quantize", inputs=[ops[-1].name]),
            _op("conv1", "layer", inputs=["q0"], precision="int8", fused=True),
            _op("dq1", "dequantize", inputs=["conv1"]), _op("softmax0", inputs=["dq1"], float_=True),
            _op("dead0", inputs=["dq0"], float_=True)]  # float, after an int8 layer, but reaching none
    layers, summary = analyze(ops)
    assert [layer["activation"] for layer in layers] == ["separate", "fused"]
    assert (summary["fused"], summary["unfused"], summary["float_islands"]) == (1, 1, 1)
    assert summary["islands"] == [[f"min min{i}" for i in range(length)]] and summary["int8_elementwise"] == 0


@pytest.mark.parametrize("layer_clamps", [True, False], ids=["fused-layer", "plain-layer"])
def test_a_quantize_clamping_at_zero_is_a_separate_relu_only_after_a_layer_that_does_not_clamp(layer_clamps):
    """A float conv -> QuantizeLinear(zero point at the type's minimum): the ReLU runs in the
    quantize, separately; after a layer whose kernel clamps already, the quantize adds nothing."""
    ops = [_op("conv0", "layer", inputs=["x"], precision="float", fused=layer_clamps),
           _op("q0", "quantize", inputs=["conv0"], fused=True),
           _op("conv1", "layer", inputs=["q0"], precision="int8")]
    layers, summary = analyze(ops)
    assert layers[0]["activation"] == ("fused" if layer_clamps else "separate") and layers[1]["activation"] is None
    assert summary["float_islands"] == 0  # a float layer is counted as one, not as an island


def test_an_int8_artifact_with_no_int8_layer_gets_a_note(capsys):
    """Every layer left float (inside TF1 loops, or kept float): the summary says the file runs no int8
    kernel, instead of only a count of zero; a file with int8 layers gets no such note."""
    from types import SimpleNamespace

    from tfopt.report.console import print_int8

    def artifact(format, int8):
        layers = [{"name": f"l{i}", "activation": None} for i in range(2)]
        return SimpleNamespace(format=format, precision="int8", quantizer="tfopt",
                               int8_ops={"int8": int8, "float": 2 - int8, "layers": layers})

    print_int8(SimpleNamespace(artifacts=[artifact("onnx", 0), artifact("openvino", 2)], int8={"recipe": {}}))
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and notes[0].startswith("note     onnx int8: no layer runs an int8 kernel"), notes


@pytest.mark.parametrize(("per_channel", "bias"), [(False, False), (True, False), (False, True), (True, True)])
def test_an_openvino_dense_has_an_offset_exactly_when_it_adds_a_bias(tmp_path, per_channel, bias):
    """An int8 MatMul as the OpenVINO IRs of both quantizers have it (FakeQuantize'd u8 input, i8 weights
    times a per-tensor or per-channel scale, then an optional bias Add): the CPU plugin's FullyConnected
    reads its weights' scale on a port after the bias's, and a per-tensor scale (one float) was counted
    as a bias, so the engine's int8 (per-tensor weights) showed an offset the native's had not."""
    import openvino as ov
    import openvino.opset13 as op

    rng = np.random.default_rng(6)
    c = lambda v: op.constant(np.asarray(v, np.float32))  # noqa: E731
    x = op.parameter([-1, 16], np.float32, name="x")
    scale = rng.uniform(0.01, 0.02, (10, 1) if per_channel else (1, 1))
    weights = op.multiply(op.convert(op.constant(rng.integers(-127, 128, (10, 16)).astype(np.int8)), "f32"), c(scale))
    y = op.matmul(op.fake_quantize(x, c(0), c(4), c(0), c(4), 256), weights, False, True)
    if bias:
        y = op.add(y, c(rng.normal(0, 1, (1, 10))))
    path = str(tmp_path / "dense.xml")
    ov.save_model(ov.Model([y], [x]), path)
    (layer,) = count_quantized_ops("openvino", path)["layers"]
    assert layer["precision"] == "int8" and layer["offset"] is bias, layer
