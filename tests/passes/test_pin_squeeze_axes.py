"""A ``Squeeze`` without axes on a tensor with unknown dimensions (``tf.squeeze(logits)`` on
``[?, 1]``): TensorFlow cannot tell the output's rank, and ONNX's checker and OpenVINO's CPU plugin
refuse it. The pass pins the axes known to be 1; every target then converts and matches TensorFlow."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tfopt.passes.base import run_passes
from tfopt.passes.pin_squeeze_axes import PinSqueezeAxes

W = np.random.default_rng(0).normal(size=(6, 1)).astype(np.float32)

# (input shape, where the ones are): a one-unit head [?, 1]; [?, 1, ?, 1] with two known ones; a
# [?, ?, 1] sequence head; a rank-1 squeeze that must stay a no-op where nothing is known to be 1
HEADS = {"dense-head": [None, 6], "two-ones": [None, 1, None, 6], "sequence": [None, None, 6]}


def _build(shape):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        y = t.tensordot(x, W, axes=1)  # [..., 1]
        if len(shape) == 4:
            y = t.reshape(y, [t.shape(x)[0], 1, t.shape(x)[2], 1])
        t.identity(t.sigmoid(t.squeeze(y)), name="prob")
    return build


@pytest.mark.parametrize("head", HEADS)
def test_the_axes_known_to_be_one_are_pinned(head):
    from tests.helpers import graph_model

    shape = HEADS[head]
    model = graph_model(_build(shape), {"x": tuple(shape)}, ["prob"])
    result, stats = run_passes(model, [PinSqueezeAxes()])
    squeeze = next(n for n in result.graph_def.node if n.op == "Squeeze")
    ones = {"dense-head": [1], "two-ones": [1, 3], "sequence": [2]}[head]
    assert list(squeeze.attr["squeeze_dims"].list.i) == ones and not stats[0].skips
    from tfopt.runtimes.tensorflow import GraphRunner

    for batch in (2, 3):
        dims = [batch] + [5 if d is None else d for d in shape[1:]]  # the unknown dims are not 1
        x = np.random.default_rng(batch).normal(size=dims).astype(np.float32)
        before, after = GraphRunner(model)({"x": x})["prob"], GraphRunner(result)({"x": x})["prob"]
        assert before.shape == after.shape
        np.testing.assert_array_equal(before, after)


# (input shape) of a Squeeze with no dimension known to be 1: ionmob's [?, 4] charge one-hot, a
# rank-3 [?, 4, 5] and a [?, ?, 2] with two unknown dimensions
NO_ONES = {"charge": [None, 4], "rank-3": [None, 4, 5], "two-unknown": [None, None, 2]}


@pytest.mark.parametrize("name", NO_ONES)
def test_no_known_one_becomes_an_identity_of_known_rank(name):
    from tests.helpers import graph_model
    from tfopt.runtimes.tensorflow import GraphRunner

    shape = NO_ONES[name]

    def build(t):
        t.identity(2.0 * t.squeeze(t.compat.v1.placeholder(t.float32, shape, name="x")), name="y")

    model = graph_model(build, {"x": tuple(shape)}, ["y"])
    result, stats = run_passes(model, [PinSqueezeAxes()])
    assert not any(n.op == "Squeeze" for n in result.graph_def.node) and not stats[0].skips
    for batch in (2, 3):
        x = np.random.default_rng(batch).normal(size=[batch] + [5 if d is None else d for d in shape[1:]])
        before, after = GraphRunner(model)({"x": x.astype(np.float32)})["y"], GraphRunner(result)({"x": x})["y"]
        assert before.shape == after.shape
        np.testing.assert_array_equal(before, after)  # an Identity: the same values, bit for bit


def test_unknown_rank_is_left_alone_and_said():
    from tests.helpers import graph_model

    def build(t):
        t.identity(t.squeeze(t.compat.v1.placeholder(t.float32, None, name="x")), name="y")

    model = graph_model(build, {"x": None}, ["y"])
    result, stats = run_passes(model, [PinSqueezeAxes()])
    assert any(n.op == "Squeeze" for n in result.graph_def.node)
    assert "unknown rank" in str(stats[0].skips[0])


def _saved_model(path, shape) -> str:
    """A TF2 SavedModel (the original runs itself: at batch 1 its Squeeze gives a scalar)."""
    from tfopt._tf import tf

    t = tf()

    class Head(t.Module):
        @t.function(input_signature=[t.TensorSpec(shape, t.float32, name="x")])
        def __call__(self, x):
            y = t.tensordot(x, W, axes=1)
            if len(shape) == 4:
                y = t.reshape(y, [t.shape(x)[0], 1, t.shape(x)[2], 1])
            return {"prob": t.sigmoid(t.squeeze(y))}

    module = Head()
    t.saved_model.save(module, str(path), signatures=module.__call__)
    return str(path)


@pytest.mark.parametrize(("head", "source"), [("dense-head", "pb"), ("two-ones", "savedmodel")])
def test_every_target_converts_a_bare_squeeze_head(head, source, tmp_path):
    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    model = (graph_pb(tmp_path / "m.pb", _build(HEADS[head])) if source == "pb"
             else _saved_model(tmp_path / "sm", HEADS[head]))
    result = tfopt.convert(model, str(tmp_path / "out"), to=["onnx", "openvino", "tflite"],
                           outputs=["prob"] if source == "pb" else None, report_runs=1)
    assert {a.format for a in result.artifacts} == {"onnx", "openvino", "tflite"}
    assert all(a.max_abs_err <= 1e-5 for a in result.artifacts)  # float32 sigmoid of a 6-term dot product
    assert all(r["fidelity"]["max_abs_err"] <= 1e-5 for r in result.report["artifacts"])  # batch-1 samples


@pytest.mark.parametrize("charges", [4, pytest.param(6, marks=pytest.mark.slow)])
def test_every_target_converts_a_squeeze_with_nothing_to_remove(charges, tmp_path):
    """ionmob's CCS head: ``sum((a·sqrt(mz) + b) · squeeze(charge), 1)`` on a ``[?, C]`` one-hot.
    Before the pass rewrote it, ONNX's checker refused the file (an output of unknown rank) and
    OpenVINO's CPU plugin refused the Squeeze ("dynamic rank")."""
    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    from tfopt._tf import tf

    t = tf()
    rng = np.random.default_rng(charges)
    a, b = (rng.normal(size=(1, charges)).astype(np.float32) for _ in range(2))

    class Head(t.Module):
        @t.function(input_signature=[t.TensorSpec([None, 1], t.float32, name="mz"),
                                     t.TensorSpec([None, charges], t.float32, name="charge")])
        def __call__(self, mz, charge):
            ccs = t.reduce_sum((a * t.sqrt(t.abs(mz)) + b) * t.squeeze(charge), axis=1)
            return {"ccs": t.expand_dims(ccs, 1) + mz}

    module = Head()
    t.saved_model.save(module, str(tmp_path / "sm"), signatures=module.__call__)
    result = tfopt.convert(str(tmp_path / "sm"), str(tmp_path / "out"), to=["onnx", "openvino"], report_runs=1)
    assert {a.format for a in result.artifacts} == {"onnx", "openvino"}
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts)  # float32, |ccs| ~ 10: a few ulps
