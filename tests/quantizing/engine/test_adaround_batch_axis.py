"""AdaRound takes its samples on each input's batch axis, as every other consumer of calibration data
does (:func:`tfopt.verification.data_batches.sample_axes`): a time-major ``x [time, batch, F]``
beside ``seq_lengths [batch]`` (the rows differ on axis 0: refused as "unequal counts" when axis 0
was assumed), and a lone time-major input read through a transpose to batch-major. Generated: two
graphs x two (time, batch) sizes, through ``--int8-recipe minmax+adaround``, numbers against the
original."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tests.verification.test_data_batches_time_major import FEATURES, _time_major

INT8_SCALED = 0.05  # int8 of one or two dense layers: error / (1 + max|y|), a few 8-bit steps


def _transposed(t):
    """A lone time-major ``x``: transposed to batch-major, averaged over time, two dense layers."""
    rng = np.random.default_rng(3)
    x = t.compat.v1.placeholder(t.float32, [None, None, FEATURES], name="x")
    h = t.tanh(t.matmul(t.reduce_mean(t.transpose(x, [1, 0, 2]), axis=1), rng.normal(size=[FEATURES, 6]).astype(np.float32)))
    t.identity(t.matmul(h, rng.normal(size=[6, 3]).astype(np.float32)), name="y")


def _data(graph: str, time: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(time * batch)
    data = {"inputs" if graph == "lengths" else "x": rng.normal(size=[time, batch, FEATURES]).astype(np.float32)}
    if graph == "lengths":
        data["seq_lengths"] = rng.integers(1, time + 1, size=[batch]).astype(np.int32)
    return data


@pytest.mark.parametrize(("time", "batch"), [(6, 20), (9, 13)], ids=["t6-b20", "t9-b13"])
@pytest.mark.parametrize("graph", ["lengths", "lone"])
def test_adaround_samples_are_cut_on_the_batch_axis(tmp_path, graph, time, batch):
    pb = graph_pb(tmp_path / "tm.pb", (lambda t: _time_major(t, state=False)) if graph == "lengths" else _transposed)
    np.savez(tmp_path / "calib.npz", **_data(graph, time, batch))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx"], outputs=["y"], quantize=["int8"],
                           int8_recipe="minmax+adaround", calibration=str(tmp_path / "calib.npz"), report_runs=1)
    (row,) = result.report["artifacts"]
    assert row["precision"] == "int8" and result.int8 is not None, result.failed
    rounded = [r["transforms"]["adaround"] for r in result.int8["engine"].values()]
    assert rounded and all(r["layers"] for r in rounded), result.int8  # the dense layers were AdaRounded
    assert result.report["samples"] == min(batch, 32)  # on axis 1
    assert row["fidelity"]["scaled_err"] <= INT8_SCALED
