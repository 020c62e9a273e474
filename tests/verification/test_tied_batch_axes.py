"""An input whose batch is tied by the graph to another input's batch axis (class "B1", issue 24): a
time-major ``x [time, batch, N]`` read by a v1 while-loop recurrence (TF1 ``dynamic_rnn``'s shape: a
``TensorArray.unstack``, a length check ``shape(seq) == shape(x)[1:2]``, ``concat([x_t, h], 1)``, a
vector ``Select`` on ``i >= seq``), its initial state ``state [1, batch, M]`` (``state[0]``) and
``seq_len [batch]``. The state's and the lengths' batch is where they meet the sequence's: axes 1, 1, 0,
all from the graph (:mod:`tfopt.graphdef.batch_axis`), in the manifest, and the data of batch 3 is cut
there (report rows against TensorFlow). Time, batch and widths differ (7, 3, 4, 5), so a cut on the
wrong axis changes the shapes. Before the fix the state got axis 0 (``default``), the fixed 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model
from tfopt.graphdef.batch_axis import structural_batch_axes

TIME, BATCH, N, M = 7, 3, 4, 5
ATOL = 1e-5  # float32 tanh recurrence of 7 steps, any runtime
pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")


def _build(t, *, select: bool = True):
    x = t.compat.v1.placeholder(t.float32, [None, None, N], name="x")
    seq = t.compat.v1.placeholder(t.int32, [None], name="seq_len")
    state = t.compat.v1.placeholder(t.float32, [1, None, M], name="state")
    with t.control_dependencies([t.debugging.assert_equal(t.shape(seq), t.shape(x)[1:2])]):
        seq = t.identity(seq)  # dynamic_rnn's length check: reads x's batch size
    steps = t.TensorArray(t.float32, size=t.shape(x)[0]).unstack(x)
    w = t.constant(np.random.default_rng(0).normal(size=[N + M, M]).astype(np.float32) * 0.5)

    def body(i, h):
        z = t.tanh(t.matmul(t.concat([steps.read(i), h], 1), w))
        return i + 1, t.compat.v1.where(i >= seq, h, z) if select else z * t.cast(t.expand_dims(seq, 1), t.float32)

    _, h = t.while_loop(lambda i, h: i < t.shape(x)[0], body, [t.constant(0), state[0]])
    t.identity(h, name="y")


SHAPES = {"x": (None, None, N), "seq_len": (None,), "state": (1, None, M)}


@pytest.mark.parametrize("select", [True, False], ids=["select-rows", "broadcast-mul"])
def test_the_state_and_lengths_take_the_sequences_batch(select):
    model = graph_model(lambda t: _build(t, select=select), SHAPES, ["y"], v1_control_flow=True)
    assert structural_batch_axes(model.graph_def, model.inputs, model.outputs) == {"x": 1, "seq_len": 0, "state": 1}


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    model = graph_model(_build, SHAPES, ["y"], v1_control_flow=True)
    path = tmp_path_factory.mktemp("tied") / "rnn.pb"
    path.write_bytes(model.graph_def.SerializeToString())
    return str(path)


def test_manifest_and_report_rows_cut_each_input_on_its_axis(pb, tmp_path):
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=[TIME, BATCH, N]).astype(np.float32), "seq_len": np.array([7, 4, 2], np.int32),
            "state": rng.normal(size=[1, BATCH, M]).astype(np.float32)}
    np.savez(tmp_path / "calib.npz", **data)
    result = tfopt.convert(pb, str(tmp_path / "out"), to=["onnx", "openvino"], outputs=["y"],
                           calibration=str(tmp_path / "calib.npz"), report_runs=1)
    with open(tmp_path / "out" / "manifest.json") as f:
        recorded = {s["name"]: (s["batch_axis"], s["batch_axis_source"]) for s in json.load(f)["inputs"]}
    assert recorded == {"x": (1, "graph"), "seq_len": (0, "graph"), "state": (1, "graph")}
    assert result.report["samples"] == BATCH
    assert {a["format"] for a in result.report["artifacts"]} >= {"onnx", "openvino"}, result.failed
    for row in result.report["artifacts"]:
        assert row["fidelity"]["max_abs_err"] <= ATOL, row
