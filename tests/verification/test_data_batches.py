"""Given data fed to a graph that splits its batch into towers goes in whole batches the graph takes,
and the report's accuracy counts every sample once. Generated: N in {2, 3} towers cut by ``Split``
(batch a multiple of N), ``SplitV`` of constant sizes (batch = their sum) and ``Unpack`` (batch = N),
and eval sets whose size is no multiple of the batch the graph takes (so the last batch is completed
and its extra rows dropped). The expected accuracy is computed row by row from the original graph,
each row fed in a batch of its own copies: independent of how tfopt batches."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tests.verification.test_split_ties import FEATURES, _towers
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.data_batches import batch_unit, whole_batches

ROWS = 2  # SplitV's constant rows a tower
CASES = list(itertools.product((2, 3), ("split", "splitv", "unpack")))
IDS = [f"{cut}-{n}" for n, cut in CASES]
ATOL = 1e-5  # float32 dense layers over a few terms, any runtime


def _unit(towers: int, cut: str) -> int:
    return {"split": towers, "splitv": ROWS * towers, "unpack": towers}[cut]


def _pb(tmp_path, towers, cut):
    return graph_pb(tmp_path / "towers.pb", lambda t: _towers(t, towers=towers, cut=cut, mask=False, rows=ROWS))


@pytest.mark.parametrize(("towers", "cut"), CASES, ids=IDS)
def test_the_unit_is_the_batch_the_ties_allow(tmp_path, towers, cut):
    model = tfopt.load(_pb(tmp_path, towers, cut), outputs=["y"])
    unit, exact = batch_unit(GraphRunner(model), model.inputs, model.graph_def)
    assert (unit, exact) == (_unit(towers, cut), cut != "split")
    feeds, padded = whole_batches({"x": np.arange(5 * unit + 1, dtype=np.float32)[:, None]}, unit)
    assert padded == unit - 1 and feeds["x"].shape[0] == 6 * unit
    assert feeds["x"][5 * unit + 1:, 0].tolist() == list(range(unit - 1))  # completed from the start of the set


@pytest.mark.parametrize(("towers", "cut"), CASES, ids=IDS)
def test_eval_data_is_fed_in_whole_batches_and_every_sample_counts(tmp_path, towers, cut):
    pb = _pb(tmp_path, towers, cut)
    unit = _unit(towers, cut)
    samples = 3 * unit + 1 + towers % 2  # no multiple of the unit
    rng = np.random.default_rng(samples)
    x = rng.normal(size=[samples, FEATURES]).astype(np.float32)
    original = GraphRunner(tfopt.load(pb, outputs=["y"]))
    scores = np.concatenate([original({"x": np.repeat(x[i:i + 1], unit, axis=0)})["y"][:1] for i in range(samples)])
    labels = scores.argmax(-1)
    wrong = rng.permutation(samples)[: samples // 3]
    labels[wrong] = (labels[wrong] + 1) % scores.shape[-1]
    np.savez(tmp_path / "eval.npz", x=x, labels=labels)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], eval_data=str(tmp_path / "eval.npz"),
                           report_runs=1)
    report = result.report
    expected = 100.0 * (samples - len(wrong)) / samples
    assert report["reference"]["accuracy"]["top1"] == pytest.approx(expected)
    batches = math.ceil(samples / unit)
    assert report["samples"] == batches and report["batch_rows"] == unit
    assert report["batching"].startswith(f"{samples} samples in {batches} batches of {unit} rows")
    assert f"completed with {batches * unit - samples} row" in report["batching"]
    for row in report["artifacts"]:
        assert row["accuracy"]["top1"] == pytest.approx(expected), row["format"]
        assert row["fidelity"]["max_abs_err"] <= ATOL, row["format"]
    assert report["batching"] in (tmp_path / "out" / "report.md").read_text()


# split-2 in the slow lane: split-3 is the same cut with another tower count (the eval-data test above runs every
# count and cut), unpack-3 the other cut.
INT8_CASES = [pytest.param(2, "split", marks=pytest.mark.slow), (3, "split"), (3, "unpack")]


@pytest.mark.parametrize(("towers", "cut"), INT8_CASES, ids=["split-2", "split-3", "unpack-3"])
def test_the_int8_engine_feeds_whole_batches(tmp_path, towers, cut):
    """tfopt's int8 engine calibrates (statistics, equalization, bias correction) and --auto-keep-float
    measures (the engine's graph in TensorFlow, then each target's artifact through the report's
    measurement) on data whose size is no multiple of the batch the graph takes, in whole batches as
    verification does: fed all at once, 32 rows at a time or one row at a time, a graph that splits its
    batch into towers (or takes exactly N rows) refuses the data."""
    pb = _pb(tmp_path, towers, cut)
    samples = 2 * _unit(towers, cut) + 1
    x = np.random.default_rng(towers).normal(size=[samples, FEATURES]).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x, labels=np.zeros(samples, np.int64))
    np.savez(tmp_path / "calib.npz", x=x)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           calibration=str(tmp_path / "calib.npz"), eval_data=str(tmp_path / "eval.npz"),
                           auto_keep_float=100.0, report_runs=1)
    assert [(a.format, a.precision) for a in result.artifacts] == [("onnx", "int8")], result.failed
    assert result.keep_float["onnx/int8"] == []  # within the bound with nothing kept: measured, not refused
    assert "targets" in result.int8["auto_keep_float"]["steps"][-1]  # the real artifact was measured
    (row,) = result.report["artifacts"]
    assert row["fidelity"]["top1_agreement"] >= 50.0  # int8 of a 5-term dense layer agrees with float on most rows
