"""Models that answer one row at a time only (issue 24, held-out set 12: reactionrnn's output activation
``relu(x) / sum(relu(x), axis=-1)`` divides [batch, 5] by [batch], which broadcasts at batch 1 alone):
the made-up search, failing at batch 2 at every size, verifies at batch 1 and says why, instead of
MadeUpInputsError ("pass real inputs", which fail the same way). A model that takes batch 2 is still
verified there.

Generated tf.Module SavedModels: three ways of tying a graph to one row, with a fixed or an open time
axis; the ONNX artifact is compared with the original on made-up rows within 1e-5.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import tfopt
from tfopt._tf import tf

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")

FEATURES, UNITS = 6, 5  # UNITS != 2: [2, UNITS] / [2] must not broadcast


def _ratio(t, h):  # reactionrnn's activation: a [batch] sum divides a [batch, units] tensor
    r = t.nn.relu(h) + 0.1
    return r / t.reduce_sum(r, axis=-1)


def _plus_mean(t, h):  # a [batch] mean added to [batch, units]
    return h + t.reduce_mean(h, axis=-1)


def _flattened(t, h):  # a reshape to one row: [batch, units] -> [1, batch * units] meets a [units, 3] matmul
    return t.matmul(t.reshape(h, [1, -1]), t.ones([UNITS, 3]))


def _kept(t, h):  # keepdims: any batch
    r = t.nn.relu(h) + 0.1
    return r / t.reduce_sum(r, axis=-1, keepdims=True)


HEADS = {"ratio": _ratio, "plus-mean": _plus_mean, "flattened": _flattened}


def _save(directory, head, time):
    t = tf()
    module = t.Module()
    module.w = t.Variable(np.random.default_rng(7).standard_normal((FEATURES, UNITS)).astype(np.float32))

    def serve(x):
        h = t.reduce_mean(t.tanh(t.einsum("btf,fk->btk", x, module.w)), axis=1)  # [batch, units]
        return {"y": head(t, h)}

    module.serve = t.function(serve, input_signature=[t.TensorSpec((None, time, FEATURES), t.float32, name="x")])
    path = str(directory / "sm")
    t.saved_model.save(module, path, signatures=module.serve)
    return path, module


def _check(tmp_path, path, module):
    result = tfopt.convert(path, str(tmp_path / "out"), to=["onnx"], report_runs=1)
    assert not result.failed, result.failed
    [artifact] = result.artifacts
    session = ort.InferenceSession(str(tmp_path / "out" / artifact.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((1, 9, FEATURES)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, module.serve(tf().constant(x))["y"].numpy(), rtol=1e-5, atol=1e-5)
    return result.report["verification"]


@pytest.mark.parametrize("time", [9, None], ids=["fixed-time", "open-time"])
@pytest.mark.parametrize("head", list(HEADS))
def test_a_model_that_answers_one_row_only_is_verified_at_batch_1(tmp_path, head, time):
    path, module = _save(tmp_path, HEADS[head], time)
    verification = _check(tmp_path, path, module)
    if time is not None:  # with an open time axis the search may learn a batch tied to the units instead (5)
        assert "answers batch 1 only (at batch 2:" in verification["one_row"]


def test_a_model_that_takes_batch_2_is_still_verified_there(tmp_path):
    path, module = _save(tmp_path, _kept, None)
    verification = _check(tmp_path, path, module)
    assert "one_row" not in verification
