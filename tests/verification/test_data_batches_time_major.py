"""Given data for a time-major graph (``inputs [time, batch, n]`` beside ``seq_lengths [batch]`` and,
in some cases, a state ``[1, batch, h]``) is cut into rows on each input's batch axis, not axis 0,
everywhere data is split (the data's checks, calibration samples, the rows verification runs on, the
report's batches). Generated: several (time, batch) sizes, with and without the state. The expected
accuracy is computed sample by sample from the original graph, each sample cut by the test itself."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tfopt.graph import TensorSpec
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.calibration import load_calibration

FEATURES, STATE, CLASSES = 4, 3, 5
ATOL = 1e-5  # float32 sums over a few terms, any runtime
CASES = [(6, 5, False), (3, 7, True), (9, 4, True)]
IDS = [f"t{t}-b{b}{'-state' if s else ''}" for t, b, s in CASES]


def _time_major(t, *, state: bool):
    """``y [batch, CLASSES]``: the mean over each sequence's first ``seq_lengths`` steps of ``inputs``
    (and the state), through a dense layer."""
    v1 = t.compat.v1
    rng = np.random.default_rng(7)
    x = v1.placeholder(t.float32, [None, None, FEATURES], name="inputs")
    n = v1.placeholder(t.int32, [None], name="seq_lengths")
    mask = t.transpose(t.sequence_mask(n, maxlen=t.shape(x)[0], dtype=t.float32))  # [time, batch]
    pooled = t.reduce_sum(x * mask[:, :, None], axis=0) / t.cast(t.maximum(n, 1), t.float32)[:, None]
    if state:
        h = v1.placeholder(t.float32, [1, None, STATE], name="state")
        pooled = t.concat([pooled, h[0]], axis=-1)
    w = t.constant(rng.normal(size=[FEATURES + STATE * state, CLASSES]).astype(np.float32))
    t.identity(t.matmul(pooled, w), name="y")


def _data(time: int, batch: int, state: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(time * batch)
    data = {"inputs": rng.normal(size=[time, batch, FEATURES]).astype(np.float32),
            "seq_lengths": rng.integers(1, time + 1, size=[batch]).astype(np.int32)}
    if state:
        data["state"] = rng.normal(size=[1, batch, STATE]).astype(np.float32)
    return data


def _sample(data: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: v[i:i + 1] if k == "seq_lengths" else v[:, i:i + 1] for k, v in data.items()}


@pytest.mark.parametrize(("time", "batch", "state"), CASES, ids=IDS)
def test_calibration_samples_are_cut_on_the_batch_axis(tmp_path, time, batch, state):
    data = _data(time, batch, state)
    np.savez(tmp_path / "calib.npz", **data)
    specs = [TensorSpec("inputs", "inputs:0", "float32", (None, None, FEATURES)),
             TensorSpec("seq_lengths", "seq_lengths:0", "int32", (None,))]
    specs += [TensorSpec("state", "state:0", "float32", (1, None, STATE))] if state else []
    samples = load_calibration(str(tmp_path / "calib.npz"), specs)
    assert len(samples) == batch
    for i, sample in enumerate(samples):
        for name, value in _sample(data, i).items():
            np.testing.assert_array_equal(sample[name], value)


@pytest.mark.parametrize(("time", "batch", "state"), CASES, ids=IDS)
def test_time_major_eval_data_converts_and_every_sample_counts(tmp_path, time, batch, state):
    pb = graph_pb(tmp_path / "tm.pb", lambda t: _time_major(t, state=state))
    data = _data(time, batch, state)
    original = GraphRunner(tfopt.load(pb, outputs=["y"]))
    scores = np.concatenate([original(_sample(data, i))["y"] for i in range(batch)])
    labels = scores.argmax(-1)
    labels[0] = (labels[0] + 1) % CLASSES  # one wrong: the accuracy says which samples were counted
    np.savez(tmp_path / "eval.npz", labels=labels, **data)
    np.savez(tmp_path / "calib.npz", **data)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], eval_data=str(tmp_path / "eval.npz"),
                           calibration=str(tmp_path / "calib.npz"), report_runs=1)
    assert result.verified_at.shapes()["inputs"] == [time, min(batch, 8), FEATURES]  # rows on axis 1
    report = result.report
    assert report["samples"] == batch
    expected = 100.0 * (batch - 1) / batch
    assert report["reference"]["accuracy"]["top1"] == pytest.approx(expected)
    (row,) = report["artifacts"]
    assert row["accuracy"]["top1"] == pytest.approx(expected)
    assert row["fidelity"]["max_abs_err"] <= ATOL


INT8_SCALED = 0.05  # int8 of one dense layer over means: error / (1 + max|y|), a few 8-bit steps


@pytest.mark.parametrize(("time", "batch"), [(6, 20), (4, 9)], ids=["t6-b20", "t4-b9"])
def test_time_major_calibration_feeds_the_int8_engine(tmp_path, time, batch):
    """tfopt's int8 engine takes its statistics, equalization and bias correction from calibration
    samples cut and joined on the batch axis (a state ``[1, batch, h]`` has a static axis 0 of 1)."""
    pb = graph_pb(tmp_path / "tm.pb", lambda t: _time_major(t, state=True))
    np.savez(tmp_path / "calib.npz", **_data(time, batch, True))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           calibration=str(tmp_path / "calib.npz"), report_runs=1)
    (row,) = result.report["artifacts"]
    assert row["precision"] == "int8" and result.int8 is not None, result.failed
    assert result.report["samples"] == min(batch, 32)  # the report's calibration rows, on axis 1
    assert row["fidelity"]["scaled_err"] <= INT8_SCALED
