"""manifest.json records the batch axis of every input and of every output a trail reaches, so a
deployer or CI script knows which axis of each tensor holds the samples: a lone time-major input's is
axis 1 (the graph transposes it to batch-major), an output's is where the inputs' batch arrives (a
time-major output: 1), an output whose batch is reduced away has none. ``tfopt verify`` reads the
graph's axes back (``manifest_model``), and report.md says them. Generated graphs of several layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import graph_pb

F, C = 3, 2


def _time_major(t):  # x [time, batch, F] -> batch-major -> mean over time -> [batch, C]
    x = t.compat.v1.placeholder(t.float32, (None, None, F), name="x")
    w = np.linspace(-1, 1, F * C, dtype=np.float32).reshape(F, C)
    t.identity(t.matmul(t.reduce_mean(t.transpose(x, [1, 0, 2]), axis=1), w), name="y")


def _time_major_out(t):  # x [batch, F]; y [batch, C]; seq [4, batch, F]: the batch arrives at axis 1
    x = t.compat.v1.placeholder(t.float32, (None, F), name="x")
    w = np.linspace(-1, 1, F * C, dtype=np.float32).reshape(F, C)
    t.identity(t.matmul(x, w), name="y")
    t.identity(t.concat([t.expand_dims(x * k, 0) for k in (1.0, 2.0, 3.0, 4.0)], axis=0), name="seq")


def _reduced(t):  # x [batch, F]; y [batch, C]; total: a scalar, the batch summed away
    x = t.compat.v1.placeholder(t.float32, (None, F), name="x")
    w = np.linspace(-1, 1, F * C, dtype=np.float32).reshape(F, C)
    t.identity(t.matmul(t.tanh(x), w), name="y")
    t.identity(t.reduce_sum(x), name="total")


@pytest.mark.parametrize("build,outputs,want_inputs,want_outputs", [
    (_time_major, ["y"], {"x": (1, "graph")}, {"y": (0, "graph")}),
    (_time_major_out, ["y", "seq"], {"x": (0, "default")}, {"y": (0, "graph"), "seq": (1, "graph")}),
    (_reduced, ["y", "total"], {"x": (0, "default")}, {"y": (0, "graph"), "total": (None, None)}),
], ids=["time-major-input", "time-major-output", "batch-reduced-away"])
def test_manifest_records_each_tensors_batch_axis(tmp_path, build, outputs, want_inputs, want_outputs):
    import tfopt
    from tfopt.conversion.manifest import manifest_model

    pb = graph_pb(tmp_path / "model.pb", build)
    out = tmp_path / "out"
    result = tfopt.convert(pb, str(out), to=["pb"], outputs=outputs, report_runs=1)
    assert not result.failed, result.errors
    manifest = json.loads((out / "manifest.json").read_text())
    for kind, want in (("inputs", want_inputs), ("outputs", want_outputs)):
        got = {s["name"]: (s["batch_axis"], s["batch_axis_source"]) for s in manifest[kind]}
        assert got == want, kind
    recorded = manifest_model(str(out))  # what `tfopt verify OUTDIR` runs on: the graph's axes kept
    assert {s.name: s.batch_axis for s in recorded.inputs} == {
        name: axis if source == "graph" else None for name, (axis, source) in want_inputs.items()}
    report = (out / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("Batch axis:"))
    for name, (axis, _) in {**want_inputs, **want_outputs}.items():
        assert f"`{name}` {'-' if axis is None else axis}" in line
    assert json.loads((out / "report.json").read_text())["outputs"] == manifest["outputs"]
