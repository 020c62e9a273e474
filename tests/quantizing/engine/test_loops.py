"""The int8 engine on TF1 graphs with v1 control-flow loops (Enter/Merge/Switch/NextIteration/Exit frames,
TensorArrayV3), as TF1's ``dynamic_rnn`` leaves them (cutkum). Ops inside a loop run once per iteration: a
Session cannot fetch them ("Retval[k] has already been set"), so the statistics pass carries every
iteration's values out of the loop (:mod:`tfopt.quantizing.engine.loop_statistics`) and the loop's layers
are int8 like any other. Generated: a time-major recurrent layer (MatMul + BiasAdd + Tanh over ConcatV2 in
a ``tf.compat.v1.while_loop``, TensorArrays in and out) and a dense layer after it, fed digit images row by
row (sklearn's digits: 8 steps of 8 pixels); converted to int8 for ONNX and OpenVINO (TFLite cannot lower
TensorArrayV3), numbers against the float original. Also: the same layer in a loop without TensorArrays
for TFLite, a nested loop (its inner ops stay float, and say why), and TF1's ``dynamic_rnn`` GRU."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb, keras2_builds
from tfopt.demos.examples import control_flow_v1
from tfopt.errors import OptionError

STEPS = FEATURES = 8  # a digit image, row by row
UNITS, CLASSES = 16, 10
# int8 against float on the 797 held-out digits (float: 86.8 % top-1): accuracy drop in points, top-1
# agreement in percent, relative RMS error of the logits. Measured (AVX-512 VNNI), ONNX and OpenVINO alike:
# 0.9 points, 98.1 %, 0.083 (the recurrent layer left float: 0.1 points, 99.7 %, 0.011; its 7-bit
# per-tensor weight is most of the error, compounded over 8 steps).
DROP, AGREEMENT, REL_RMS = 3.0, 95.0, 0.15
INT8_SCALED = 0.1  # the report's scaled_err (error / (1 + max|y|)) of int8 on calibration-like inputs


def _digits() -> np.ndarray:
    """sklearn's digit images as time-major sequences ``[8 rows, N, 8 pixels]`` in [0, 1]."""
    from sklearn.datasets import load_digits

    return np.ascontiguousarray((load_digits().images / 16.0).astype(np.float32).transpose(1, 0, 2))


