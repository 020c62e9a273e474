"""The rows the lossy passes fit on: the first FIT_ROWS calibration samples, whatever their count; without
calibration, the first FIT_ROWS rows of the eval data (not the few rows every stage is verified on)."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.conversion.pipeline import FIT_ROWS, calibration_rows
from tfopt.graph import Model, TensorSpec
from tfopt.verification.verify_inputs import VerifyData


def _model():
    return Model(graph_def=None, inputs=[TensorSpec("a", "a:0", "float32", (None, 3)),
                                         TensorSpec("b", "b:0", "float32", (None, 2))], outputs=[])


@pytest.mark.parametrize("count", [1, FIT_ROWS - 1, FIT_ROWS, 3 * FIT_ROWS])
@pytest.mark.parametrize("lazy", [False, True], ids=["samples", "loaded-lazily"])
def test_calibration_rows_are_the_first_fit_rows_samples(count, lazy):
    rng = np.random.default_rng(count)
    samples = [{"a": rng.normal(size=(1, 3)), "b": rng.normal(size=(1, 2))} for _ in range(count)]
    data = VerifyData(calibration=(lambda specs: samples) if lazy else samples)
    rows = calibration_rows(data, _model())
    assert sorted(rows) == ["a", "b"] and len(rows["a"]) == len(rows["b"]) == min(count, FIT_ROWS)
    np.testing.assert_array_equal(rows["a"], np.concatenate([s["a"] for s in samples[:FIT_ROWS]]))


@pytest.mark.parametrize("data", [None, VerifyData(), VerifyData(calibration=[])], ids=["none", "no-data", "empty"])
def test_no_calibration_no_rows(data):
    assert calibration_rows(data, _model()) is None


def test_samples_of_another_shape_are_left_out():
    """Variable-length samples: only those shaped as the first one stack."""
    rng = np.random.default_rng(0)
    samples = [{"a": rng.normal(size=(1, 3 if i % 3 else 5)), "b": rng.normal(size=(1, 2))} for i in range(10)]
    rows = calibration_rows(VerifyData(calibration=samples), _model())
    assert rows["a"].shape == (4, 5) and rows["b"].shape == (4, 2)


@pytest.mark.parametrize("count", [1, FIT_ROWS - 1, 3 * FIT_ROWS])
@pytest.mark.parametrize("form", ["read", "file"])
def test_without_calibration_the_eval_data_rows(tmp_path, count, form):
    """``--cluster N --eval-data X`` alone: the clusters fit on up to FIT_ROWS rows of X, as with
    ``--calibration`` (read by the conversion, or a file's path); calibration still comes first."""
    rng = np.random.default_rng(count)
    arrays = {"a": rng.normal(size=(count, 3)).astype(np.float32), "b": rng.normal(size=(count, 2)).astype(np.float32)}
    np.savez(tmp_path / "eval.npz", labels=np.zeros(count), **arrays)
    source = (lambda specs: arrays) if form == "read" else str(tmp_path / "eval.npz")
    rows = calibration_rows(VerifyData(eval_data=source), _model())
    assert sorted(rows) == ["a", "b"]
    for name, value in arrays.items():
        np.testing.assert_array_equal(rows[name], value[:FIT_ROWS])
    calibration = [{"a": np.ones((1, 3)), "b": np.ones((1, 2))}]
    assert len(calibration_rows(VerifyData(eval_data=source, calibration=calibration), _model())["a"]) == 1
