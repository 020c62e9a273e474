"""Artifacts that never end in their runtime fail their own target within the time bound (issue 24).

A real ONNX model whose ``Loop`` condition stays true (trip count 2**63 - 1: ONNX Runtime never leaves it,
and no Python thread can stop it) is verified against a TensorFlow reference: in ``tfopt convert`` (a target
registered for the test writes it) and in ``tfopt verify OUT --reference MODEL``. Its target is recorded as
failed with a :class:`~tfopt.errors.VerificationTimeoutError` naming the file, the runtime and the bound,
within the bound, and the other target is still written and verified."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

import tfopt
from tests.runtimes.forever import forever_onnx
from tfopt.errors import PARTIAL_EXIT_CODE, VerificationTimeoutError
from tfopt.targets import TABLE, register_target, unregister_target

BOUND = 3.0  # seconds: the tests' --verify-timeout
SLACK = 40.0  # seconds a convert or verify of the tiny model may take besides (loading, the other target)
HANG = "onnx_hang"  # the registered target whose emitter writes the ONNX model that never ends


def emit_forever(job) -> str:
    """The registered target's emitter: the never-ending ONNX model with the frozen graph's tensor names."""
    model = job.portable
    return forever_onnx(job.path, [(s.tensor, list(s.shape or [])) for s in model.inputs],
                        [s.tensor for s in model.outputs], nested=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny SavedModel: y = 2x + 1 (x: [batch, 4])."""
    from tests.helpers import saved_function
    from tfopt._tf import tf

    t = tf()
    return saved_function(tmp_path_factory.mktemp("m") / "saved", lambda x: {"y": 2.0 * x + 1.0},
                          [t.TensorSpec([None, 4], t.float32, name="x")])


@pytest.fixture()
def hanging_target():
    record = dataclasses.replace(TABLE["onnx"], name=HANG, file="model.{precision}.hang.onnx", emit=f"{__name__}:emit_forever",
                                 precisions=("fp32",), ahead=None, large=None, large_converter=None, large_precisions=(),
                                 keep_float=(), layer_quantizer=None, accuracy_control=(), int8_ops=None,
                                 suffixes=(".hang.onnx",))
    register_target(record)
    yield HANG
    unregister_target(HANG)


def test_an_onnx_loop_that_never_ends_fails_its_target_alone_within_the_bound(model_dir, tmp_path, hanging_target, capfd):
    """``tfopt convert``: the never-ending target is recorded as failed (exit code 7 of its own, the command's
    11 of docs/exit-codes.md: the others are written), the TFLite artifact written and verified."""
    from tfopt.cli import main

    out = str(tmp_path / "out")
    start = time.monotonic()
    code = main(["convert", model_dir, "-o", out, "--to", f"tflite,{hanging_target}", "--quantize", "fp32",
                 "--verify-timeout", f"{BOUND:g}"])
    took = time.monotonic() - start
    assert code == PARTIAL_EXIT_CODE, capfd.readouterr().err
    assert took < BOUND + SLACK, took
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert [(f["format"], f["error"], f["exit_code"]) for f in manifest["failed"]] == [(HANG, "VerificationTimeoutError", 7)]
    reason = manifest["failed"][0]["reason"]
    assert "ONNX Runtime" in reason and f"{BOUND:g} s" in reason and "--verify-timeout" in reason, reason
    assert "model.fp32.hang.onnx" in reason, reason
    assert [a["format"] for a in manifest["artifacts"]] == ["tflite"]  # the other target: written and verified
    assert manifest["artifacts"][0]["max_abs_err"] is not None and manifest["artifacts"][0]["max_abs_err"] < 1e-5
    assert not os.path.exists(os.path.join(out, "model.fp32.hang.onnx"))  # only verified artifacts stay


def test_verify_holds_the_same_bound(model_dir, tmp_path, capfd):
    """``tfopt verify OUT --reference MODEL``: the never-ending file fails (exit 7, naming it), the TFLite row
    is still measured; the command answers within the bound."""
    from tfopt.cli import main

    out = str(tmp_path / "out")
    tfopt.convert(model_dir, out, to=["tflite"], quantize=["fp32"])
    manifest_path = os.path.join(out, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    spec = manifest["inputs"][0]
    path = forever_onnx(os.path.join(out, "model.fp32.onnx"), [(spec["tensor"], [None, 4])],
                        [s["tensor"] for s in manifest["outputs"]])
    manifest["artifacts"].append({"format": "onnx", "precision": "fp32", "path": "model.fp32.onnx",
                                  "bytes": os.path.getsize(path), "gzip_bytes": 0, "sha256": ""})
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    capfd.readouterr()
    start = time.monotonic()
    code = main(["verify", out, "--reference", model_dir, "--verify-timeout", f"{BOUND:g}", "--report-runs", "3"])
    took = time.monotonic() - start
    err = capfd.readouterr().err
    assert code == 7, err
    assert "model.fp32.onnx" in err and "ONNX Runtime" in err and "--verify-timeout" in err, err
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert [r["format"] for r in report["artifacts"]] == ["tflite"]
    assert [r["format"] for r in report["failed"]] == ["onnx"]
    assert took < BOUND + SLACK, took


@pytest.mark.parametrize("nested", [False, True], ids=["loop", "nested-loops"])
def test_child_runner_stops_a_loop_onnx_runtime_never_leaves(tmp_path, nested):
    from tfopt.graph import Model, TensorSpec
    from tfopt.runtimes import runner_for

    path = forever_onnx(str(tmp_path / "f.onnx"), [("x:0", [None, 4])], ["y:0"], nested=nested)
    model = Model(graph_def=None, inputs=[TensorSpec("x", "x:0", "float32", (None, 4))],
                  outputs=[TensorSpec("y", "y:0", "float32", (None, 4))])
    runner = runner_for("onnx", path, model, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(VerificationTimeoutError, match="ONNX Runtime"):
        runner({"x": np.ones((1, 4), np.float32)})
    assert time.monotonic() - start < 1.0 + 10.0
    runner.close()


def test_loop_free_artifacts_run_in_process(tmp_path):
    """The cheap normal case: a file without a loop is no child (its runtime always ends)."""
    from tfopt.runtimes.child import ChildRunner
    from tfopt.runtimes.onnx import has_loop

    looped = forever_onnx(str(tmp_path / "f.onnx"), [("x:0", [None, 4])], ["y:0"], nested=True)
    assert has_loop(looped)
    import onnx
    from onnx import TensorProto, helper

    plain = str(tmp_path / "p.onnx")
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["x:0"], ["y:0"])], "p",
                                                  [helper.make_tensor_value_info("x:0", TensorProto.FLOAT, [None, 4])],
                                                  [helper.make_tensor_value_info("y:0", TensorProto.FLOAT, [None, 4])]),
                                opset_imports=[helper.make_opsetid("", 17)]), plain)
    assert not has_loop(plain)
    from tfopt.graph import Model, TensorSpec
    from tfopt.runtimes import runner_for

    model = Model(graph_def=None, inputs=[TensorSpec("x", "x:0", "float32", (None, 4))],
                  outputs=[TensorSpec("y", "y:0", "float32", (None, 4))])
    runner = runner_for("onnx", plain, model, timeout=1.0)
    assert not isinstance(runner, ChildRunner)
    np.testing.assert_array_equal(runner({"x": np.ones((2, 4), np.float32)})["y"], np.ones((2, 4), np.float32))
