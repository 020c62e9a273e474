from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.errors import OptionError
from tfopt.passes.base import run_passes
from tfopt.passes.fuse_activation import FuseActivation, Grappler, remapper_fuses
from tfopt.runtimes.tensorflow import GraphRunner

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("activation", ["relu", "relu6", "elu", "leaky_relu"])
def test_conv_bias_activation_fused(activation):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [1, 6, 6, 3], name="x")
        y = t.nn.bias_add(t.nn.conv2d(x, RNG.normal(size=(3, 3, 3, 4)).astype(np.float32), 1, "SAME"),
                          RNG.normal(size=4).astype(np.float32))
        t.identity(getattr(t.nn, activation)(y), name="out")
    model = graph_model(build, {"x": (1, 6, 6, 3)}, ["out"])
    result, _ = run_passes(model, [FuseActivation()], max_iterations=1)
    after = ops(result)
    assert after.get("_FusedConv2D") == 1 and "Conv2D" not in after and "BiasAdd" not in after
    assert all(n.device == "" for n in result.graph_def.node)  # runs wherever TensorFlow runs
    x = RNG.normal(size=(1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)


def test_swish_fuses_where_the_runtime_says_it_does():
    """Conv + bias + x·sigmoid(x) fuses only with oneDNN: the pass does what the probe reports, and
    an unfused result is the plain graph (the bias-only fusion undone), not a half-fused one."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [1, 6, 6, 3], name="x")
        y = t.nn.bias_add(t.nn.conv2d(x, RNG.normal(size=(3, 3, 3, 4)).astype(np.float32), 1, "SAME"),
                          RNG.normal(size=4).astype(np.float32))
        t.identity(y * t.sigmoid(y), name="out")
    model = graph_model(build, {"x": (1, 6, 6, 3)}, ["out"])
    result, _ = run_passes(model, [FuseActivation()], max_iterations=1)
    after = ops(result)
    if remapper_fuses("swish"):
        assert after.get("_FusedConv2D") == 1 and "Sigmoid" not in after
    else:
        assert after == ops(model)
    x = RNG.normal(size=(1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)
    assert remapper_fuses("relu")  # every build fuses Conv + BiasAdd + Relu
    with pytest.raises(OptionError, match="choose from"):
        remapper_fuses("gelu")


def test_bias_only_fusion_is_left_to_the_runtime():
    """conv + bias feeding a residual add: kept as Conv2D + BiasAdd (see _unfuse_bias_only)."""
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [1, 6, 6, 4], name="x")
        y = t.nn.bias_add(t.nn.conv2d(x, RNG.normal(size=(1, 1, 4, 4)).astype(np.float32), 1, "SAME"),
                          RNG.normal(size=4).astype(np.float32))
        t.nn.relu(y + x, name="out")
    model = graph_model(build, {"x": (1, 6, 6, 4)}, ["out"])
    result, _ = run_passes(model, [FuseActivation()], max_iterations=1)
    after = ops(result)
    assert after["Conv2D"] == 1 and after["BiasAdd"] == 1 and "_FusedConv2D" not in after
    x = RNG.normal(size=(1, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)


def test_matmul_without_bias_not_fused():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2, 3], name="x")
        t.nn.relu(t.matmul(x, RNG.normal(size=(3, 4)).astype(np.float32)), name="out")
    model = graph_model(build, {"x": (2, 3)}, ["out"])
    result = FuseActivation().run(model)
    assert not result.changed and "_FusedMatMul" not in ops(result.model)


def test_grappler_escape_hatch():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [2], name="x")
        t.identity(x * (t.constant(2.0) * 3.0), name="out")
    model = graph_model(build, {"x": (2,)}, ["out"])
    result = Grappler(["constfold"]).run(model)
    assert result.changed and not Grappler(["constfold"]).tf_runtime_only and Grappler(["remap"]).tf_runtime_only
    assert ops(result.model)["Mul"] == 1
    np.testing.assert_allclose(GraphRunner(result.model)({"x": np.ones(2, np.float32)})["out"], [6.0, 6.0])
    with pytest.raises(OptionError, match=r"unknown optimizer.*constfolding"):
        Grappler(["constfolding"]).run(model)


def _layer_norm(t, x, eps, width):
    """tf-keras's unfused LayerNormalization over the last axis (the form Hugging Face's TF models use)."""
    axis = len(x.shape) - 1  # a positive axis, as Keras writes it
    gamma, beta = RNG.normal(size=width).astype(np.float32), RNG.normal(size=width).astype(np.float32)
    mean = t.reduce_mean(x, [axis], keepdims=True)
    variance = t.reduce_mean(t.math.squared_difference(x, mean), [axis], keepdims=True)
    scale = t.math.rsqrt(variance + eps) * gamma
    return x * scale + (beta - mean * scale), gamma, beta


@pytest.mark.parametrize("eps", [1e-12, 1e-6, 1e-3], ids=lambda e: f"eps{e:g}")
@pytest.mark.parametrize("shape", [(4, 16), (2, 9, 32), (1, 5, 48)], ids=lambda s: "x".join(map(str, s)))
def test_layer_norm_keeps_its_epsilon(shape, eps):
    """With oneDNN the remapper fuses layer norms into _MklLayerNorm, which it gives epsilon=0.001
    whatever the graph says: the fused graph must compute the graph's own epsilon. Rows of small
    variance (1e-4) make a wrong epsilon visible. Compared with float64 numpy, since a TF session
    with oneDNN rewrites the unfused reference graph the same wrong way."""
    params = {}

    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        y, params["gamma"], params["beta"] = _layer_norm(t, x, eps, shape[-1])
        t.identity(y, name="out")
    model = graph_model(build, {"x": shape}, ["out"])
    result, _ = run_passes(model, [FuseActivation()], max_iterations=1)
    for node in result.graph_def.node:
        if node.op == "_MklLayerNorm":
            assert node.attr["epsilon"].f == pytest.approx(eps, rel=1e-6)
    x = (RNG.normal(size=shape) * 1e-2).astype(np.float64)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * params["gamma"] + params["beta"]
    got = GraphRunner(result)({"x": x.astype(np.float32)})["out"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_layer_norm_with_an_epsilon_per_feature_is_not_fused():
    """An epsilon that is not one scalar cannot be an _MklLayerNorm attribute: the fusion is
    refused with a reason, and the rest of the graph still fuses. (A TF session with oneDNN still
    rewrites the unfused pattern itself, with epsilon 0.001: the result is compared with the
    original as the same runtime runs it, which is all a pass can promise.)"""
    width = 16
    eps = np.linspace(1e-6, 1e-2, width)
    gamma, beta = RNG.normal(size=width).astype(np.float32), RNG.normal(size=width).astype(np.float32)
    weights, bias = RNG.normal(size=(width, 8)).astype(np.float32), RNG.normal(size=8).astype(np.float32)

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [4, width], name="x")
        mean = t.reduce_mean(x, [1], keepdims=True)
        variance = t.reduce_mean(t.math.squared_difference(x, mean), [1], keepdims=True)
        scale = t.math.rsqrt(variance + eps.astype(np.float32)) * gamma
        t.nn.relu(t.nn.bias_add(t.matmul(x * scale + (beta - mean * scale), weights), bias), name="out")
    model = graph_model(build, {"x": (4, width)}, ["out"])
    result = FuseActivation().run(model)
    after = ops(result.model)
    assert "_MklLayerNorm" not in after and after.get("_FusedMatMul") == 1
    assert all("epsilon is not one scalar" in s.reason for s in result.skips)
    x = (RNG.normal(size=(4, width)) * 1e-2).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result.model)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-5)