@functools.cache
def _trained() -> tuple[np.ndarray, ...]:
    """``(W, b, W_out)`` of :func:`_recurrent`, trained (eagerly, Adam, full batch) on the first 1000
    digits: a classifier with real margins, so that int8's top-1 agreement measures the quantization,
    not near ties of random logits."""
    from tfopt._tf import tf

    t = tf()
    x, labels = t.constant(_digits()[:, :1000]), t.constant(_labels()[:1000])
    rng = np.random.default_rng(0)
    params = [t.Variable((rng.normal(size=[FEATURES + UNITS, UNITS]) * 0.3).astype(np.float32)),
              t.Variable(np.zeros(UNITS, np.float32)),
              t.Variable((rng.normal(size=[UNITS, CLASSES]) * 0.3).astype(np.float32))]
    moments = [(t.Variable(t.zeros_like(p)), t.Variable(t.zeros_like(p))) for p in params]

    @t.function
    def train(step):
        with t.GradientTape() as tape:
            h, hs = t.zeros([x.shape[1], UNITS]), []
            for row in range(STEPS):
                h = t.tanh(t.matmul(t.concat([x[row], h], 1), params[0]) + params[1])
                hs.append(h)
            logits = t.matmul(h + t.reduce_mean(t.stack(hs), 0), params[2])
            loss = t.reduce_mean(t.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        for p, g, (m, v) in zip(params, tape.gradient(loss, params), moments):  # Adam, lr 0.03
            m.assign(0.9 * m + 0.1 * g)
            v.assign(0.999 * v + 0.001 * g * g)
            p.assign_sub(0.03 * (m / (1 - 0.9 ** step)) / (t.sqrt(v / (1 - 0.999 ** step)) + 1e-8))

    for step in range(1, 201):
        train(t.constant(step, t.float32))
    return tuple(p.numpy() for p in params)


@pytest.fixture(scope="module", autouse=True)
def trained():
    """Train before any graph is built: eager TensorFlow, outside the graphs of :func:`graph_pb`."""
    return _trained()


def _labels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().target.astype(np.int32)


def _recurrent(t, *, nested: bool = False, cond: bool = False):
    """``y = (h_T + mean_t h_t) · W_out``, ``h_t = tanh([x_t, h_{t-1}] · W + b)`` (``nested``: each
    step's layer in an inner v1 loop of one iteration; ``cond``: in a ``tf.cond`` branch taken after
    the first step, ``h`` kept before)."""
    with control_flow_v1():  # TensorArrayV3 and Enter/Exit frames, as TF1 built them
        _recurrent_v1(t, nested, cond)


def _recurrent_v1(t, nested: bool, cond: bool) -> None:
    v1 = t.compat.v1
    weights, bias, dense = _trained()  # (trained already, eagerly: the module's autouse fixture)
    x = v1.placeholder(t.float32, [None, None, FEATURES], name="x")  # time-major
    steps = t.shape(x)[0]
    xs = t.TensorArray(t.float32, size=steps).unstack(x)
    w, b = t.constant(weights), t.constant(bias)

    def step(inputs):
        return t.tanh(t.nn.bias_add(t.matmul(inputs, w), b))

    def body(i, h, ys):
        joined = t.concat([xs.read(i), h], 1)
        if cond:
            h = t.cond(i > 0, lambda: step(joined), lambda: h)
        elif nested:
            _, h = v1.while_loop(lambda j, a: j < 1, lambda j, a: (j + 1, step(joined)), [t.constant(0), h])
        else:
            h = step(joined)
        return i + 1, h, ys.write(i, h)

    _, state, ys = v1.while_loop(lambda i, h, ys: i < steps, body,
                                 [t.constant(0), t.zeros(t.stack([t.shape(x)[1], UNITS])),
                                  t.TensorArray(t.float32, size=steps)])
    t.identity(t.matmul(state + t.reduce_mean(ys.stack(), 0), t.constant(dense)), name="y")


def _plain_loop(t):
    """``y = h_4 · W_out``, ``h_{k+1} = tanh([x, h_k] · W + b)``: a v1 loop without TensorArrays (TFLite's
    converter turns it into a WHILE)."""
    with control_flow_v1():
        v1 = t.compat.v1
        rng = np.random.default_rng(0)
        x = v1.placeholder(t.float32, [None, STEPS * FEATURES], name="x")
        w = t.constant((rng.normal(size=[STEPS * FEATURES + UNITS, UNITS]) * 0.1).astype(np.float32))
        b = t.constant((rng.normal(size=[UNITS]) * 0.1).astype(np.float32))

        def body(i, h):
            return i + 1, t.tanh(t.nn.bias_add(t.matmul(t.concat([x, h], 1), w), b))

        _, h = v1.while_loop(lambda i, h: i < 4, body, [t.constant(0), t.zeros_like(x[:, :UNITS])])
        t.identity(t.matmul(h, t.constant(rng.normal(size=[UNITS, CLASSES]).astype(np.float32))), name="y")


def _mapped(t):
    """``y_t = tanh(x_t · W + b)`` for each step: a v1 loop whose layer reads a TensorArray element
    directly (as ``map_fn`` builds it)."""
    with control_flow_v1():
        v1 = t.compat.v1
        weights, bias, _ = _trained()
        x = v1.placeholder(t.float32, [None, None, FEATURES], name="x")
        xs = t.TensorArray(t.float32, size=t.shape(x)[0]).unstack(x)
        w, b = t.constant(weights[:FEATURES]), t.constant(bias)
        _, ys = v1.while_loop(lambda i, ys: i < t.shape(x)[0],
                              lambda i, ys: (i + 1, ys.write(i, t.tanh(t.matmul(xs.read(i), w) + b))),
                              [t.constant(0), t.TensorArray(t.float32, size=t.shape(x)[0])])
        t.identity(ys.stack(), name="y")


def _portable(tmp_path, build=_recurrent):
    model, *_ = tfopt.optimize(graph_pb(tmp_path / "loop.pb", build), outputs=["y"])
    return model


def test_loop_frames_follow_enter_and_exit(tmp_path):
    """Nested v1 loops: each op in its innermost frame; an Exit in the frame around its loop."""
    from tfopt._tf import graph_def_class
    from tfopt.graphdef.frames import loop_frames

    graph = graph_def_class()()
    with open(graph_pb(tmp_path / "nested.pb", lambda t: _recurrent(t, nested=True)), "rb") as f:
        graph.ParseFromString(f.read())
    frames, ops = loop_frames(graph), {n.name: n.op for n in graph.node}
    outer, inner = "while/while_context", "while/while/while_context"
    assert frames["while/while/MatMul"] == frames["while/while/Tanh"] == inner
    assert frames["while/concat"] == frames["while/while/Exit"] == frames["while/Merge"] == outer
    assert frames["while/concat/axis"] == outer  # a constant of the body (control input from the pivot)
    outside = {n for n, op in ops.items() if op in ("Placeholder", "Identity", "Mean") and not n.startswith("while/")}
    assert outside >= {"x", "y", "Mean"} and not outside & frames.keys()
    assert not [n for n in frames if n.startswith("while/Exit") or not n.startswith("while/")]
    assert all(n in frames for n, op in ops.items() if op in ("Merge", "NextIteration", "Switch", "LoopCond"))


@pytest.mark.parametrize("batch_size", [1, 7, 64], ids=lambda b: f"batch{b}")
def test_statistics_of_a_loop_tensor_cover_every_iteration(tmp_path, batch_size):
    """``while/Tanh`` (h_t, once per step) has the statistics of ``ys.stack()``, the same values gathered by
    the model itself after the loop: count, min, max and histogram alike, over every batch. Before: the
    fetch failed ("Retval[k] has already been set")."""
    from tfopt.quantizing.engine.statistics import collect

    model = _portable(tmp_path)
    x = _digits()[:, :50]
    stats = collect(model, {"x": x}, ["while/Tanh:0", "TensorArrayStack/TensorArrayGatherV3:0", "while/concat:0"],
                    batch_size=batch_size)
    looped, stacked = stats["while/Tanh:0"], stats["TensorArrayStack/TensorArrayGatherV3:0"]
    assert looped.count == stacked.count == STEPS * 50 * UNITS
    assert (looped.min, looped.max, looped.width) == (stacked.min, stacked.max, stacked.width)
    np.testing.assert_array_equal(looped.hist, stacked.hist)
    concat = stats["while/concat:0"]  # [x_t, h_{t-1}]: the pixels' range, and h_0 = 0
    assert concat.count == STEPS * 50 * (FEATURES + UNITS) and concat.max == x.max()


def test_nested_loops_inner_ops_stay_float_and_say_why(tmp_path):
    """The inner loop's ops get no range (their values per iteration are not gathered through two loops),
    the outer loop's do, and the engine's skips name the inner loop; asking for its statistics is refused."""
    from tfopt.quantizing.engine.loop_statistics import NESTED
    from tfopt.quantizing.engine.loops import loop_skips
    from tfopt.quantizing.engine.placement import activation_tensors
    from tfopt.quantizing.engine.statistics import collect

    model = _portable(tmp_path, lambda t: _recurrent(t, nested=True))
    tensors = activation_tensors(model)
    assert "while/concat:0" in tensors and not [t for t in tensors if t.startswith("while/while/")], tensors
    (skip,) = loop_skips(model)
    assert "while/while/MatMul" in skip and "while/while/while_context" in skip and NESTED in skip, skip
    with pytest.raises(OptionError, match=r"while/while/Tanh:0.*nested"):
        collect(model, {"x": _digits()[:, :4]}, ["while/while/Tanh:0"])
    with pytest.raises(OptionError, match=r"--keep-float while/while/MatMul: .*nested TF1 while loop"):
        activation_tensors(model, keep_float=["while/while/MatMul"])


def test_layer_in_a_cond_branch_of_a_loop_stays_float_and_the_rest_is_quantized(tmp_path):
    """A tf.cond branch inside the body: its ops (dead on the untaken branch) get no range and the skips
    say why; the loop's other ops (the ConcatV2) and everything outside are quantized from statistics."""
    from tfopt.quantizing.engine.loop_statistics import CONDITIONAL
    from tfopt.quantizing.engine.loops import loop_skips
    from tfopt.quantizing.engine.quantize import Engine, Recipe
    from tfopt.runtimes.tensorflow import GraphRunner

    model = _portable(tmp_path, lambda t: _recurrent(t, cond=True))
    (skip,) = loop_skips(model)
    assert "while/cond/MatMul" in skip and CONDITIONAL in skip, skip
    quantized, report = Engine(model, {"x": _digits()[:, :64]}).quantize(Recipe())
    assert "while/concat:0" in report.ranges and not [t for t in report.ranges if t.startswith("while/cond/")]
    assert report.skips == [skip]
    x = _digits()[:, 1000:1100]
    got, expected = (GraphRunner(m.replace(reference=None))({"x": x})["y"] for m in (quantized, model))
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) <= REL_RMS


