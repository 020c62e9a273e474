"""BatchNorm folding: fused and decomposed forms into every conv/matmul kind, and its negatives."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.passes.optimizing import optimize
from tfopt.runtimes.tensorflow import GraphRunner

RNG = np.random.default_rng(0)
C = 6


def _bn_params(c=C):
    return (RNG.uniform(0.5, 2.0, c).astype(np.float32), RNG.normal(0, 1, c).astype(np.float32),
            RNG.normal(0, 1, c).astype(np.float32), RNG.uniform(0.2, 3.0, c).astype(np.float32))


def _fused(t, y, *, training=False):
    gamma, beta, mean, var = _bn_params(y.shape[-1])
    if training:
        mean, var = np.zeros(0, np.float32), np.zeros(0, np.float32)
    return t.raw_ops.FusedBatchNormV3(x=y, scale=gamma, offset=beta, mean=mean, variance=var, epsilon=1e-3,
                                      is_training=training, data_format="NDHWC" if len(y.shape) == 5 else "NHWC")[0]


def _decomposed(t, y):
    gamma, beta, mean, var = _bn_params(y.shape[-1])
    return t.nn.batch_normalization(y, mean, var, beta, gamma, 1e-3)


def _w(*shape):
    return RNG.normal(0, 0.5, shape).astype(np.float32)


# producer builders: (input shape, fn(t, x) -> pre-BN tensor)
PRODUCERS = {
    "conv2d": ((1, 8, 8, 3), lambda t, x: t.nn.conv2d(x, _w(3, 3, 3, C), 1, "SAME")),
    "conv2d-bias": ((1, 8, 8, 3), lambda t, x: t.nn.bias_add(t.nn.conv2d(x, _w(3, 3, 3, C), 1, "SAME"), _w(C))),
    "depthwise": ((1, 8, 8, 3), lambda t, x: t.nn.depthwise_conv2d(x, _w(3, 3, 3, 2), [1, 1, 1, 1], "SAME")),
    "conv2d-transpose": ((1, 4, 4, 3), lambda t, x: t.nn.conv2d_transpose(x, _w(3, 3, C, 3), [1, 8, 8, C], 2)),
    "conv3d": ((1, 4, 4, 4, 3), lambda t, x: t.nn.conv3d(x, _w(2, 2, 2, 3, C), [1] * 5, "SAME")),
    "matmul": ((2, 5), lambda t, x: t.matmul(x, _w(5, C))),
    "matmul-bias": ((2, 5), lambda t, x: t.nn.bias_add(t.matmul(x, _w(5, C)), _w(C))),
}
CASES = [(p, "fused") for p in ("conv2d", "conv2d-bias", "depthwise", "conv2d-transpose", "conv3d")] + \
        [(p, "decomposed") for p in ("conv2d", "conv2d-bias", "depthwise", "matmul", "matmul-bias")]


def _model(producer, form):
    shape, make = PRODUCERS[producer]

    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        y = make(t, x)
        y = _fused(t, y) if form == "fused" else _decomposed(t, y)
        t.nn.relu(y, name="out")
    return graph_model(build, {"x": shape}, ["out"]), shape


@pytest.mark.parametrize(("producer", "form"), CASES, ids=[f"{p}-{f}" for p, f in CASES])
def test_folds_and_matches(producer, form):
    model, shape = _model(producer, form)
    portable, _, report = optimize(model, skip=["fuse_activation"], verify=False)
    after = ops(portable)
    assert not {"FusedBatchNormV3", "Rsqrt", "Mul", "Sub", "AddV2", "Add"} & set(after), after
    linear = {"conv2d": "Conv2D", "conv2d-bias": "Conv2D", "depthwise": "DepthwiseConv2dNative",
              "conv2d-transpose": "Conv2DBackpropInput", "conv3d": "Conv3D", "matmul": "MatMul",
              "matmul-bias": "MatMul"}[producer]
    assert after[linear] == 1 and after["BiasAdd"] == 1 and after["Relu"] == 1
    assert report.skips() == []
    x = RNG.normal(0, 1, shape).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(portable)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)


def _skip_reasons(model):
    portable, _, report = optimize(model, skip=["fuse_activation"], verify=False)
    return portable, " | ".join(s for _, s in report.skips())


def test_shared_weights_not_folded():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 8, 8, 3), name="x")
        w = t.constant(_w(3, 3, 3, C))
        a = _fused(t, t.nn.conv2d(x, w, 1, "SAME"))
        b = t.nn.conv2d(x, w, 1, "SAME")
        t.identity(a + b, name="out")
    portable, reasons = _skip_reasons(graph_model(build, {"x": (1, 8, 8, 3)}, ["out"]))
    assert "shared by 2 consumers" in reasons
    assert ops(portable)["Mul"] == 1  # the BN's scale stays a Mul (lowered, not folded)


def test_non_constant_weights_not_folded():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 8, 8, 3), name="x")
        w = t.compat.v1.placeholder(t.float32, (3, 3, 3, C), name="w")
        _fused(t, t.nn.conv2d(x, w, 1, "SAME"))
        t.identity(_fused(t, t.nn.conv2d(x, w, 1, "SAME")), name="out")
    model = graph_model(build, {"x": (1, 8, 8, 3), "w": (3, 3, 3, C)}, ["out"])
    _, reasons = _skip_reasons(model)
    assert "weights of 'Conv2D_1' are not constant (Placeholder)" in reasons


def test_training_mode_batchnorm_not_folded():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (2, 8, 8, 3), name="x")
        t.identity(_fused(t, t.nn.conv2d(x, _w(3, 3, 3, C), 1, "SAME"), training=True), name="out")
    portable, reasons = _skip_reasons(graph_model(build, {"x": (2, 8, 8, 3)}, ["out"]))
    assert "training mode (is_training=True)" in reasons
    assert ops(portable)["FusedBatchNormV3"] == 1


# DenseNet's pre-activation BatchNorms (keras.applications.DenseNet121, in the slow lane): after the
# Concat of a dense block, after the stem's MaxPool
NOT_FOLDABLE = {
    "ConcatV2": lambda t, x: t.concat([t.nn.conv2d(x, _w(3, 3, 3, 3), 1, "SAME"), x], axis=-1),
    "MaxPool": lambda t, x: t.nn.max_pool2d(t.nn.conv2d(x, _w(3, 3, 3, 4), 1, "SAME"), 2, 1, "SAME"),
}


@pytest.mark.parametrize("producer", NOT_FOLDABLE)
def test_batchnorm_after_concat_reported(producer):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, (1, 8, 8, 3), name="x")
        t.nn.relu(_fused(t, NOT_FOLDABLE[producer](t, x)), name="out")
    model = graph_model(build, {"x": (1, 8, 8, 3)}, ["out"])
    portable, reasons = _skip_reasons(model)
    assert f"is {producer}, not a conv/matmul" in reasons
    after = ops(portable)
    assert "FusedBatchNormV3" not in after and after["Mul"] == 1 and after["AddV2"] == 1  # lowered
    x = RNG.normal(0, 1, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(portable)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)
