"""A converter's own calibration runs the graph on the calibration batches first (bounded, in TensorFlow) where an
input reaches a loop; that run is made once per conversion, shared by every target whose converter calibrates
(:mod:`tfopt.conversion.calibration_batches`), not once per target (issue 24).

Generated models: ``y = loop(x @ W)``, a ``tf.while_loop`` carrying ``h = 0.9 h + 0.1`` whose trip count comes from
the input's values (it ends on the calibration data), converted natively to int8 in two targets (TFLite's calibrator and ONNX Runtime's).
The TensorFlow runs made inside a calibration stage are counted by a wrapper around the bounded runner (every run
still happens); each batch runs there once (before: once per target). The artifacts are still verified against the
original: the report's scaled error (max |error| / (1 + max |y|)) within 5%; measured ~0.4-1%.

(A loop that carries only a float counter beside the layer, ``x @ W + count``, crashes TFLite's int8 calibrator
with a segmentation fault in TensorFlow 2.21: not the loop this test needs.)"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function
from tfopt.targets import TABLE

W = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
TARGETS = ["tflite", "onnx"]  # two converters that calibrate in process
INT8_SCALED = 0.05  # int8's max |error| / (1 + max |y|): measured, not bounded, by verification


def _steps(t, x, per: float):
    """``h = x @ W``, then ``h = 0.9 h + 0.1`` ``int(max|x| * per)`` times (a trip count from the values fed)."""
    n = t.cast(t.reduce_max(t.abs(x)) * per, t.int32)
    return t.while_loop(lambda i, h: i < n, lambda i, h: (i + 1, h * 0.9 + 0.1), [t.constant(0), t.matmul(x, W)])[1]


# One trip-count rate and one calibration size in the fast lane: the other rate and size are the same
# sharing (each batch run once for both targets) at other numbers, in the slow lane.
@pytest.fixture(scope="module", params=[2.0, pytest.param(3.0, marks=pytest.mark.slow)], ids=["2-per-unit", "3-per-unit"])
def looping(request, tmp_path_factory):
    from tfopt._tf import tf

    t = tf()
    return saved_function(tmp_path_factory.mktemp("loop") / "saved",
                          lambda x: {"y": _steps(t, x, request.param)},
                          [t.TensorSpec([None, 3], t.float32, name="x")])


@pytest.fixture
def calibration_runs(monkeypatch):
    """``{x's bytes: TensorFlow runs}`` made inside a converter's calibration stage."""
    from tfopt.runtimes.bounded_stage import current
    from tfopt.verification.deadline import BoundedReference

    counts: collections.Counter[bytes] = collections.Counter()
    real = BoundedReference.__call__

    def counted(self, feeds):
        if " calibration of " in current().name:
            counts[np.asarray(feeds["x"]).tobytes()] += 1
        return real(self, feeds)

    monkeypatch.setattr(BoundedReference, "__call__", counted)
    return counts


@pytest.mark.parametrize("rows", [5, pytest.param(8, marks=pytest.mark.slow)])
def test_the_graph_runs_the_calibration_batches_once_for_every_calibrating_target(looping, tmp_path, rows,
                                                                                  calibration_runs):
    if not all(TABLE[t].available() for t in TARGETS):
        pytest.skip("the tflite and onnx extras are needed")
    x = np.random.default_rng(rows).uniform(1.0, 2.0, (rows, 3)).astype(np.float32)
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=x)
    result = tfopt.convert(looping, str(tmp_path / "out"), to=TARGETS, quantize=["int8"], calibration=data,
                           quantizer="native", verify_timeout=120)
    assert not result.failed, [f.reason for f in result.failed]
    assert sorted(a.format for a in result.artifacts) == sorted(TARGETS)
    # every calibration batch (here each sample: the graph takes any batch) ran once, for both targets
    assert sorted(calibration_runs) == sorted(row[None].tobytes() for row in x)
    assert set(calibration_runs.values()) == {1}, sorted(calibration_runs.values())
    for artifact in result.artifacts:  # still verified against the original
        assert artifact.max_abs_err is not None, artifact
    rows = {row["format"]: row for row in result.report["artifacts"]}
    for target in TARGETS:  # the report's error on every sample, in the output's units
        assert rows[target]["fidelity"]["scaled_err"] <= INT8_SCALED, rows[target]["fidelity"]


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """``y = x @ W + loop(x)``: a loop that steps while every |x| > 0 (calibration values never end it)."""
    from tfopt._tf import tf

    t = tf()

    def loop(x):
        return t.while_loop(lambda i, v: t.reduce_min(t.abs(v)) > 0.0, lambda i, v: (i + 1.0, v), [t.constant(0.0), x])[0]

    return saved_function(tmp_path_factory.mktemp("endless") / "saved", lambda x: {"y": t.matmul(x, W) + loop(x)},
                          [t.TensorSpec([None, 3], t.float32, name="x")])


def test_a_calibration_run_past_the_bound_fails_every_calibrating_target_naming_each(endless, tmp_path,
                                                                                     calibration_runs):
    """The graph's run on the first calibration batch outlives the bound once; both native int8 targets fail alone
    (``converting``), each error naming its own target's calibration; the fp32 artifacts are written."""
    if not all(TABLE[t].available() for t in TARGETS):
        pytest.skip("the tflite and onnx extras are needed")
    data = str(tmp_path / "calibration.npz")
    np.savez(data, x=np.random.default_rng(0).uniform(1.0, 2.0, (4, 3)).astype(np.float32))
    result = tfopt.convert(endless, str(tmp_path / "out"), to=TARGETS, quantize=["fp32", "int8"], calibration=data,
                           quantizer="native", verify=False, verify_timeout=1.0)
    assert sorted(a.format for a in result.artifacts) == sorted(TARGETS)
    failed = {f.format: f for f in result.failed}
    assert sorted(failed) == sorted(TARGETS) and {f.stage for f in failed.values()} == {"converting"}
    for target, failure in failed.items():
        assert f"the int8 calibration of {target} " in failure.reason and endless in failure.reason, failure.reason
        assert "--verify-timeout" in failure.reason and "'x'" in failure.reason, failure.reason
    assert sum(calibration_runs.values()) == 1, calibration_runs  # the run that outlived the bound, once
