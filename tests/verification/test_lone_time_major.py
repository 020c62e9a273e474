"""A model whose one input is time-major, ``x [time, batch, F]``, with nothing to tie its batch to
(no lengths, no state input): the graph's structure names axis 1 as the batch (a loop over axis 0
beside a zero state sized by axis 1; a transpose that brings axis 1 to the outputs' axis 0), so the
calibration samples, the rows verification runs on and the report's samples are cut on axis 1.

Generated: five ways of reading the input (TF1 ``dynamic_rnn`` with v1 control flow, a v2
``tf.while_loop`` over ``TensorArray.unstack``, ``tf.unstack`` over a static time, a transpose to
batch-major, a Keras 2 ``GRU(time_major=True)``) x formats (frozen .pb, TF1 checkpoint, SavedModel)
x a static or unknown time, every target, numbers against TensorFlow. Time and batch differ (7 vs
11), so a cut on the wrong axis changes the sample count."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tests.helpers import keras2_builds
from tfopt.verification.calibration import load_calibration

BUILDER = os.path.join(os.path.dirname(__file__), "time_major_builds.py")
TIME, BATCH, F = 7, 11, 4
ATOL = 1e-5  # float32 recurrences of a few steps, any runtime
# Not here, failing apart from the batch axis (found by this test): a TF1 checkpoint whose v2 while_loop reads
# variables ("variable 'u' is still in the frozen graph"), and a frozen .pb's v2 while_loop in ONNX (the full
# checker's Loop shape inference; the same on main).
CASES = [("dynamic_rnn", "pb", 0), ("keras", "savedmodel", 0), ("dynamic_rnn", "ckpt", 0), ("transpose", "savedmodel", 0),
         ("unstack", "pb", TIME), ("dynamic_rnn", "savedmodel", TIME), ("loop", "savedmodel", 0), ("unstack", "ckpt", TIME),
         ("transpose", "ckpt", 0)]
FAST = CASES[:2]
PARAMS = [pytest.param(c, id="-".join(map(str, c)), marks=() if c in FAST else pytest.mark.slow) for c in CASES]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return keras2_builds(BUILDER, tmp_path_factory.mktemp("time_major"), FAST,
                         lambda case, path: [path + (".pb" if case[1] == "pb" else ""), *case])


def _path(built, case) -> tuple[str, dict]:
    path = built(case)
    if case[1] == "pb":
        return path + ".pb", {"outputs": ["y"]}
    if case[1] == "ckpt":
        return os.path.join(path, "model"), {"outputs": ["y"]}
    return path, {}


@pytest.mark.parametrize("case", PARAMS)
def test_the_structure_names_axis_1(built, case):
    path, kw = _path(built, case)
    (spec,) = tfopt.load(path, **kw).inputs
    assert spec.batch_axis == 1, spec


@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize("case", PARAMS)
def test_samples_are_cut_on_axis_1_in_every_target(built, case, tmp_path):
    path, kw = _path(built, case)
    x = np.random.default_rng(len(case[0])).normal(size=[TIME, BATCH, F]).astype(np.float32)
    (spec,) = tfopt.load(path, **kw).inputs
    np.savez(tmp_path / "calib.npz", **{spec.name: x})
    samples = load_calibration(str(tmp_path / "calib.npz"), [spec])
    assert len(samples) == BATCH
    for i, sample in enumerate(samples):
        np.testing.assert_array_equal(sample[spec.name], x[:, i:i + 1])
    result = tfopt.convert(path, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"],
                           calibration=str(tmp_path / "calib.npz"), report_runs=1, **kw)
    shape = result.verified_at.shapes()[spec.name]
    assert shape[0] == TIME and shape[2] == F  # the rows verification runs on: on axis 1
    assert result.report["samples"] == BATCH
    built_formats = {a["format"] for a in result.report["artifacts"]}
    assert {"onnx", "openvino"} <= built_formats, result.failed
    assert all(f.stage == "converting" for f in result.failed), result.failed  # TFLite: v1 TensorArrays
    for row in result.report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row
        fixed = (row.get("fixed_shapes") or {}).get(spec.name)
        if fixed:  # TFLite's retry pins the batch, on axis 1: the time stays as the model has it
            assert fixed == [spec.shape[0] or -1, 1, F], fixed
