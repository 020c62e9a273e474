"""Cross-layer equalization: it balances channel ranges, keeps the float output, helps per-tensor
int8 weights, and leaves alone what it must (fan-out, outputs, non-homogeneous activations)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt._tf import const_value
from tfopt.errors import OptionError
from tfopt.graph import TensorSpec, node_map
from tfopt.quantizing.engine.bias_correction import fake_quantize_weights
from tfopt.quantizing.engine.equalize import Equalize, equalize
from tfopt.runtimes.tensorflow import GraphRunner

SHAPE = (None, 8, 8, 3)


def _rng():
    return np.random.default_rng(7)


def _scales(rng, n):
    """Per-channel factors over three decades: what folding a BatchNorm with small γ leaves."""
    return 10 ** rng.uniform(-2, 1, n)


def _conv(t, x, w, name, padding="SAME"):
    return t.raw_ops.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1], padding=padding, name=name)


def _dw(t, x, w, name):
    return t.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME", name=name)


def _conv_relu_conv(t, rng, act="relu"):
    a = _scales(rng, 8)
    x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
    y = t.nn.bias_add(_conv(t, x, (rng.normal(0, 1, (3, 3, 3, 8)) * a).astype(np.float32), "c1"),
                      (rng.normal(0, 1, 8) * a).astype(np.float32))
    y = {"relu": t.nn.relu, "leaky": lambda v: t.nn.leaky_relu(v, 0.1), "none": lambda v: v,
         "tanh": t.nn.tanh, "relu-min4": lambda v: t.minimum(t.nn.relu(v), 4.0),
         "relu-min-per-channel": lambda v: t.minimum(t.nn.relu(v), rng.uniform(2, 6, 8).astype(np.float32))}[act](y)
    y = _conv(t, y, (rng.normal(0, 1, (3, 3, 8, 6)) / a.reshape(1, 1, 8, 1)).astype(np.float32), "c2")
    t.nn.bias_add(y, rng.normal(0, 1, 6).astype(np.float32), name="out")


def _mobilenet(t, rng, mult=1):
    """conv -> Relu6 -> depthwise -> Relu6 -> 1x1 conv, ranges unequal at both joints."""
    a, d = _scales(rng, 8), _scales(rng, 8 * mult)
    x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
    y = t.nn.relu6(t.nn.bias_add(_conv(t, x, (rng.normal(0, 1, (3, 3, 3, 8)) * a).astype(np.float32), "c1"),
                                 (rng.normal(0, 1, 8) * a).astype(np.float32)))
    wd = rng.normal(0, 1, (3, 3, 8, mult)) * d.reshape(8, mult) / a.reshape(8, 1)
    y = t.nn.relu6(t.nn.bias_add(_dw(t, y, wd.astype(np.float32), "dw"), (rng.normal(0, 1, 8 * mult) * d).astype(np.float32)))
    y = _conv(t, y, (rng.normal(0, 1, (1, 1, 8 * mult, 6)) / d.reshape(1, 1, -1, 1)).astype(np.float32), "c3")
    t.nn.bias_add(y, rng.normal(0, 1, 6).astype(np.float32), name="out")


def _dense(t, rng):
    a = _scales(rng, 12)
    x = t.compat.v1.placeholder(t.float32, (None, 16), name="x")
    y = t.nn.relu(t.nn.bias_add(t.matmul(x, (rng.normal(0, 1, (16, 12)) * a).astype(np.float32), name="d1"),
                                (rng.normal(0, 1, 12) * a).astype(np.float32)))
    y = t.matmul(y, (rng.normal(0, 1, (5, 12)) / a).astype(np.float32), transpose_b=True, name="d2")
    t.identity(y, name="out")


CLIP = {"relu6": "clip"}  # equalize through a per-tensor clip anyway (exact in float, not fused in int8)
# id -> (builder, input shape, expected pairs, op histogram changes, options)
CASES = {
    "conv-relu-conv": (lambda t, r: _conv_relu_conv(t, r), SHAPE, [("c1", "c2")], {}, {}),
    "conv-leakyrelu-conv": (lambda t, r: _conv_relu_conv(t, r, "leaky"), SHAPE, [("c1", "c2")], {}, {}),
    "conv-conv": (lambda t, r: _conv_relu_conv(t, r, "none"), SHAPE, [("c1", "c2")], {}, {}),
    "conv-relu-per-channel-min-conv": (lambda t, r: _conv_relu_conv(t, r, "relu-min-per-channel"), SHAPE,
                                       [("c1", "c2")], {}, {}),
    "mobilenet-relu6-clip": (_mobilenet, SHAPE, [("c1", "dw"), ("dw", "c3")],
                             {"Relu6": -2, "Relu": 2, "Minimum": 2}, CLIP),
    "depthwise-multiplier-2-clip": (lambda t, r: _mobilenet(t, r, 2), SHAPE, [("c1", "dw"), ("dw", "c3")],
                                    {"Relu6": -2, "Relu": 2, "Minimum": 2}, CLIP),
    "dense-transpose-b": (_dense, (None, 16), [("d1", "d2")], {}, {}),
}


def _model(case):
    build, shape, *_ = CASES[case]
    rng = _rng()
    return graph_model(lambda t: build(t, rng), {"x": shape}, ["out"]), shape


def _inputs(shape, n=8, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, *shape[1:])).astype(np.float32)


def _run(model, x, *extra):
    specs = [TensorSpec(e, f"{e}:0", "float32", None) for e in extra]
    return GraphRunner(model.replace(outputs=model.outputs + specs))({"x": x})


def _weights(model, layer):
    nodes = node_map(model.graph_def)
    return const_value(nodes[nodes[layer].input[1]])


def _out_ranges(model, layer):
    w = np.abs(_weights(model, layer))
    op = node_map(model.graph_def)[layer]
    if op.op == "DepthwiseConv2dNative":
        return w.max(axis=(0, 1)).reshape(-1)
    if op.op == "MatMul" and op.attr["transpose_b"].b:
        return w.max(axis=1)
    return w.reshape(-1, w.shape[-1]).max(axis=0)


def _in_ranges(model, layer):
    w = np.abs(_weights(model, layer))
    op = node_map(model.graph_def)[layer]
    if op.op == "MatMul":
        return w.max(axis=0) if op.attr["transpose_b"].b else w.max(axis=1)
    return w.transpose(2, 0, 1, 3).reshape(w.shape[2], -1).max(axis=1)


def _histogram_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
            if k != "Const" and after.get(k, 0) != before.get(k, 0)}


@pytest.mark.parametrize("case", list(CASES))
def test_equalizes_ranges_and_keeps_float_output(case):
    model, shape = _model(case)
    expected_pairs, delta, options = CASES[case][2:]
    result, report = equalize(model, **options)
    assert [(p.layer1, p.layer2) for p in report.pairs] == expected_pairs
    assert report.skips == [] and 1 < report.rounds < 20
    assert _histogram_delta(ops(model), ops(result)) == delta
    for layer1, layer2 in expected_pairs:
        # equalized: output channel i of layer1 and input channel i of layer2 share one range
        np.testing.assert_allclose(_out_ranges(result, layer1), _in_ranges(result, layer2), rtol=5e-3)
    first = report.pairs[0]
    assert first.spread_before > 50 and first.spread_after < first.spread_before / 10
    x = _inputs(shape)
    want, got = _run(model, x)["out"], _run(result, x)["out"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("case", ["conv-relu-conv", "mobilenet-relu6-clip", "dense-transpose-b"])
def test_per_tensor_weight_quantization_error_drops(case):
    model, shape = _model(case)
    result, _ = equalize(model, **CASES[case][4])
    x = _inputs(shape, 16)
    want = _run(model, x)["out"]

    def error(m):
        got = _run(fake_quantize_weights(m, per_channel=False), x)["out"]
        return np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want ** 2))
    before, after = error(model), error(result)
    assert after * 3 <= before, (before, after)


def _fan_out(t, rng):
    _conv_relu_conv(t, rng)
    t.identity(t.compat.v1.get_default_graph().get_tensor_by_name("Relu:0"), name="side")


def _shared_weights(t, rng):
    x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
    w = t.constant(rng.normal(0, 1, (3, 3, 3, 3)).astype(np.float32))
    y = t.nn.relu(_conv(t, x, w, "c1"))
    t.identity(_conv(t, y, w, "c2"), name="out")


NEGATIVE = {
    "fan-out": (_fan_out, ["out", "side"], {}, "'Relu' feeds 2 consumers"),
    "intermediate-output": (_conv_relu_conv, ["out", "Relu"], {}, "'Relu' is a model output"),
    "tanh": (lambda t, r: _conv_relu_conv(t, r, "tanh"), ["out"], {}, "Tanh 'Tanh' between them is not positive-homogeneous"),
    "relu6": (_mobilenet, ["out"], {}, "Relu6 'Relu6' between them clips every channel at 6: equalizing would "
              "make the clip per-channel"),
    "relu-min4": (lambda t, r: _conv_relu_conv(t, r, "relu-min4"), ["out"], {},
                  "Minimum 'Minimum' between them clips every channel at 4: equalizing would make the clip per-channel"),
    "shared-weights": (_shared_weights, ["out"], {}, "are shared by 2 consumers"),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_does_not_fire(case):
    build, outputs, options, reason = NEGATIVE[case]
    rng = _rng()
    model = graph_model(lambda t: build(t, rng), {"x": SHAPE}, outputs)
    result, report = equalize(model, **options)
    assert result is model and report.pairs == []
    assert any(s.node == "c1" and reason in s.reason for s in report.skips), report.skips


def test_pass_contract_and_fixed_point():
    model, _ = _model("mobilenet-relu6-clip")
    before = model.graph_def.SerializeToString()
    first = Equalize(relu6="clip").run(model)
    assert first.changed and first.model is not model
    assert model.graph_def.SerializeToString() == before  # input untouched
    second = Equalize(relu6="clip").run(first.model)
    assert not second.changed and second.model is first.model


def test_bad_options():
    model, _ = _model("conv-relu-conv")
    with pytest.raises(OptionError, match="relu6 must be 'clip' or 'skip'"):
        equalize(model, relu6="relu")
    with pytest.raises(OptionError, match="iterations must be at least 1"):
        equalize(model, 0)


def _high_bias(t, rng, layer2="1x1", bias2=False):
    """A positive bias no input can overcome: the Relu's output never reaches zero."""
    x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
    y = t.nn.bias_add(_conv(t, x, rng.normal(0, 0.1, (3, 3, 3, 8)).astype(np.float32), "c1"),
                      rng.uniform(2, 4, 8).astype(np.float32))
    y = t.nn.relu(y, name="act")
    kernel = (1, 1) if layer2 == "1x1" else (3, 3)
    y = _conv(t, y, rng.normal(0, 1, (*kernel, 8, 5)).astype(np.float32), "c2")
    t.identity(t.nn.bias_add(y, rng.normal(0, 1, 5).astype(np.float32)) if bias2 else y, name="out")


