"""Errors that point at the fix (issue 24, class 12): the suggested ``tfopt debug`` command carries
the user's load and freeze options and runs as printed; ``debug compare`` takes the freeze options;
the captured tail under an error drops TensorFlow's start-up preamble (one test per pattern);
``--debug`` keeps the exit code; ``verify`` against a reference with other outputs is a typed error."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import graph_pb
from tfopt.cli import main
from tfopt.errors import PARTIAL_EXIT_CODE, ModelNotFoundError, OptionError, OutputMismatchError
from tfopt.terminal.capture import PREAMBLE, Capture, explains, print_captured_tail

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _two_heads(tf, width: int = 4):
    """``y = erf(x @ W * keep_prob)`` (TFLite's builtins lack Erf) beside a second sink ``z``: the
    conversion needs ``--outputs y`` and ``--set keep_prob=1.0``."""
    x = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
    keep_prob = tf.compat.v1.placeholder(tf.float32, [], name="keep_prob")
    h = tf.matmul(x, tf.constant(np.random.default_rng(width).normal(size=(width, 3)).astype(np.float32))) * keep_prob
    tf.math.erf(h, name="y")
    tf.identity(h * 2.0, name="z")


USER_FLAGS = ["--outputs", "y", "--inputs", "x:?x4", "--set", "keep_prob=1.0"]


def test_the_suggested_reduce_carries_the_users_options_and_runs(tmp_path, capsys, monkeypatch):
    model = graph_pb(tmp_path / "heads.pb", _two_heads)
    out = tmp_path / "out"
    assert main(["convert", model, "-o", str(out), "--to", "tflite,pb", "--report-runs", "1", *USER_FLAGS]) \
        == PARTIAL_EXIT_CODE
    with open(out / "manifest.json") as f:
        (failed,) = json.load(f)["failed"]
    command = next(line.split(": ", 1)[1] for line in failed["reason"].splitlines() if "tfopt debug" in line)
    argv = shlex.split(command)
    assert argv[:3] == ["tfopt", "debug", "reduce"]
    for flag, value in zip(USER_FLAGS[::2], USER_FLAGS[1::2]):
        assert argv[argv.index(flag) + 1] == value, command
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # the command writes reduce-tflite-fp32 where it runs
    assert main(argv[1:]) == 0, capsys.readouterr().err
    assert "-> 1 op(s): y" in capsys.readouterr().out


def test_debug_compare_takes_the_freeze_options(tmp_path, capsys):
    model = graph_pb(tmp_path / "heads.pb", _two_heads)
    assert main(["debug", "compare", model, "--to", "openvino", *USER_FLAGS, "-o", str(tmp_path / "cmp")]) == 0, \
        capsys.readouterr().err
    with open(tmp_path / "cmp" / "compare.json") as f:
        result = json.load(f)
    assert [a["target"] for a in result["artifacts"]] == ["openvino"]


# One line TensorFlow (XLA, cuDNN, absl) really prints at start-up per pattern of PREAMBLE.
PREAMBLE_LINES = {
    "absl": "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "cudart": "I0000 00:00:1796554404.008843   22533 cudart_stub.cc:31] Could not find cuda drivers on your "
              "machine, GPU will not be used.",
    "cuInit": "E0000 00:00:1796554427.314724   22533 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
              "error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "gpu-libraries": "W0000 00:00:1700000000.000000    1234 gpu_device.cc:2344] Cannot dlopen some GPU libraries. "
                     "Please make sure the missing libraries mentioned above are installed properly. Skipping "
                     "registering GPU devices...",
    "cuda-factory": "E0000 00:00:1700000000.000000    1234 cuda_dnn.cc:8310] Unable to register cuDNN factory: "
                    "Attempting to register factory for plugin cuDNN when one has already been registered",
    "tensorrt": "W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not find TensorRT",
    "computation-placer": "W0000 00:00:1700000000.000000    1234 computation_placer.cc:177] computation placer "
                          "already registered. Please check linkage and avoid linking the same target more than once.",
    "oneDNN": "I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see slightly different "
              "numerical results due to floating-point round-off errors from different computation orders. To turn "
              "them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "cpu-features": "I0000 00:00:1796554404.212199   22533 cpu_feature_guard.cc:227] This TensorFlow binary is "
                    "optimized to use available CPU instructions in performance-critical operations.",
}
REASON = "ValueError: the calibration reader found no images in /data/cal"


def test_every_preamble_pattern_has_a_line():
    assert set(PREAMBLE_LINES) == {name for name, _ in PREAMBLE}


@pytest.mark.parametrize("name", sorted(PREAMBLE_LINES))
def test_the_tail_drops_the_preamble(name, capfd):
    line = PREAMBLE_LINES[name]
    assert not explains(line) and explains(REASON)
    capture = Capture()
    with pytest.raises(OptionError) as info, capture.stage("converting"):
        os.write(2, f"{line}\n{REASON}\n{line}\n".encode())
        raise OptionError("bad")
    capture.close()
    assert info.value.captured_tail == ("converting", [REASON])  # type: ignore[attr-defined]
    info.value.captured_tail = ("converting", [line, REASON])  # type: ignore[attr-defined]
    print_captured_tail(info.value, sys.stdout)
    shown = capfd.readouterr().out
    assert f"  | {REASON}" in shown and line not in shown


def test_a_tail_of_preamble_only_is_not_shown(capfd):
    exc = OptionError("bad")
    exc.captured_tail = ("loading", list(PREAMBLE_LINES.values()))  # type: ignore[attr-defined]
    print_captured_tail(exc, sys.stdout)
    assert capfd.readouterr().out == ""


def _tfopt(*argv: str, cwd: str = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # TensorFlow's default: INFO
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-m", "tfopt", *argv], capture_output=True, text=True, env=env, cwd=cwd)


def test_a_failing_stage_tail_shows_the_reason_not_the_preamble(digits_model, tmp_path):
    """Also tests/terminal/test_quiet_terminal.py's (slow) test_a_failing_stage_shows_its_captured_tail,
    in the same run: the native line under the error, and nothing else foreign printed."""
    from tests.terminal.test_quiet_terminal import _foreign

    noise = "".join(f"    os.write(2, {line!r}.encode() + b'\\n')\n" for line in PREAMBLE_LINES.values())
    (tmp_path / "noisy_data.py").write_text(
        f"import os\n\ndef samples():\n{noise}    os.write(2, b'native noise from the data reader\\n')\n"
        "    os.write(2, b'no images in /data/cal\\n')\n    raise ValueError('no data today')\n")
    result = _tfopt("convert", digits_model["path"], "-o", str(tmp_path / "out"), "--to", "tflite", "--quantize",
                    "int8", "--calibration", "noisy_data:samples", cwd=str(tmp_path))
    assert result.returncode != 0
    tail = [line for line in result.stderr.splitlines() if line.startswith("  | ")]
    assert "  | no images in /data/cal" in tail, result.stderr
    assert all(explains(line) for line in tail), tail
    lines = result.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("tfopt: error") or "internal error" in line)
    assert "  | native noise from the data reader" in lines[error + 1:]
    assert not _foreign(result.stdout + result.stderr)


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_debug_keeps_the_exit_code(debug, tmp_path):
    result = _tfopt(*debug, "convert", str(tmp_path / "missing.pb"), "-o", str(tmp_path / "out"))
    assert result.returncode == ModelNotFoundError.exit_code, result.stderr
    assert ("Traceback (most recent call last)" in result.stderr) == bool(debug)
    assert "tfopt: error:" in result.stderr and "missing.pb" in result.stderr


def _plain_heads(tf):
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    h = tf.matmul(x, tf.constant(np.ones((3, 2), np.float32)))
    tf.identity(h, name="y")
    tf.identity(h * 2.0, name="z")


def test_verify_against_a_reference_with_other_outputs_names_both(tmp_path, capsys):
    model = graph_pb(tmp_path / "heads.pb", _plain_heads)
    out = str(tmp_path / "out")
    assert main(["convert", model, "-o", out, "--to", "pb", "--outputs", "y", "--report-runs", "1"]) == 0
    capsys.readouterr()
    assert main(["verify", out, "--reference", model, "--outputs", "z", "--report-runs", "1"]) \
        == OutputMismatchError.exit_code == OptionError.exit_code
    err = capsys.readouterr().err
    assert "['z']" in err and "['y']" in err and "--outputs y" in err and "internal error" not in err
