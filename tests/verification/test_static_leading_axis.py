"""Inputs whose axis 0 is static and whose unknown dimension lies elsewhere (a time-major RNN's
``[time, batch, features]`` with the time fixed, found by the op sweep: tfopt.coverage.op_sweep): the
report never cuts samples on the static axis 0 (it fed ``[1, 8, 4]`` to ``x: [5, None, 4]``, an
internal error for graphs and a misleading "ONNX Runtime does not run" for SavedModels).

Generated graphs: time x features x format (TF1 frozen graph, tf.Module SavedModel); every artifact is
within the fp32 bound of the original.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.graph import TensorSpec
from tfopt.verification.shapes import batch_axes


@pytest.mark.parametrize("shape", [(5, None, 4), (3, None), (2, 7, None), (1, None, 3)],
                         ids=["time-batch-feat", "time-batch", "fixed-fixed-open", "one-open"])
def test_a_static_axis_0_is_never_the_batch_axis(shape):
    spec = TensorSpec("x", "x:0", "float32", shape)
    made_up = {"x": tuple(8 if d is None else d for d in shape)}
    assert batch_axes([spec], made_up)["x"] is None


def _body(t, x, w):
    h = t.tanh(t.einsum("tbf,fk->tbk", x, w))  # time-major: [time, batch, k]
    return t.reduce_sum(h, axis=0)  # summed over time: [batch, k]


def _save(directory, fmt, time, features):
    t = tf()
    w = np.random.default_rng(time * 10 + features).standard_normal((features, 3)).astype(np.float32)
    if fmt == "savedmodel":
        module = t.Module()
        module.w = t.Variable(w)
        module.serve = t.function(lambda x: {"y": _body(t, x, module.w)},
                                  input_signature=[t.TensorSpec((time, None, features), t.float32, name="x")])
        path = str(directory / "sm")
        t.saved_model.save(module, path, signatures=module.serve)
        return path
    graph = t.Graph()
    with graph.as_default():
        x = t.compat.v1.placeholder(t.float32, (time, None, features), name="x")
        t.identity(_body(t, x, t.constant(w)), name="y")
    path = str(directory / "model.pb")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.usefixtures("one_tf2onnx_child")
@pytest.mark.parametrize(("time", "features"), [(5, 4), (3, 2)])
@pytest.mark.parametrize("fmt", ["frozen", "savedmodel"])
def test_time_major_input_converts_and_verifies(tmp_path, fmt, time, features):
    result = tfopt.convert(_save(tmp_path, fmt, time, features), str(tmp_path / "out"), to=["onnx"],
                           report_runs=1)
    assert not result.failed, result.failed
    [artifact] = result.artifacts
    assert artifact.max_abs_err is not None and artifact.max_abs_err <= 1e-4
    row = result.report["artifacts"][0]
    assert row["fidelity"]["max_abs_err"] <= 1e-4
