"""Output ranges a target's kernels decide (tfopt.quantizing.engine.kernel_ranges): the engine gives an
op whose TFLite int8 kernel fixes its output grid (Softmax, Sigmoid, Tanh: a constant one; AvgPool:
its input's) that grid, so the converter adds no requantize after it; and OpenVINO, which runs
Softmax in float, gets no fake quant on a Softmax graph output. Both artifacts still compute the
float model within a stated bound.

The models: ``x -> Dense(16, relu) -> Dense(k) -> OP`` with the op at the output, and
``x -> Dense(16) -> OP -> Dense(4)`` with it inside (read by a layer), at widths ``k`` 4 and 10;
AvgPool on 6x6 images between Conv2D layers (``Conv2D(k) -> AvgPool -> Flatten`` at the output).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# TFLite's int8 kernels: (scale, zero point) of the op's output, whatever the graph's fake quant says
# (None: its input's)
TFLITE_GRIDS = {"softmax": (1 / 256, -128), "sigmoid": (1 / 256, -128), "tanh": (1 / 128, 0), "avgpool": None}
TFLITE_OPS = {"softmax": "SOFTMAX", "sigmoid": "LOGISTIC", "tanh": "TANH", "avgpool": "AVERAGE_POOL_2D"}
# int8 against float on 64 inputs: mean abs error on the output, relative to the float output's span
# (measured: at most 0.6 % in TFLite and OpenVINO, before and after the fix), and top-1 agreement (>= 92 %)
MEAN_ERROR, AGREEMENT = 0.02, 0.9
CASES = [(op, where, 4 + 6 * ((i + j) % 2)) for i, op in enumerate(TFLITE_GRIDS) for j, where in enumerate(("output", "inside"))]


def _model(root: str, op: str, where: str, k: int) -> dict:
    import keras

    keras.utils.set_random_seed(k)
    shape = (6, 6, 3) if op == "avgpool" else (8,)
    x = keras.Input(shape, name="x")
    if op == "avgpool":
        h = keras.layers.AveragePooling2D(2)(keras.layers.Conv2D(k, 3, padding="same", activation="relu")(x))
        y = keras.layers.Flatten()(h) if where == "output" else \
            keras.layers.Dense(4)(keras.layers.Flatten()(keras.layers.Conv2D(8, 3, name="y")(h)))
    elif where == "output":
        h = keras.layers.Dense(16, activation="relu")(x)
        y = keras.layers.Activation(op, name="y")(keras.layers.Dense(k)(h))
    else:
        h = keras.layers.Dense(16, activation="relu")(x)
        y = keras.layers.Dense(4, name="y")(keras.layers.Activation(op)(keras.layers.Dense(k)(h)))
    model = keras.Model(x, y)
    path = os.path.join(root, "sm")
    model.export(path, verbose=False)
    rng = np.random.default_rng(k)
    calib, test = (rng.normal(0, 2, (n, *shape)).astype(np.float32) for n in (128, 64))
    np.savez(os.path.join(root, "calib.npz"), x=calib)
    return {"path": path, "calib": os.path.join(root, "calib.npz"), "x": test,
            "float": np.asarray(model.predict(test, verbose=0))}


@pytest.fixture(scope="module", params=CASES, ids=[f"{op}-{where}-{k}" for op, where, k in CASES])
def converted(request, tmp_path_factory):
    """The model converted to TFLite and OpenVINO int8 by the default engine recipe, and the float outputs."""
    import tfopt

    op, where, k = request.param
    root = str(tmp_path_factory.mktemp(f"{op}_{where}_{k}"))
    data = _model(root, op, where, k)
    out = os.path.join(root, "out")
    result = tfopt.convert(data["path"], out, to=["tflite", "openvino"], quantize=["int8"],
                           calibration=data["calib"], verify=False)
    paths = {a.format: os.path.join(out, a.path) for a in result.artifacts}  # (OpenVINO: its model.xml)
    return {"op": op, "where": where, "paths": paths, **data}


def _tflite_ops(path: str) -> list[tuple[str, list[tuple[str, float, int]], list[tuple[str, float, int]]]]:
    """``[(builtin op, inputs, outputs)]`` of a .tflite file, each tensor as ``(type, scale, zero point)``."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        tfl = schema.Model.GetRootAs(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = tfl.Subgraphs(0)

    def tensor(i: int) -> tuple[str, float, int]:
        t = graph.Tensors(i)
        q = t.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
        zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
        return types[t.Type()], scale, zero

    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = tfl.OperatorCodes(op.OpcodeIndex())
        out.append((names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())],
                    [tensor(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0],
                    [tensor(op.Outputs(j)) for j in range(op.OutputsLength())]))
    return out


def test_tflite_runs_the_op_on_its_kernel_grid_with_no_requantize(converted):
    ops = _tflite_ops(converted["paths"]["tflite"])
    found = [(inputs[0], outputs[0]) for name, inputs, outputs in ops if name == TFLITE_OPS[converted["op"]]]
    assert len(found) == 1 and found[0][1][0] == "INT8", ops  # the op runs its int8 kernel
    (_, *input_grid), (_, scale, zero) = found[0]
    expected = TFLITE_GRIDS[converted["op"]] or tuple(input_grid)
    assert scale == pytest.approx(expected[0], rel=1e-6) and zero == expected[1], (found, expected)
    requantize = [(name, inputs, outputs) for name, inputs, outputs in ops
                  if name == "QUANTIZE" and inputs[0][0] == outputs[0][0] == "INT8"]
    assert not requantize, ops


def test_tflite_int8_computes_the_float_model(converted):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(converted["paths"]["tflite"])
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    y = []
    for row in converted["x"]:
        interpreter.set_tensor(source["index"], row[None])
        interpreter.invoke()
        y.append(interpreter.get_tensor(sink["index"])[0])
    _assert_close(np.array(y), converted["float"])


def _assert_close(y: np.ndarray, reference: np.ndarray) -> None:
    span = float(reference.max() - reference.min())
    assert np.mean(np.abs(y - reference)) <= MEAN_ERROR * span
    assert np.mean(np.argmax(y, -1) == np.argmax(reference, -1)) >= AGREEMENT


def test_openvino_quantizes_nothing_only_its_float_softmax_reads(converted):
    """OpenVINO's CPU plugin runs Softmax in float: a fake quant on its graph output, or on the logits
    it reads, would only round a float op's input or result. Where a layer reads the Softmax its
    range stays (the layer's int8 input), and the ops OpenVINO runs in int8 keep theirs."""
    import openvino as ov

    model = ov.Core().read_model(converted["paths"]["openvino"])
    producer = model.get_results()[0].input_value(0).get_node()
    if converted["op"] == "softmax":
        softmax = next(op for op in model.get_ordered_ops() if op.get_type_name().startswith("Softmax"))
        assert softmax.input_value(0).get_node().get_type_name() != "FakeQuantize", softmax
        assert (producer.get_type_name() == "Softmax") == (converted["where"] == "output"), producer
    if converted["op"] != "avgpool" and not (converted["op"] == "softmax" and converted["where"] == "output"):
        assert producer.get_type_name() == "FakeQuantize", producer
    y = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(converted["x"])[0]
    _assert_close(np.asarray(y), converted["float"])
