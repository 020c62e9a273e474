"""The stages that run a model without verifying it are held to ``--verify-timeout`` too (issue 24): the native
converters' keep-float search and layer ranking, ``tfopt debug compare`` and ``tfopt debug reduce``.

Generated models: a ``tf.while_loop`` whose trip count comes from the input's values (made-up or calibration
values make it never end; a zero ends it at once), beside a MatMul layer to quantize. Each stage stops within
the bound with a :class:`~tfopt.errors.VerificationTimeoutError` naming the stage, the model and the option
(:mod:`tfopt.runtimes.bounded_stage`); before, each ran until killed (TFLite's debugger and calibrator are
native code, a made-up input search in TensorFlow had no bound). An artifact that never ends while the layers are
ranked is stopped at the bound in its child process (:mod:`tfopt.runtimes.child`)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function
from tfopt.errors import VerificationTimeoutError
from tfopt.targets import TABLE

BOUND = 1.5  # seconds: the tests' --verify-timeout
SLACK = 90.0  # seconds a command on the tiny model may take besides (loading, freezing, converting: ~2-10 s idle; a hang never ends)
W = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)


def _nonzero(t, x):
    """Steps while every |x| > 0: made-up values never end it."""
    return t.while_loop(lambda i, v: t.reduce_min(t.abs(v)) > 0.0, lambda i, v: (i + 1.0, v), [t.constant(0.0), x])[0]


def _counted(t, x):
    """Counts to a trip count read from x (``max|x| * 1e30``: past 2**24 ``i + 1 == i``, so it never ends)."""
    n = t.reduce_max(t.abs(x)) * 1e30
    return t.while_loop(lambda i: i < n, lambda i: [i + 1.0], [t.constant(0.0)])[0]


LOOPS = {"while-nonzero": _nonzero, "trip-count-from-x": _counted}


@pytest.fixture(scope="module", params=list(LOOPS))
def looping(request, tmp_path_factory):
    """``y = x @ W + loop(x)``: the SavedModel's path."""
    from tfopt._tf import tf

    t = tf()
    loop = LOOPS[request.param]
    return saved_function(tmp_path_factory.mktemp(request.param) / "saved",
                          lambda x: {"y": t.matmul(x, W) + loop(t, x)}, [t.TensorSpec([None, 3], t.float32, name="x")])


def _stops(call):
    start = time.monotonic()
    with pytest.raises(VerificationTimeoutError) as err:
        call()
    took = time.monotonic() - start
    assert took < BOUND + SLACK, took
    return str(err.value)


@pytest.mark.skipif(not TABLE["tflite"].available(), reason="the tflite extra is needed")
def test_the_native_keep_float_search_stops_at_the_bound_naming_itself_and_the_model(looping, tmp_path):
    """Calibration values the loop never leaves: the search's runs of the original stop at the bound, before
    TFLite's debugger (native, unstoppable) runs them; that target fails alone, the fp32 one is written."""
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (8, 3)).astype(np.float32))
    out = str(tmp_path / "out")
    result = {}

    def run():
        result["r"] = tfopt.convert(looping, out, to=["tflite"], quantize=["fp32", "int8"], calibration=data,
                                    quantizer="native", auto_keep_float=1.0, verify=False, verify_timeout=BOUND)
        raise result["r"].errors[0]

    message = _stops(run)
    assert [(a.format, a.precision) for a in result["r"].artifacts] == [("tflite", "fp32")]
    assert [(f.format, f.precision, f.stage) for f in result["r"].failed] == [("tflite", "int8", "converting")]
    assert "keep-float search of tflite int8" in message and looping in message, message
    assert "--verify-timeout" in message and "--calibration" in message and "'x'" in message, message


@pytest.mark.parametrize("command", ["compare", "reduce"])
def test_the_debug_commands_stop_at_the_bound_on_made_up_inputs(looping, tmp_path, command, capsys):
    """``tfopt debug compare`` / ``reduce`` on made-up inputs (freezing unverified): the runs that choose them stop
    at the bound with exit code 7, the message naming the command, the model, the input and the option."""
    from tfopt.cli import main

    out = str(tmp_path / "out")
    extra = ["--to", "tflite", "-o", out] if command == "compare" else ["--target", "tflite", "-o", out]
    start = time.monotonic()
    code = main(["debug", command, looping, *extra, "--no-verify", "--verify-timeout", f"{BOUND:g}"])
    took = time.monotonic() - start
    err = " ".join(capsys.readouterr().err.split())
    assert code == VerificationTimeoutError.exit_code, err
    assert took < BOUND + SLACK, took
    assert f"tfopt debug {command} of {looping}" in err and "'x'" in err, err
    assert "--verify-timeout" in err and "--data" in err, err


