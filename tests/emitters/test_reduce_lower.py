"""Large float32 ``Mean``/``Sum`` through :mod:`tfopt.emitters.reduce_lower`, checked by value.

The class: a reduction over millions of elements whose mean is far from zero next to the spread
(an instance normalisation over a 3-D volume). TensorFlow sums a reduction over contiguous memory as a
tree; ONNX Runtime, OpenVINO and TFLite summed it in one run, and a normalisation divides that error by
the standard deviation (measured on the volume below: 3.8 ONNX Runtime and TFLite, 0.074 OpenVINO).

Generated graphs: two instance normalisations as Keras 2's ``Lambda`` writes them (``K.mean``,
``K.std``) over a ``180×172×86×1`` volume of ``50 + N(0, 1)``, in every target; and the lowering alone in
TensorFlow over static and dynamic shapes, one to four axes, ``Mean`` and ``Sum``, ``keep_dims`` both
ways, lengths with a prime factor above the block (padded), against float64.

Bound: a float32 mean of values near ``m`` cannot be closer than half a spacing of ``m`` to the exact one,
and a normalisation divides it by ``σ``: the artifacts are held within ``8·spacing(50)/σ`` (3.1e-5)
of TensorFlow, which is itself 2.4e-6 from float64 there.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt.emitters.onnx import emit_onnx
from tfopt.emitters.openvino import emit_openvino
from tfopt.emitters.reduce_lower import BLOCK, factors, lower_reductions
from tfopt.emitters.tflite import emit_tflite
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

OFFSET = 50.0
VOLUME = (180, 172, 86, 1)
ATOL = 8 * float(np.spacing(np.float32(OFFSET)))  # σ = 1
EMIT = {"onnx": (emit_onnx, "m.onnx"), "openvino": (emit_openvino, "ov"), "tflite": (emit_tflite, "m.tflite")}


def _instance_norm(t, x):
    mean = t.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) / (t.math.reduce_std(x, axis=[1, 2, 3], keepdims=True) + 1e-7)


@pytest.fixture(scope="module")
def volume_model():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, *VOLUME), name="x")
        t.identity(_instance_norm(t, _instance_norm(t, x) + OFFSET), name="y")

    model = graph_model(build, {"x": (None, *VOLUME)}, ["y"])
    x = (OFFSET + np.random.default_rng(0).standard_normal((1, *VOLUME))).astype(np.float32)
    return model, x, GraphRunner(model)({"x": x})["y"]


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_instance_norm_of_a_large_volume_matches_tensorflow(tmp_path, volume_model, target):
    model, x, want = volume_model
    emit, name = EMIT[target]
    path = emit(model, str(tmp_path / name))
    runner = runner_for(target, path, model)
    try:
        got = runner({"x": x})["y"]
    finally:
        getattr(runner, "close", lambda: None)()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=target)


CASES = {  # input shape, axes, op, keep_dims
    "volume-channels-last": ((None, 60, 50, 40, 3), [1, 2, 3], "Mean", True),
    "volume-one-channel": ((2, 60, 50, 40, 1), [1, 2, 3], "Sum", False),
    "every-axis": ((700, 900), None, "Mean", False),
    "negative-axis": ((2, 3000, 5), [-2], "Sum", True),
    "prime-length-padded": ((3, 2 * 1031), [1], "Mean", False),
    "dynamic-axes": ((None, None, 64, 40), [1, 2], "Mean", True),
    "dynamic-to-a-scalar": ((None, 70, 40), None, "Sum", False),
    "outer-and-inner": ((1200, 3, 7), [0, 2], "Mean", True),
}


@pytest.mark.parametrize(("shape", "axes", "op", "keep"), CASES.values(), ids=CASES.keys())
def test_split_reduction_is_the_reduction(shape, axes, op, keep):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        t.identity((t.reduce_mean if op == "Mean" else t.reduce_sum)(x, axes, keepdims=keep), name="y")

    model = graph_model(build, {"x": shape}, ["y"])
    graph_def, lowered = lower_reductions(model.graph_def)
    assert len(lowered) == 1, lowered
    concrete = tuple(3 if n is None else n for n in shape)
    x = (3 + np.random.default_rng(1).standard_normal(concrete)).astype(np.float32)
    got = GraphRunner(model.replace(graph_def=graph_def))({"x": x})["y"]
    want = GraphRunner(model)({"x": x})["y"]
    axis = None if axes is None else tuple(axes)
    exact = getattr(x.astype(np.float64), op.lower())(axis=axis, keepdims=keep)
    assert got.shape == want.shape == exact.shape
    # levels of at most 64 terms: never further from float64 than TensorFlow, or than 8e-7 of the largest value
    scale = np.abs(exact).max()
    assert np.abs(got - exact).max() <= max(np.abs(want - exact).max(), 8e-7 * scale), (got - exact, want - exact)


NOT_SPLIT = {  # shape, axes, dtype, rows_only, why
    "small": ((4, 30, 30), [1, 2], "float32", False),
    "integers": ((2, 100_000), [1], "int32", False),
    "float64": ((2, 100_000), [1], "float64", False),
    "one-dynamic-axis": ((2, None), [1], "float32", False),
    "tflite-kept-channels-inside": ((1, 40, 40, 40, 8), [1, 2, 3], "float32", True),
}


@pytest.mark.parametrize(("shape", "axes", "dtype", "rows_only"), NOT_SPLIT.values(), ids=NOT_SPLIT.keys())
def test_reductions_left_alone(shape, axes, dtype, rows_only):
    def build(t):
        x = t.compat.v1.placeholder(t.as_dtype(dtype), shape, name="x")
        t.identity(t.reduce_sum(x, axes), name="y")

    model = graph_model(build, {"x": shape}, ["y"])
    graph_def, lowered = lower_reductions(model.graph_def, rows_only=rows_only)
    assert lowered == [] and graph_def is model.graph_def


def test_tflite_splits_rows():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 40, 40, 40, 1), name="x")
        t.identity(t.reduce_mean(x, [1, 2, 3]), name="y")

    model = graph_model(build, {"x": (1, 40, 40, 40, 1)}, ["y"])
    assert len(lower_reductions(model.graph_def, rows_only=True)[1]) == 1


@pytest.mark.parametrize("n", [2 * 3 * 5 * 7 * 11 * 13 * 17, 180 * 172 * 86, 1021 * 64, 2 ** 21, 97 * 89])
def test_factors_multiply_back_within_the_block(n):
    parts = factors(n)
    assert parts is not None and int(np.prod(parts)) == n and max(parts) <= BLOCK


def test_a_prime_above_the_block_has_no_factors():
    assert factors(2 * 1031) is None


def test_a_large_mean_inside_a_cond_branch_is_split():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, 90, 80, 1), name="x")
        y = t.cond(t.reduce_max(x) > 0, lambda: t.reduce_mean(x, [1, 2]), lambda: t.reduce_sum(x, [1, 2]))
        t.identity(y, name="y")

    model = graph_model(build, {"x": (None, 90, 80, 1)}, ["y"])
    graph_def, lowered = lower_reductions(model.graph_def)
    assert [line for line in lowered if line.split(" ")[0].count("/") == 1 and "Mean" in line], lowered  # in a branch
    x = (OFFSET + np.random.default_rng(2).standard_normal((2, 90, 80, 1))).astype(np.float32)
    got = GraphRunner(model.replace(graph_def=graph_def))({"x": x})["y"]
    np.testing.assert_allclose(got, x.astype(np.float64).mean(axis=(1, 2)), rtol=4e-7, atol=0)
