"""``--quantizer native``: each converter's own int8 calibration (TFLite's representative dataset,
ONNX Runtime's reader, NNCF's dataset) steps through the whole batches the graph takes, as tfopt's
engine and verification do (:func:`tfopt.verification.data_batches.sample_batches`). Fed one sample a
step, a graph that splits its batch into towers refuses it (ONNX Runtime: "Input cannot be split
evenly"; OpenVINO: an inference error): nothing was written. Generated: ``Split`` into 2 (any multiple
of 2), ``Unpack`` into 3 (exactly 3), ``SplitV`` of constant sizes (exactly their sum), calibration sets
that are no multiple of the batch, every target; and the keep-float search, which calibrates the same way."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tests.verification.test_split_ties import FEATURES, _towers
from tfopt.verification.data_batches import sample_batches

COSINE = 0.98  # int8 of one dense layer against float, any runtime's kernels
CASES = [pytest.param(2, "split", id="split-2"), pytest.param(3, "unpack", id="unpack-3"),
         pytest.param(2, "splitv", id="splitv-2", marks=pytest.mark.slow)]
ROWS = 2  # SplitV's constant rows a tower


def _setup(tmp_path, towers, cut, samples):
    pb = graph_pb(tmp_path / "towers.pb", lambda t: _towers(t, towers=towers, cut=cut, mask=False, rows=ROWS))
    x = np.random.default_rng(towers).normal(size=[samples, FEATURES]).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    return pb, x


@pytest.mark.parametrize(("towers", "cut"), CASES)
def test_batches_are_whole(tmp_path, towers, cut):
    from tfopt.runtimes.tensorflow import GraphRunner

    pb, x = _setup(tmp_path, towers, cut, 13)
    model = tfopt.load(pb, outputs=["y"])
    unit = {"split": towers, "unpack": towers, "splitv": ROWS * towers}[cut]
    batches = sample_batches([{"x": x[i:i + 1]} for i in range(len(x))], GraphRunner(model), model.inputs,
                             model.graph_def)
    assert [len(b["x"]) for b in batches] == [unit] * -(-len(x) // unit)
    joined = np.concatenate([b["x"] for b in batches])
    np.testing.assert_array_equal(joined[:len(x)], x)  # every sample once, in order, then the first ones again
    np.testing.assert_array_equal(joined[len(x):], x[:len(joined) - len(x)])


@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize(("towers", "cut"), CASES)
def test_native_int8_calibrates_towers_in_every_target(tmp_path, towers, cut):
    pb, _ = _setup(tmp_path, towers, cut, 13)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["tflite", "onnx", "openvino"], outputs=["y"],
                           quantize=["int8"], quantizer="native", calibration=str(tmp_path / "calib.npz"), report_runs=1)
    assert not result.failed, result.failed
    rows = result.report["artifacts"]
    assert sorted(r["format"] for r in rows) == ["onnx", "openvino", "tflite"]
    for row in rows:
        assert row["precision"] == "int8" and row["fidelity"]["cosine"] >= COSINE, row


@pytest.mark.usefixtures("one_tf2onnx_child")
def test_the_keep_float_search_calibrates_towers(tmp_path):
    pb, _ = _setup(tmp_path, 2, "split", 9)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           quantizer="native", calibration=str(tmp_path / "calib.npz"), auto_keep_float=100.0,
                           report_runs=1)
    assert not result.failed, result.failed
    assert result.keep_float["onnx/int8"] == [] and result.layer_errors["onnx/int8"]  # ranked, nothing kept