def test_high_bias_absorbed_exactly_on_calibration_data():
    rng = _rng()
    model = graph_model(lambda t: _high_bias(t, rng), {"x": SHAPE}, ["out"])
    calibration = _inputs(SHAPE, 32, seed=3)
    plain, plain_report = equalize(model)
    result, report = equalize(model, samples={"x": calibration})
    assert plain_report.pairs[0].absorbed == 0 and report.pairs[0].absorbed > 1
    assert _histogram_delta(ops(model), ops(result)) == {"BiasAdd": 1}  # c2 had no bias: it gets W2ᵀc
    want, got, shifted = (_run(m, calibration, "act") for m in (model, result, plain))
    assert want["act"].min(axis=(0, 1, 2)).min() > 0.3
    np.testing.assert_allclose(got["act"].min(axis=(0, 1, 2)), 0, atol=1e-5)  # the range now starts at zero
    assert shifted["act"].min(axis=(0, 1, 2)).min() > 0.1
    np.testing.assert_allclose(got["out"], want["out"], rtol=0, atol=1e-5 * np.abs(want["out"]).max())
    assert not Equalize(samples={"x": calibration}).run(result).changed


@pytest.mark.parametrize("bias2", [False, True], ids=["c2-without-bias", "c2-with-bias"])
def test_no_new_bias_absorbs_only_between_layers_that_have_biases(bias2):
    """``new_biases=False`` (a target whose kernels pay for a bias): absorbing into a layer without a
    bias would give it one, so the pair is left alone and named; between two biased layers it is
    absorbed as always, exactly."""
    rng = _rng()
    model = graph_model(lambda t: _high_bias(t, rng, bias2=bias2), {"x": SHAPE}, ["out"])
    calibration = _inputs(SHAPE, 32, seed=3)
    result, report = equalize(model, samples={"x": calibration}, new_biases=False)
    assert _histogram_delta(ops(model), ops(result)).get("BiasAdd", 0) == 0
    if bias2:
        assert report.pairs[0].absorbed > 1
        want, got = (_run(m, calibration)["out"] for m in (model, result))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    else:
        assert report.pairs[0].absorbed == 0
        assert any("'c2' has no bias and would get one (no_new_bias)" in s.reason for s in report.skips), report.skips


