"""TFLite's calibrating conversion of a graph that holds a loop runs in a child process
(:mod:`tfopt.emitters.tflite_isolated`): a converter that crashes there fails its own target and precision with
a :class:`~tfopt.ConverterCrashError`, while the other targets are written and verified.

Generated models: ``y = x @ W + count``, where ``count`` is a ``tf.while_loop`` counter stepping while it is below a
trip count read from the input's values (``3 max|x|``, so the loop cannot be folded away). Counted in float
(``i < n``, ``i + 1.0``), TensorFlow 2.21's TFLite calibrator crashes the converting process with SIGSEGV; counted in
int32 it calibrates. The crash case runs ``tfopt convert`` in a subprocess, so that before the fix (the conversion in
tfopt's own process) the test fails with the process killed instead of killing pytest.

Tolerance: int8's scaled error, max |error| / (1 + max |y|), within 5% of the original's outputs computed by
TensorFlow on the calibration rows, whose trip counts lie away from a step (:func:`_rows`; a fresh row past the
calibrated range saturates, as int8 does; measured: ~1%)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function
from tfopt.errors import PARTIAL_EXIT_CODE
from tfopt.targets import TABLE

W = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
INT8_SCALED = 0.05  # int8's max |error| / (1 + max |y|)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _counted(t, x, counter: str):
    """``x @ W`` plus a loop's count of steps while the counter is below ``3 max|x|`` (a float or an int32 counter)."""
    n = t.reduce_max(t.abs(x)) * 3.0
    if counter == "float32":
        count = t.while_loop(lambda i: i < n, lambda i: i + 1.0, [t.constant(0.0)])[0]
    else:
        limit = t.cast(n, t.int32)
        count = t.cast(t.while_loop(lambda i: i < limit, lambda i: i + 1, [t.constant(0)])[0], t.float32)
    return t.matmul(x, W) + count


def _saved(tmp_path_factory, counter: str) -> tuple[str, str]:
    """(SavedModel path, calibration .npz) of the model counting in ``counter``."""
    from tfopt._tf import tf

    t = tf()
    directory = tmp_path_factory.mktemp(f"loop-{counter}")
    saved = saved_function(directory / "saved", lambda x: {"y": _counted(t, x, counter)},
                           [t.TensorSpec([None, 3], t.float32, name="x")])
    data = str(directory / "calibration.npz")
    np.savez(data, x=_rows(16, seed=0))
    return saved, data


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """``counted(counter)``: :func:`_saved` of that counter, made once per module."""
    made: dict[str, tuple[str, str]] = {}

    def get(counter: str) -> tuple[str, str]:
        if counter not in made:
            made[counter] = _saved(tmp_path_factory, counter)
        return made[counter]

    return get


def _original(saved: str, x: np.ndarray) -> np.ndarray:
    from tfopt._tf import tf

    return tf().saved_model.load(saved).signatures["serving_default"](x=tf().constant(x))["y"].numpy()


def _scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / (1.0 + np.max(np.abs(want))))


