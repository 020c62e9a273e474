"""Inputs are read and checked once (issue 26): one conversion reads each user data file from disk
exactly once, whichever stages use it (freeze and optimize verification, the int8 engine's
calibration and measurements, the report's accuracy, a quantization-aware fine-tune), through the
CLI or the API. ``numpy.load`` is wrapped by a counter that calls through (it observes; every read
still happens for real), and the artifacts are compared with the original model.

The model class: ``y = relu(x @ W + b)`` with a generated input name and width, several option
sets that each read the data in a different set of stages.
"""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np
import pytest

from tests.helpers import counting
from tfopt.conversion.convert import convert
from tfopt.errors import OptionError
from tfopt.graph import TensorSpec
from tfopt.loaders import load
from tfopt.runtimes import runner_for

INT8_ATOL = 0.15  # int8 of a one-layer ReLU net with outputs in [0, ~3], against TensorFlow


def _dense(tmp_path, name: str, width: int) -> tuple[str, np.ndarray, np.ndarray]:
    """A SavedModel ``{"y": relu(x @ W + b)}`` whose input is called ``name``."""
    import tensorflow as tf

    rng = np.random.default_rng(width)
    weights = rng.normal(scale=0.5, size=(width, 3)).astype(np.float32)
    bias = rng.normal(scale=0.1, size=3).astype(np.float32)

    class Dense(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name=name)])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, tf.constant(weights)) + tf.constant(bias))}

    module = Dense()
    path = str(tmp_path / f"dense_{width}")
    tf.saved_model.save(module, path, signatures=module.__call__)
    return path, weights, bias


@pytest.fixture
def load_counter():
    """``{realpath: numpy.load calls}``: every read of a data file's arrays."""
    with counting(np, "load") as counts:
        yield counts


CASES = {  # id: (input name, width, convert keywords beyond to/quantize/calibration/eval_data)
    "int8-x-4": ("x", 4, {}),
    "int8-feat-7-default-recipe": ("features", 7, {"report_runs": 1}),
    "int8-in0-5-tfopt-auto-keep-float": ("in0", 5, {"auto_keep_float": 5.0, "report_runs": 1}),
    "int8-pix-6-native-auto-keep-float": ("pix", 6, {"quantizer": "native", "auto_keep_float": 5.0,
                                                      "report_runs": 1}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_data_file_is_read_once_per_conversion(case, tmp_path, load_counter):
    name, width, extra = CASES[case]
    path, weights, bias = _dense(tmp_path, name, width)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, width)).astype(np.float32)
    calibration, eval_data = str(tmp_path / "calib.npz"), str(tmp_path / "eval.npz")
    np.savez(calibration, **{name: x[:32]})
    np.savez(eval_data, **{name: x[32:]}, labels=np.argmax(x[32:] @ weights + bias, -1))
    load_counter.clear()
    out = str(tmp_path / "out")
    result = convert(path, out, to=["tflite"], quantize=["int8"], calibration=calibration, eval_data=eval_data,
                     **extra)
    assert load_counter[os.path.realpath(calibration)] == 1
    assert load_counter[os.path.realpath(eval_data)] == 1
    (artifact,) = result.artifacts
    runner = runner_for("tflite", os.path.join(out, artifact.path), load(path))
    got = np.concatenate([runner({name: x[i:i + 1]})["y"] for i in range(8)])
    np.testing.assert_allclose(got, np.maximum(x[:8] @ weights + bias, 0), atol=INT8_ATOL)


@pytest.mark.parametrize("width", [3, 6])
def test_cli_reads_each_data_file_once(width, tmp_path, load_counter):
    from tfopt import cli

    path, weights, bias = _dense(tmp_path, "inp", width)
    x = np.random.default_rng(width).normal(size=(40, width)).astype(np.float32)
    calibration, eval_data = str(tmp_path / "c.npz"), str(tmp_path / "e.npz")
    np.savez(calibration, inp=x[:20])
    np.savez(eval_data, inp=x[20:], labels=np.argmax(x[20:] @ weights + bias, -1))
    load_counter.clear()
    with counting(zipfile, "is_zipfile") as sniffs:  # the plan's format check, before TensorFlow
        assert cli.main(["convert", path, "-o", str(tmp_path / "out"), "--to", "tflite", "--quantize", "int8",
                         "--calibration", calibration, "--eval-data", eval_data, "--report-runs", "1"]) == 0
    assert load_counter[os.path.realpath(calibration)] == 1
    assert load_counter[os.path.realpath(eval_data)] == 1
    # planned once: each file's format is judged once (the CLI used to plan, then convert planned again)
    assert sniffs[os.path.realpath(calibration)] == 1 and sniffs[os.path.realpath(eval_data)] == 1


SPECS = [TensorSpec("a", "a:0", "float32", (None, 3)), TensorSpec("ids", "ids:0", "int32", (None, 2))]


@pytest.mark.parametrize("arrays, message", [
    ({"a": np.zeros((4, 3), np.float32)}, r"--eval-data .*: missing ids, labels"),
    ({"a": np.zeros((4, 5), np.float32), "ids": np.zeros((4, 2), np.int32), "labels": np.zeros(4)},
     r"input 'a' expects \?x3, the data has shape \(4, 5\)"),
    ({"a": np.zeros((4, 3), np.float32), "ids": np.zeros((4, 2), np.float32), "labels": np.zeros(4)},
     r"input 'ids' is int32, the data is float32"),
    ({"a": np.full((4, 3), np.nan, np.float32), "ids": np.zeros((4, 2), np.int32), "labels": np.zeros(4)},
     r"input 'a' has 12 NaN/Inf"),
    ({"a": np.zeros((4, 3), np.float32), "ids": np.zeros((5, 2), np.int32), "labels": np.zeros(4)},
     r"different sample counts \[4, 5\]"),
], ids=["names", "shape", "dtype", "nonfinite", "counts"])
def test_labeled_data_is_checked_against_the_inputs(arrays, message, tmp_path):
    from tfopt.verification.input_data import read_labeled

    path = str(tmp_path / "d.npz")
    np.savez(path, **arrays)
    with pytest.raises(OptionError, match=message):
        read_labeled(path, SPECS, option="--eval-data")


def test_labeled_data_casts_within_a_kind_and_keeps_labels(tmp_path):
    from tfopt.verification.input_data import read_labeled

    path = str(tmp_path / "d.npz")
    np.savez(path, a=np.ones((4, 3)), ids=np.ones((4, 2), np.int64), labels=np.arange(4), extra=np.zeros(1))
    data = read_labeled(path, SPECS, option="--finetune-data")
    assert {k: v.dtype for k, v in data.inputs.items()} == {"a": np.float32, "ids": np.int32}
    assert data.labels.tolist() == [0, 1, 2, 3] and data.rows(2)["a"].shape == (2, 3)


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a zip", "not a .npz"),
                                              ("npy", "not a .npz")], ids=["missing", "text", "npy"])
def test_a_file_numpy_cannot_read_as_npz_is_refused_by_name(content, message, tmp_path):
    from tfopt.verification.input_data import npz_problem, read_npz

    path = str(tmp_path / "data.npz")
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif content is not None:
        with open(path, "wb") as f:
            f.write(content)
    with pytest.raises(OptionError, match=rf"^--eval-data {re.escape(path)}: {message}"):
        read_npz(path, "--eval-data")
    assert npz_problem(path).startswith(message)  # the plan's check says the same