def test_high_bias_not_absorbed_through_zero_padding():
    rng = _rng()
    model = graph_model(lambda t: _high_bias(t, rng, "3x3"), {"x": SHAPE}, ["out"])
    result, report = equalize(model, samples={"x": _inputs(SHAPE, 8)})
    assert report.pairs[0].absorbed == 0
    assert any("3x3 SAME zero padding" in s.reason for s in report.skips), report.skips
    assert "BiasAdd" not in _histogram_delta(ops(model), ops(result))


# --- in the int8 artifacts: the engine's default recipe keeps every layer's fused activation ---------------

def _keras_stack(kind):
    """A Keras stack of ``kind`` (``STACKS``) ending in ``Dense(10)`` logits."""
    import keras

    keras.utils.set_random_seed(len(kind))
    layers, conv = keras.layers, lambda n, k=3, **kw: keras.layers.Conv2D(n, k, padding="same", **kw)
    inputs = keras.Input((64,) if kind == "dense" else (8, 8, 1), name="images")
    if kind == "conv":  # ReLU6 as a layer, then as the conv's argument
        h = conv(12, 1, activation="relu6")(layers.ReLU(6.0)(conv(8)(inputs)))
    elif kind == "depthwise":  # MobileNet's block, depth multiplier 2
        h = layers.ReLU(6.0)(layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(
            layers.ReLU(6.0)(conv(8)(inputs))))
        h = layers.ReLU(6.0)(conv(16, 1)(h))
    elif kind == "mixed":  # a ReLU6 pair, then a ReLU pair: depthwise -> ReLU -> 1x1
        h = layers.ReLU()(layers.DepthwiseConv2D(3, padding="same")(layers.ReLU(6.0)(conv(8)(inputs))))
        h = layers.ReLU(6.0)(conv(16, 1)(h))
    else:
        h = layers.Dense(16, activation="relu6")(layers.Dense(32, activation="relu6")(inputs))
    if kind != "dense":
        h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, layers.Dense(10, name="logits")(h))