def test_ops_inside_loops_get_ranges_where_outside_ones_would(tmp_path):
    """On the portable graph: the loop's layer (its weight through a constant Enter), its ConcatV2 and Tanh
    take ranges as outside loops; --keep-float names a loop layer like any other."""
    from tfopt.quantizing.engine.loops import loop_skips
    from tfopt.quantizing.engine.placement import activation_tensors, layers

    model = _portable(tmp_path)
    tensors = activation_tensors(model)
    assert {"x:0", "y:0", "Mean:0", "while/concat:0", "while/BiasAdd:0", "while/Tanh:0"} <= set(tensors), tensors
    assert sorted(layer.linear for layer in layers(model)) == ["while/MatMul", "y"] and not loop_skips(model)
    kept = activation_tensors(model, keep_float=["while/MatMul"])
    assert "while/BiasAdd:0" not in kept and "while/Tanh:0" in kept


def test_auto_keep_float_ranks_loop_layers_with_the_rest(tmp_path):
    """--auto-keep-float's ranking (each group quantized alone, the graph run in TensorFlow) covers the
    loop's groups: the recurrent MatMul, whose error compounds over the steps, ranks worst."""
    from tfopt.quantizing.engine.quantize import Engine, Recipe
    from tfopt.quantizing.engine.sensitivity import rank_groups

    ranking = rank_groups(Engine(_portable(tmp_path), {"x": _digits()[:, :64]}), Recipe())
    assert {"while/MatMul", "while/concat", "while/Tanh", "y"} <= {row["layer"] for row in ranking}
    assert ranking[0]["layer"] == "while/MatMul", ranking


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v1_loop")
    pb = graph_pb(tmp / "loop.pb", _recurrent)
    np.savez(tmp / "calib.npz", x=_digits()[:, :256])
    result = tfopt.convert(pb, str(tmp / "out"), to=["onnx", "openvino"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax", calibration=str(tmp / "calib.npz"), report_runs=1)
    return result, tmp / "out", pb


def _float_outputs(pb: str, x: np.ndarray) -> np.ndarray:
    from tfopt._tf import graph_def_class, tf

    graph_def = graph_def_class()()
    with open(pb, "rb") as f:
        graph_def.ParseFromString(f.read())
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(graph_def, name="")
    with t.compat.v1.Session(graph=graph) as session:
        return session.run("y:0", {"x:0": x})


def test_v1_loop_layer_is_int8_in_onnx_and_openvino(converted):
    """The loop's MatMul runs as an int8 kernel in ONNX Runtime (inside the Loop body); OpenVINO's IR holds
    the same fake quants in its loop body. Before: both left it float and the skips named the loop."""
    import openvino as ov

    result, out, _ = converted
    assert not result.failed, result.failed
    rows = {row["format"]: row for row in result.report["artifacts"]}
    assert set(rows) == {"onnx", "openvino"} and all(r["precision"] == "int8" for r in rows.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(a["quantizer"] == "tfopt" for a in manifest["artifacts"]), manifest["artifacts"]
    (engine,) = manifest["int8_engine"]["engine"].values()
    assert engine["skips"] == [], engine["skips"]
    layers = {layer["name"]: layer["precision"] for layer in rows["onnx"]["int8_ops"]["layers"]}
    assert [p for name, p in layers.items() if name.startswith("while/MatMul")] == ["int8"], layers
    # OpenVINO's CPU plugin does not show a loop body's kernels: the structure is what can be checked
    model = ov.Core().read_model(str(out / rows["openvino"]["path"]))
    (loop,) = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Loop", "TensorIterator")]
    body = {op.get_friendly_name(): op for op in loop.get_function().get_ordered_ops()}
    matmul = body["while/MatMul"]
    assert matmul.input_value(0).get_node().get_type_name() == "FakeQuantize"
    assert sum(op.get_type_name() == "FakeQuantize" for op in body.values()) >= 3  # concat, bias add, tanh
    assert any(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
               for op in body.values()), "the weight is not stored in 8 bits"


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_v1_loop_int8_matches_float_on_held_out_digits(converted, target):
    """Held-out digit sequences (neither trained nor calibrated on), int8 against the float original: the
    accuracy drops by at most DROP points, the top-1 class agrees on AGREEMENT % of them, the logits'
    relative RMS error is at most REL_RMS."""
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    result, out, pb = converted
    x, labels = _digits()[:, 1000:], _labels()[1000:]
    expected = _float_outputs(pb, x)
    (artifact,) = [a for a in result.artifacts if a.format == target]
    runner = runner_for(target, os.path.join(out, artifact.path), manifest_model(str(out)))
    try:
        got = runner({"x": x})["y"]
    finally:
        getattr(runner, "close", lambda: None)()
    drop = 100 * float(np.mean(expected.argmax(1) == labels) - np.mean(got.argmax(1) == labels))
    agreement = 100 * float(np.mean(got.argmax(1) == expected.argmax(1)))
    rel_rms = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    assert drop <= DROP and agreement >= AGREEMENT and rel_rms <= REL_RMS, (drop, agreement, rel_rms)


def test_v1_loop_without_tensor_arrays_is_int8_in_tflite(tmp_path):
    """TFLite lowers a v1 loop without TensorArrays to a WHILE: its FULLY_CONNECTED inside is int8, and so
    is the layer after the loop's Exit (a range of its own there: no converter carries one out of a loop)."""
    pb = graph_pb(tmp_path / "plain.pb", _plain_loop)
    x = _digits().transpose(1, 0, 2).reshape(-1, STEPS * FEATURES)
    np.savez(tmp_path / "calib.npz", x=x[:256])
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["tflite"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax", calibration=str(tmp_path / "calib.npz"), report_runs=1)
    assert not result.failed, result.failed
    (row,) = result.report["artifacts"]
    layers = {layer["name"]: layer["precision"] for layer in row["int8_ops"]["layers"]}
    assert sorted(layers.values()) == ["int8", "int8"] and any(n.startswith("while/MatMul") for n in layers), layers
    assert row["fidelity"]["scaled_err"] <= INT8_SCALED, row["fidelity"]


def test_v1_loop_layer_reading_a_tensor_array_is_int8_in_onnx(tmp_path):
    """A layer reading a TensorArray element inside the loop (``map_fn``'s form) gets its input range there
    (rule 5 of :mod:`tfopt.quantizing.engine.placement`): an int8 kernel in ONNX Runtime."""
    pb = graph_pb(tmp_path / "mapped.pb", _mapped)
    np.savez(tmp_path / "calib.npz", x=_digits()[:, :256])
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax", calibration=str(tmp_path / "calib.npz"), report_runs=1)
    assert not result.failed, result.failed
    (row,) = result.report["artifacts"]
    layers = {layer["name"]: layer["precision"] for layer in row["int8_ops"]["layers"]}
    assert list(layers.values()) == ["int8"] and next(iter(layers)).startswith("while/MatMul"), layers
    assert row["fidelity"]["scaled_err"] <= INT8_SCALED, row["fidelity"]


RNN_BUILDER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "emitters", "tf1_rnn_graph.py")


@pytest.mark.slow
def test_dynamic_rnn_gru_layers_are_int8_in_onnx(tmp_path):
    """TF1's ``dynamic_rnn`` GRU (frozen variables: each weight a Const behind an Identity and an Enter):
    both of its MatMuls are int8 kernels in ONNX Runtime, within INT8_SCALED of float."""
    pb = keras2_builds(RNN_BUILDER, tmp_path, [], lambda key, path: [path + ".pb", "gru", "time"])("gru") + ".pb"
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.normal(size=[5, 64, 4]).astype(np.float32),
             lens=rng.integers(1, 6, size=64).astype(np.int32), state=rng.normal(size=[1, 64, 6]).astype(np.float32))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax", calibration=str(tmp_path / "calib.npz"), report_runs=1)
    assert not result.failed, result.failed
    (row,) = result.report["artifacts"]
    layers = {layer["name"]: layer["precision"] for layer in row["int8_ops"]["layers"]}
    assert sorted(layers.values()) == ["int8", "int8"] and all("gru_cell" in n for n in layers), layers
    assert row["fidelity"]["scaled_err"] <= INT8_SCALED, row["fidelity"]
