"""Every convert option checkable without the model fails at once: exit 2, before TensorFlow is
imported (the fast part; how fast is a benchmark's business, not a timed test's)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tfopt.conversion.checks import check_options
from tfopt.errors import OptionError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = ("import sys\nfrom tfopt import cli\ntry:\n    code = cli.main(sys.argv[1:])\n"
         "except SystemExit as exc:  # argparse's own range check\n    code = exc.code\n"
         "print('tensorflow imported' if 'tensorflow' in sys.modules else 'tensorflow not imported')\nsys.exit(code)")


@pytest.fixture
def files(tmp_path):
    return _write_files(tmp_path)


def _write_files(directory):
    """A 'model' that is never read as one (the checks must not need it), and data files."""
    (directory / "model.pb").write_bytes(b"\x0a\x05float graph bytes")
    np.savez(directory / "calib.npz", x=np.zeros((2, 3), np.float32))
    (directory / "fake.npz").write_text("not a zip")
    (directory / "calib.csv").write_text("1,2,3")
    return directory


CASES = {
    "int8-without-calibration": (["--quantize", "int8"], "needs calibration data"),
    "int16x8-without-calibration": (["--to", "tflite", "--quantize", "int16x8"], "needs calibration data"),
    "missing-calibration": (["--quantize", "int8", "--calibration", "{d}/nope.npz"], "nope.npz: no such file"),
    "calibration-format": (["--quantize", "int8", "--calibration", "{d}/calib.csv"], "expected a .npz"),
    "calibration-not-npz": (["--quantize", "int8", "--calibration", "{d}/fake.npz"], "not a .npz"),
    "calibration-bad-callable": (["--quantize", "int8", "--calibration", "module:"], "package.module:function"),
    "accuracy-control-without-eval-data": (["--to", "openvino", "--quantize", "int8", "--calibration", "{d}/calib.npz",
                                            "--accuracy-control", "0.01"], "needs --eval-data"),
    "accuracy-control-without-openvino-int8": (["--to", "tflite", "--accuracy-control", "0.01", "--eval-data",
                                                "{d}/calib.npz"], "add openvino to --to and int8"),
    "metric-without-eval-data": (["--metric", "mod:fn"], "needs --eval-data"),
    "missing-eval-data": (["--eval-data", "{d}/none.npz"], "none.npz: no such file"),
    "bad-gate": (["--fail-if", "accuracy_drop >> 1"], "--fail-if"),
    "unknown-target": (["--to", "tensorrt"], "--to tensorrt: choose from"),
    "unknown-precision": (["--quantize", "int4"], "--quantize int4: choose from"),
    "unsupported-pair": (["--to", "openvino", "--quantize", "int16x8"], "openvino has no int16x8 mode"),
    "opset": (["--to", "onnx", "--opset", "99"], "--opset 99"),
    "report-runs": (["--report-runs", "0"], "--report-runs 0: must be an integer >= 1"),
    "auto-keep-float-without-int8": (["--to", "tflite", "--auto-keep-float", "1"], "add int8 to --quantize"),
}


# Every case of CASES, one after the other in one process (one interpreter start for them all, not one
# each): its exit code, what it printed to stderr, and whether TensorFlow was imported by then (once
# imported, it stays: a case that imports it fails, and so does every case after it).
PROBE_ALL = """
import contextlib, io, json, sys
from tfopt import cli
done = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own range check
            code = exc.code
    done[name] = {"code": code, "stderr": err.getvalue(), "tensorflow": "tensorflow" in sys.modules}
print(json.dumps(done))
"""


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Each case run by ``tfopt convert`` on its own files: case -> (its files, what PROBE_ALL saw)."""
    import json

    root, jobs = tmp_path_factory.mktemp("checks"), {}
    for name, (argv, _) in CASES.items():
        d = root / name
        d.mkdir()
        _write_files(d)
        jobs[name] = ["convert", str(d / "model.pb"), "-o", str(d / "out"), *(a.format(d=d) for a in argv)]
    result = subprocess.run([sys.executable, "-c", PROBE_ALL, json.dumps(jobs)], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout.strip().splitlines()[-1])
    return {name: (root / name, done[name]) for name in CASES}


@pytest.mark.parametrize(("case", "message"), [(name, message) for name, (_, message) in CASES.items()], ids=list(CASES))
def test_bad_option_fails_fast_without_tensorflow(probed, case, message):
    files, result = probed[case]
    assert result["code"] == 2, result["stderr"]
    assert message in result["stderr"]
    assert not result["tensorflow"]
    assert not (files / "out").exists()


def test_unwritable_output_fails_fast(files):
    result = subprocess.run([sys.executable, "-c", PROBE, "convert", str(files / "model.pb"), "-o",
                             str(files / "no" / "such" / "dir")], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 8 and "does not exist" in result.stderr
    assert result.stdout.strip().endswith("tensorflow not imported")


@pytest.mark.parametrize("marker", [b"QuantizeWrapperV2", b"FakeQuantWithMinMaxVars"])
def test_a_possibly_quantization_aware_model_may_skip_calibration(files, marker):
    """Its fake-quant ranges replace calibration: decided for sure after loading, not here."""
    (files / "qat.h5").write_bytes(b"\x89HDF\r\n" + b"." * 5000 + marker + b"...")
    pairs, _ = check_options(str(files / "qat.h5"), str(files / "out"), to=["tflite"], quantize=["int8"])
    assert pairs == [("tflite", "int8")]
    with pytest.raises(OptionError, match="needs calibration data"):
        check_options(str(files / "model.pb"), str(files / "out"), to=["tflite"], quantize=["int8"])