# kind -> (each layer's fused TFLite activation, in order; pairs joined by a ReLU6; pairs joined by a ReLU)
STACKS = {"conv": (["RELU6", "RELU6", "NONE"], 1, 0),
          "depthwise": (["RELU6", "RELU6", "RELU6", "NONE"], 2, 0),
          "mixed": (["RELU6", "RELU", "RELU6", "NONE"], 1, 1),
          "dense": (["RELU6", "RELU6", "NONE"], 2, 0)}
TARGETS = ["tflite", "onnx", "openvino"]


@pytest.fixture(scope="module", params=list(STACKS))
def int8_stack(request, tmp_path_factory):
    """One stack converted to int8 by the engine's default recipe (mse+equalize+bias_correction)."""
    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.demos import examples
    from tfopt.runtimes import runner_for

    model = _keras_stack(request.param)
    root = tmp_path_factory.mktemp(f"int8_{request.param}")
    x_train, _, x_test, _ = examples.digits()
    if request.param == "dense":
        x_train, x_test = x_train.reshape(-1, 64), x_test.reshape(-1, 64)
    model.export(str(root / "sm"), verbose=False)
    np.savez(root / "calib.npz", images=x_train[:64])
    result = tfopt.convert(str(root / "sm"), str(root / "out"), to=TARGETS, quantize=["int8"],
                           calibration=str(root / "calib.npz"), report_runs=1, verify=False)
    spec, x = manifest_model(str(root / "out")), x_test[:48]
    want = np.asarray(model(x))
    outputs = {}
    for a in result.artifacts:
        runner = runner_for(a.format, str(root / "out" / a.path), spec)
        outputs[a.format] = np.concatenate([runner({"images": x[i:i + 1]})[spec.outputs[0].name] for i in range(len(x))])
    return {"kind": request.param, "paths": {a.format: str(root / "out" / a.path) for a in result.artifacts},
            "equalize": [r["transforms"]["equalize"] for r in result.int8["engine"].values()], "want": want,
            "got": outputs}


