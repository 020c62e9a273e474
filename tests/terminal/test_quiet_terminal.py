"""A quiet terminal: tfopt's own lines only; the converters' output captured per stage, shown with
--verbose, written to --log, and shown as the failing stage's tail."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tfopt.errors import OptionError
from tfopt.terminal.capture import Capture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOREIGN = [re.compile(p) for p in (
    r"absl::InitializeLog", r"cudart_stub|cuda drivers|cuInit|TensorRT", r"^[IWEF]\d{4} \d\d:\d\d",
    r"XNNPACK", r"fully_quantize|inference_type|input_inference_type", r"^(WARNING|INFO|ERROR):(root|absl|tensorflow)",
    r"pre-processing|onnx\.quantization|opset", r"Statistics collection|Applying Fast Bias correction|NNCF|nncf",
    r"\d+%\|", r"━", r"tensorflow/core|tensorflow/compiler", r"oneDNN", r"DeprecationWarning|UserWarning",
)]
# tfopt's own line shapes: progress, the report table, the files written, errors.
OWN = [re.compile(p) for p in (
    r"^  \.\.\. ", r"^  \d+/\d+ \w", r"^\s*format\s+precision", r"^\s*(tflite|onnx|openvino|pb|savedmodel)\s+\S+\s",
    r"^original model: ", r"^wrote    ", r"^skipped  ", r"^tfopt: ", r"^  \| ", r"^FAILED   ", r"^verified at ",
    r"^int8     ", r"^note     ",
)]


def _tfopt(*argv: str, cwd: str = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # TensorFlow's default: INFO
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-m", "tfopt", *argv], capture_output=True, text=True, env=env, cwd=cwd)


def _foreign(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(p.search(line) for p in FOREIGN) and not line.startswith("  | ")]


@pytest.mark.slow
def test_convert_prints_only_tfopt_lines(digits_model, tmp_path):
    result = _tfopt("convert", digits_model["path"], "-o", str(tmp_path / "out"), "--to", "tflite,onnx,openvino",
                    "--quantize", "none,int8", "--calibration", digits_model["calib"], "--report-runs", "2",
                    "--log", str(tmp_path / "convert.log"))
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert not _foreign(text), _foreign(text)
    strangers = [line for line in text.splitlines() if line.strip() and not any(p.search(line) for p in OWN)]
    assert not strangers, strangers
    log = (tmp_path / "convert.log").read_text()
    assert "== loading" in log and "== onnx int8" in log  # nothing lost: every stage's output, by stage


@pytest.mark.slow
def test_verbose_shows_what_was_captured(digits_model, tmp_path):
    result = _tfopt("--verbose", "convert", digits_model["path"], "-o", str(tmp_path / "out"), "--to", "tflite",
                    "--quantize", "int8", "--calibration", digits_model["calib"], "--no-verify")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("  | ") for line in result.stderr.splitlines()), result.stderr


# The fast lane: tests/test_cli_errors.py's test_a_failing_stage_tail_shows_the_reason_not_the_preamble
# asserts this on its own run (the same command, a data reader writing this line and the preamble).
@pytest.mark.slow
def test_a_failing_stage_shows_its_captured_tail(digits_model, tmp_path):
    (tmp_path / "noisy_data.py").write_text(
        "import os\n\ndef samples():\n    os.write(2, b'native noise from the data reader\\n')\n"
        "    raise ValueError('no data today')\n")
    result = _tfopt("convert", digits_model["path"], "-o", str(tmp_path / "out"), "--to", "tflite", "--quantize",
                    "int8", "--calibration", "noisy_data:samples", cwd=str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("tfopt: error") or "internal error" in line)
    assert "  | native noise from the data reader" in lines[error + 1:]
    assert not _foreign(result.stdout + result.stderr)


def test_stage_captures_native_and_python_output(capfd, tmp_path):
    capture = Capture(log=str(tmp_path / "log.txt"))
    with capture.stage("quiet work"):
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        print("python print", file=sys.__stdout__, flush=True)  # pytest swaps sys.stdout itself
    capture.close()
    out, err = capfd.readouterr()
    assert "native" not in out + err and "python print" not in out + err
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert log[0] == "== quiet work"  # then both streams' lines (two pipes: in either order)
    assert sorted(log[1:]) == ["native stderr", "native stdout", "python print"]


def test_stage_failure_carries_the_tail_and_verbose_echoes(capfd):
    capture = Capture()
    with pytest.raises(OptionError) as info, capture.stage("doomed"):
        os.write(2, b"why it failed\n")
        raise OptionError("bad")
    assert info.value.captured_tail == ("doomed", ["why it failed"])  # type: ignore[attr-defined]
    capture.close()
    loud = Capture(verbose=True)
    with loud.stage("loud"):
        os.write(2, b"shown live\n")
    loud.close()
    assert "  | shown live" in capfd.readouterr().err
