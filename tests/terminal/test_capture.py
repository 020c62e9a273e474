"""The public API is as quiet as the CLI: a native int8 OpenVINO + ONNX conversion through
``tfopt.convert`` writes nothing to file descriptors 1 and 2 (TensorFlow's C++ log, NNCF's
progress, ONNX Runtime's warnings, tf2onnx's logging are captured); ``verbose=True`` shows what was
captured, ``log=PATH`` keeps it, and a failure carries the captured tail in its exception."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in a child process, so the test sees fds 1 and 2 themselves (where native code writes).
CHILD = textwrap.dedent("""
    import os, sys
    import tfopt
    path, calib, out, mode = sys.argv[1:5]
    extra = {"verbose": True} if mode == "verbose" else {"log": os.path.join(out + ".log")} if mode == "log" else {}
    if mode == "fail":
        def progress(event):
            if isinstance(event, str):  # the first stage: no need to convert anything
                os.write(2, b"native runtime: something went wrong here\\n")  # as C++ code writes: to fd 2
                raise RuntimeError("stopped by the test")
        extra["progress"] = progress
    try:
        result = tfopt.convert(path, out, to=["openvino", "onnx"], quantize=["int8"], quantizer="native",
                               calibration=calib, report_runs=1, **extra)
    except RuntimeError as exc:
        sys.__stdout__.write("NOTES:" + repr(getattr(exc, "__notes__", [])) + "\\n")
        raise SystemExit(0)
    built = sorted((a.format, a.precision) for a in result.artifacts)
    assert built == [("onnx", "int8"), ("openvino", "int8")], built
""")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("quiet")
    inputs = keras.Input((8, 8, 3), name="x")
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(5, name="d")(keras.layers.Flatten()(h)))
    model.export(str(root / "sm"), verbose=False)
    np.savez(root / "calib.npz", x=np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype(np.float32))
    return {"path": str(root / "sm"), "calib": str(root / "calib.npz"), "root": root}


def _run(tiny, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # what a user's shell has
    env["PYTHONPATH"] = ROOT
    out = str(tiny["root"] / f"out_{mode}")
    return subprocess.run([sys.executable, "-c", CHILD, tiny["path"], tiny["calib"], out, mode],
                          capture_output=True, text=True, env=env, cwd=str(tiny["root"]), timeout=600)


def test_native_int8_through_the_api_prints_nothing(tiny):
    done = _run(tiny, "log")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == "", (done.stdout + done.stderr)[-3000:]
    log = (tiny["root"] / "out_log.log").read_text()
    assert log.startswith("== convert\n") and len(log.splitlines()) > 1  # kept, not lost


@pytest.mark.slow
def test_verbose_shows_the_captured_lines(tiny):
    done = _run(tiny, "verbose")
    assert done.returncode == 0, done.stderr
    shown = [line for line in done.stderr.splitlines() if line.startswith("  | ")]
    assert shown, done.stderr[-3000:]
    assert done.stdout == ""


def test_a_failure_carries_the_captured_tail(tiny):
    done = _run(tiny, "fail")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr[-3000:]
    assert "NOTES:" in done.stdout and "native runtime: something went wrong here" in done.stdout, done.stdout
    assert "verbose=True or log=PATH" in done.stdout


def test_an_api_call_inside_a_captured_stage_does_not_capture_again(tmp_path):
    """Capture is process-wide: the outer stage sees the inner call's output, once."""
    from tfopt.terminal.capture import Capture, capturing, quiet

    outer = Capture(log=str(tmp_path / "outer.log"))
    try:
        with outer.stage("outer"):
            assert capturing()
            with quiet("inner") as inner:
                assert inner is None
                os.write(1, b"from native code\n")
        assert not capturing()
    finally:
        outer.close()
    assert (tmp_path / "outer.log").read_text() == "== outer\nfrom native code\n"