def _per_channel(shape):
    """A broadcast vector: more than one value, along one axis (a per-channel constant)."""
    dims = [int(d) for d in shape]
    return int(np.prod(dims)) > 1 and sum(d > 1 for d in dims) == 1


def _tflite_ops(path):
    """(op, fused activation or None, [shapes of its constant inputs]) in execution order."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    activations = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    options = {"CONV_2D": schema.Conv2DOptions, "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptions,
               "FULLY_CONNECTED": schema.FullyConnectedOptions}
    graph, out = model.Subgraphs(0), []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        fused = None
        if name in options:
            table = op.BuiltinOptions()
            parsed = options[name]()
            parsed.Init(table.Bytes, table.Pos)
            fused = activations[parsed.FusedActivationFunction()]
        tensors = [graph.Tensors(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
        constants = [list(t.ShapeAsNumpy()) for t in tensors if model.Buffers(t.Buffer()).DataLength() > 0]
        out.append((name, fused, constants))
    return out


def _elementwise_per_channel(target, path):
    """The elementwise ops the runtime executes with a per-channel constant operand."""
    if target == "tflite":
        return [op for op, _, constants in _tflite_ops(path)
                if op in ("MINIMUM", "MAXIMUM", "MUL", "ADD", "SUB") and any(_per_channel(s) for s in constants)]
    if target == "onnx":  # the graph ONNX Runtime runs (its QDQ fusions applied)
        import onnx
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = f"{path}.optimized.onnx"
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
        constants = {i.name: list(i.dims) for i in graph.initializer}
        return [n.op_type for n in graph.node if n.op_type in ("Min", "Max", "Mul", "Add", "Sub", "Clip")
                and any(_per_channel(constants.get(i, [])) for i in n.input)]
    from tfopt._openvino import openvino  # the CPU plugin's compiled graph: what is left after its fusions

    core = openvino().Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    found = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_rt_info()["layerType"].astype(str) != "Eltwise":
            continue
        for port in op.inputs()[1:]:
            shape = port.get_source_output().get_partial_shape()
            if shape.is_static and _per_channel(shape.to_shape()):
                found.append(op.get_friendly_name())
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_int8_has_no_per_channel_elementwise_op_between_layers(int8_stack, target):
    """Equalization through a ReLU6 would leave ``Minimum(Relu(x), 6/s)``: a per-channel elementwise op
    between two int8 layers in every runtime. The default recipe leaves none, in what each runtime runs."""
    assert _elementwise_per_channel(target, int8_stack["paths"][target]) == []


def test_int8_tflite_keeps_the_fused_activation(int8_stack):
    """Each conv/depthwise/dense runs with its ReLU6 (ReLU) fused, as in float: no separate clip."""
    ops_ = _tflite_ops(int8_stack["paths"]["tflite"])
    assert [fused for _, fused, _ in ops_ if fused is not None] == STACKS[int8_stack["kind"]][0]
    assert not {"MINIMUM", "MAXIMUM", "RELU", "RELU6"} & {op for op, _, _ in ops_}


def test_int8_skips_name_each_relu6_pair_and_relu_pairs_are_equalized(int8_stack):
    _, relu6_pairs, relu_pairs = STACKS[int8_stack["kind"]]
    for report in int8_stack["equalize"]:  # one per weight grid the targets need: the same decisions
        skipped = [s for s in report["skips"] if "not equalized with '" in s and "clips every channel at 6" in s]
        assert len(skipped) == relu6_pairs, report["skips"]
        assert [p["activation"] for p in report["pairs"]] == ["Relu"] * relu_pairs


@pytest.mark.parametrize("target", TARGETS)
def test_int8_stays_close_to_float(int8_stack, target):
    """Logits within 5 % of their range (relative RMS) of the float Keras model on held-out digits."""
    want, got = int8_stack["want"], int8_stack["got"][target]
    assert np.sqrt(np.mean((got - want) ** 2)) <= 0.05 * (want.max() - want.min())