def _rows(count: int, seed: int) -> np.ndarray:
    """Rows whose ``3 max|x|`` lies halfway between integers (0.5, 1.5 or 2.5): the loop's trip count is then the
    same for any error below 1/6 in ``max|x|``, so an int8 file's count matches the original's (a row at an integer
    would let a rounding error add a whole step to ``y``)."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-1.0, 1.0, (count, 3))
    peak = (rng.integers(0, 3, count) + 0.5) / 3.0
    return (rows / np.max(np.abs(rows), axis=1, keepdims=True) * peak[:, None]).astype(np.float32)


@pytest.mark.parametrize("search", [pytest.param([], id="int8"),
                                    pytest.param(["--auto-keep-float", "1"], id="keep-float-search", marks=pytest.mark.slow)])
def test_a_crashing_calibrator_fails_its_target_alone(counted, tmp_path, search):
    """Float counter: ``tfopt convert --to tflite,onnx --quantize int8 --quantizer native`` exits 11; the manifest lists
    tflite int8 as a ConverterCrashError naming the signal, the loop and ``--quantizer tfopt``; no ``.tflite`` is left;
    the ONNX int8 file is written, verified, and agrees with TensorFlow within :data:`INT8_SCALED`. With the native
    keep-float search, whose per-layer ranking runs TFLite's QuantizationDebugger in process, the same. A
    TensorFlow whose calibrator does not crash on this loop writes and verifies both files (exit 0)."""
    saved, data = counted("float32")
    if not all(TABLE[t].available() for t in ("tflite", "onnx")):
        pytest.skip("the tflite and onnx extras are needed")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "tfopt", "convert", saved, "-o", str(out), "--to", "tflite,onnx",
                           "--quantize", "int8", "--quantizer", "native", "--calibration", data, *search],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, PARTIAL_EXIT_CODE), done.stderr[-2000:]  # before the fix: -11, tfopt killed
    manifest = json.loads((out / "manifest.json").read_text())
    if done.returncode == 0:  # a TensorFlow whose calibrator no longer crashes here: both written and verified
        assert manifest["failed"] == [] and len(manifest["artifacts"]) == 2, manifest["failed"]
        return
    (failure,) = manifest["failed"]
    assert (failure["format"], failure["precision"], failure["error"]) == ("tflite", "int8", "ConverterCrashError")
    assert "SIGSEGV" in failure["reason"] and "loop" in failure["reason"] and "--quantizer tfopt" in failure["reason"]
    assert [(a["format"], a["precision"]) for a in manifest["artifacts"]] == [("onnx", "int8")]
    written = ["manifest.json", "model.int8.onnx", "report.html", "report.json", "report.md"]
    assert sorted(os.listdir(out)) == sorted(written + (["layers.json"] if search else []))
    import onnxruntime

    rows = _rows(16, seed=0)  # the calibration rows: int8's ranges hold them
    session = onnxruntime.InferenceSession(str(out / "model.int8.onnx"))
    (x,), (y,) = session.get_inputs(), session.get_outputs()  # one input, one output: x (x:0), y
    got = session.run([y.name], {x.name: rows})[0]
    assert _scaled_error(got, _original(saved, rows)) <= INT8_SCALED


def test_an_int_counted_loop_still_calibrates(counted, tmp_path):
    """Int32 counter: TFLite's own calibration (in the child) builds the int8 file, verified, and it agrees with
    TensorFlow within :data:`INT8_SCALED`."""
    saved, data = counted("int32")
    if not TABLE["tflite"].available():
        pytest.skip("the tflite extra is needed")
    from ai_edge_litert.interpreter import Interpreter

    result = tfopt.convert(saved, str(tmp_path / "out"), to=["tflite"], quantize=["int8"], quantizer="native",
                           calibration=data)
    assert result.failed == []
    (artifact,) = result.artifacts
    rows = _rows(16, seed=0)  # the calibration rows: int8's ranges hold them
    runner = Interpreter(model_path=str(tmp_path / "out" / artifact.path)).get_signature_runner()
    got = np.concatenate([runner(x=rows[i:i + 1])["y"] for i in range(len(rows))])  # the trip count reads the batch:
    want = np.concatenate([_original(saved, rows[i:i + 1]) for i in range(len(rows))])  # each row alone in both
    assert _scaled_error(got, want) <= INT8_SCALED


@pytest.mark.parametrize(("counter", "precision", "quantization_aware", "expected"), [
    ("float32", "int8", False, True), ("int32", "int16x8", False, True), ("float32", "fp32", False, False),
    ("float32", "int8", True, False), ("none", "int8", False, False),
], ids=["float-loop-int8", "int-loop-int16x8", "fp32", "quantization-aware", "no-loop"])
def test_which_conversions_go_to_the_child(counter, precision, quantization_aware, expected):
    """Calibrating conversions (int8/int16x8 from data) of a graph that holds a loop, and no others."""
    from tfopt._tf import tf
    from tfopt.emitters.tflite_isolated import isolated
    from tfopt.graph import Model, TensorSpec

    t = tf()
    body = (lambda x: t.matmul(x, W)) if counter == "none" else (lambda x: _counted(t, x, counter))
    graph_def = t.function(body).get_concrete_function(t.TensorSpec([None, 3], t.float32)).graph.as_graph_def()
    model = Model(graph_def, [TensorSpec("x", "x:0", "float32", (None, 3))], [])
    calibration = [{"x": np.zeros((1, 3), np.float32)}]
    assert isolated(model, precision, calibration, quantization_aware=quantization_aware) is expected


@pytest.mark.slow  # a child process that imports TensorFlow (~7 s); the in-process record: test_converter_lower.py
def test_what_the_child_lowered_is_recorded_in_the_parent(tmp_path):
    """An int32-counted loop beside a mean over 1200 elements a row (split for TFLite): the calibrating conversion
    runs in the child, and the child's lowering reaches the parent's record (the artifact's ``rewrites``) as an
    in-process conversion's does; the file agrees with TensorFlow within :data:`INT8_SCALED`."""
    if not TABLE["tflite"].available():
        pytest.skip("the tflite extra is needed")
    from ai_edge_litert.interpreter import Interpreter

    from tests.helpers import graph_model
    from tfopt.emitters.rewrite_record import rewrites_recorded
    from tfopt.emitters.tflite_isolated import emit_in_child, holds_loop
    from tfopt.runtimes.tensorflow import GraphRunner

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
        t.identity(_counted(t, x, "int32") + t.reduce_mean(t.tile(x, [1, 400]), axis=1, keepdims=True), name="y")

    model = graph_model(build, {"x": (None, 3)}, ["y"])
    assert holds_loop(model.graph_def)
    rows = _rows(16, seed=0)
    path = str(tmp_path / "m.tflite")
    with rewrites_recorded() as rewrites:
        emit_in_child(model, path, precision="int8", calibration=[{"x": rows[i:i + 1]} for i in range(16)], options={})
    [line] = rewrites["split_reductions"]
    assert "(Mean:" in line, rewrites
    runner = Interpreter(model_path=path).get_signature_runner()
    got = np.concatenate([runner(x=rows[i:i + 1])["y"] for i in range(len(rows))])  # each row alone in both
    want = np.concatenate([GraphRunner(model)({"x": rows[i:i + 1]})["y"] for i in range(len(rows))])
    assert _scaled_error(got, want) <= INT8_SCALED