@pytest.mark.skipif(not TABLE["onnx"].available(), reason="the onnx extra is needed")
def test_a_ranked_candidate_that_never_ends_stops_in_its_child_process(tmp_path):
    """The layer ranking's run of a candidate file holding a loop its runtime never leaves (an ONNX ``Loop`` of
    2**63 - 1 steps, in ONNX Runtime) stops at the bound, the message naming the search and the file."""
    from tests.runtimes.forever import forever_onnx
    from tfopt.graph import Model, TensorSpec
    from tfopt.quantizing.native.layer_targets import LayerQuantizer
    from tfopt.quantizing.native.ranking import Expected, rank_layers
    from tfopt.runtimes.bounded_stage import Stage, within
    from tfopt.verification.deadline import verify_timeout

    model = Model(graph_def=None, inputs=[TensorSpec("x", "x:0", "float32", (None, 3))],
                  outputs=[TensorSpec("y", "y:0", "float32", None)])
    quantizer = LayerQuantizer("onnx", "int8", [{"layer": "l0", "op": "MatMul", "aliases": ["l0"]}],
                               lambda path, keep: forever_onnx(path + ".onnx", [("x:0", [None, 3])], ["y:0"]))
    samples = [{"x": np.ones((1, 3), np.float32)}]
    stage = Stage("the keep-float search of onnx int8", model="model.pb")
    with verify_timeout(BOUND), within(stage):
        message = _stops(lambda: rank_layers(quantizer, model, samples, expected=Expected(np.zeros((1, 3)), 0.01)))
    assert message.startswith("the keep-float search of onnx int8 of model.pb: running "), message
    assert os.path.basename(message.split(" in ONNX Runtime")[0]).startswith("alone0"), message
    assert "its process was stopped" in message and "--verify-timeout" in message, message


def test_the_int8_engine_stops_at_the_bound_naming_itself_not_verification(looping, tmp_path):
    """The engine's statistics pass and ``--int8-recipe auto``'s candidates on calibration values the loop
    never leaves, with ``--no-verify``: its runs stop at the bound (before, they ran until killed); the int8
    target fails alone, the fp32 one is written, and the message names the engine and how to skip its
    candidates, not ``--no-verify`` (given already, it skips nothing here)."""
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (8, 3)).astype(np.float32))
    result = {}

    def run():
        result["r"] = tfopt.convert(looping, str(tmp_path / "out"), to=["onnx"], quantize=["fp32", "int8"],
                                    calibration=data, int8_recipe="auto", verify=False, verify_timeout=BOUND)
        raise result["r"].errors[0]

    message = _stops(run)
    assert [(a.format, a.precision) for a in result["r"].artifacts] == [("onnx", "fp32")]
    assert [(f.format, f.precision, f.stage) for f in result["r"].failed] == [("onnx", "int8", "converting")]
    assert "tfopt engine" in message and "--int8-recipe" in message and looping in message, message
    assert "--no-verify" not in message, message


NATIVE_INT8 = [r.name for r in TABLE.values() if "int8" in r.precisions and not r.float_only]  # converters that calibrate


@pytest.mark.parametrize("target", NATIVE_INT8)
def test_a_converters_own_int8_calibration_stops_at_the_bound_naming_itself(looping, tmp_path, target):
    """``--quantizer native --quantize int8`` with ``--no-verify`` on calibration values the loop never leaves: the
    converter's calibrator (TFLite's, ONNX Runtime's, NNCF's: native code in process, no bound reaches) would run
    them forever. The original runs them first, bounded; the int8 target fails alone (``converting``), the fp32 one is
    written, and the message names the calibration, the model, the input and the option."""
    if not TABLE[target].available():
        pytest.skip(f"the {TABLE[target].extra} extra is needed")
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (8, 3)).astype(np.float32))
    result = {}

    def run():
        result["r"] = tfopt.convert(looping, str(tmp_path / "out"), to=[target], quantize=["fp32", "int8"],
                                    calibration=data, quantizer="native", verify=False, verify_timeout=BOUND)
        raise result["r"].errors[0]

    message = _stops(run)
    assert [(a.format, a.precision) for a in result["r"].artifacts] == [(target, "fp32")]
    assert [(f.format, f.precision, f.stage) for f in result["r"].failed] == [(target, "int8", "converting")]
    assert f"the int8 calibration of {target}" in message and looping in message, message
    assert "--verify-timeout" in message and "--calibration" in message and "'x'" in message, message


def test_debug_compare_to_stops_at_the_bound_while_building_its_artifacts(looping, tmp_path, capsys):
    """``tfopt debug compare --to tflite --quantize int16x8`` (no int8 engine: TFLite's own calibration) on calibration
    values the loop never leaves: building the artifacts stops at the bound with exit code 7, naming the calibration."""
    if not TABLE["tflite"].available():
        pytest.skip("the tflite extra is needed")
    from tfopt.cli import main

    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (8, 3)).astype(np.float32))
    start = time.monotonic()
    code = main(["debug", "compare", looping, "--to", "tflite", "--quantize", "int16x8", "--calibration", data,
                 "-o", str(tmp_path / "out"), "--no-verify", "--verify-timeout", f"{BOUND:g}"])
    took = time.monotonic() - start
    err = " ".join(capsys.readouterr().err.split())
    assert code == VerificationTimeoutError.exit_code, err
    assert took < BOUND + SLACK, took
    assert "the int16x8 calibration of tflite" in err and looping in err and "--verify-timeout" in err, err


@pytest.mark.skipif(not TABLE["tflite"].available(), reason="the tflite extra is needed")
def test_the_batch_probe_of_a_graph_that_splits_its_batch_stops_at_the_bound(tmp_path):
    """A graph that splits its batch into towers is probed for the batch it takes before a converter calibrates
    (:func:`tfopt.conversion.parts.converter_calibration`), on made-up values its loop never leaves: the probe runs
    through the bound (before, an unbounded TensorFlow runner hung ahead of the keep-float search's own bound)."""
    from tfopt._tf import tf

    t = tf()
    model = saved_function(tmp_path / "towers", lambda x: {"y": t.concat([t.matmul(h, W) for h in t.split(x, 2)], 0)
                                                                + _nonzero(t, x)},
                           [t.TensorSpec([None, 3], t.float32, name="x")])
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (8, 3)).astype(np.float32))
    result = {}

    def run():
        result["r"] = tfopt.convert(model, str(tmp_path / "out"), to=["tflite"], quantize=["fp32", "int8"],
                                    calibration=data, quantizer="native", auto_keep_float=1.0, verify=False,
                                    verify_timeout=BOUND)
        raise result["r"].errors[0]

    message = _stops(run)
    assert [(f.format, f.precision, f.stage) for f in result["r"].failed] == [("tflite", "int8", "converting")]
    assert "the int8 calibration of tflite" in message and "--verify-timeout" in message and "'x'" in message, message


LOOP_TARGETS = [r.name for r in TABLE.values() if r.loops is not None]  # runtimes whose loops run in a child


@pytest.mark.parametrize("target", LOOP_TARGETS)
def test_a_reduce_trial_whose_artifact_never_ends_is_stopped_at_the_bound(tmp_path, target):
    """``tfopt debug reduce``'s trial (:func:`tfopt.debug.check.run_trial`) of a cut whose converted file never
    ends in its runtime on the cut's inputs (its loop counts to ``max|x| * 1e30``): the run stops at the bound in
    its child process and is the trial's outcome (stage ``run``, a timeout naming the stage), not a hang."""
    if not TABLE[target].available():
        pytest.skip(f"the {TABLE[target].extra} extra is needed")
    from tests.helpers import graph_model
    from tfopt.debug.check import run_trial
    from tfopt.debug.subgraph import Cut
    from tfopt.runtimes.bounded_stage import Stage, within
    from tfopt.verification.deadline import verify_timeout

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
        t.identity(t.matmul(x, W) + _counted(t, x), name="y")

    model = graph_model(build, {"x": (None, 3)}, ["y"])
    cut = Cut(model, {"x": np.ones((1, 3), np.float32)}, {"y": np.zeros((1, 4), np.float32)}, ("y",))
    start = time.monotonic()
    with verify_timeout(BOUND), within(Stage("tfopt debug reduce", model="model.pb", skip="")):
        outcome = run_trial(cut, target, "fp32", names={"x", "y"}, workdir=str(tmp_path))
    assert time.monotonic() - start < BOUND + SLACK
    assert (outcome.stage, outcome.error_type) == ("run", "VerificationTimeoutError"), outcome.detail
    assert outcome.detail.startswith("tfopt debug reduce of model.pb: running ") and "--verify-timeout" in outcome.detail, \
        outcome.detail
