"""AdaRound on a small frozen CNN (conv -> depthwise -> dense, random He-scaled weights, digits
images as data): the weights land on the int8/int4 grid, beat round-to-nearest per layer and for
the whole network on held-out images, the input model is untouched, and a spent time budget leaves
layers float. Round-to-nearest is TensorFlow's own fake-quant, not ours."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import const_value, tf
from tfopt.demos import examples
from tfopt.errors import OptionError
from tfopt.freezing import freeze
from tfopt.graph import TensorSpec, canonical_tensor, node_map
from tfopt.quantizing.engine.adaround import AdaRoundHyper, adaround, find_layers
from tfopt.quantizing.engine.fake_quant import PER_CHANNEL_OPS
from tfopt.runtimes.tensorflow import GraphRunner

LAYERS = ["conv", "dw", "logits"]
# 200 steps instead of 1000: the larger step size reaches the same place in the time a test can spend.
FAST = AdaRoundHyper(learning_rate=1e-2)
CONFIGS = {"int8-per-channel": {"bits": 8, "per_channel": True},
           "int4-per-tensor": {"bits": 4, "per_channel": False}}


def _build(t):
    rng = np.random.default_rng(0)

    def he(*shape, fan):
        return (rng.normal(0, 1, shape) * np.sqrt(2 / fan)).astype(np.float32)

    x = t.compat.v1.placeholder(t.float32, (None, 8, 8, 1), name="x")
    h = t.nn.relu(t.nn.bias_add(t.nn.conv2d(x, he(3, 3, 1, 16, fan=9), 1, "SAME", name="conv"), he(16, fan=160)))
    h = t.nn.depthwise_conv2d(h, he(3, 3, 16, 2, fan=9), [1, 2, 2, 1], "SAME", name="dw")
    h = t.reshape(t.nn.relu(t.nn.bias_add(h, he(32, fan=320))), (-1, 4 * 4 * 32))
    t.matmul(h, he(512, 10, fan=512), name="logits")


@pytest.fixture(scope="module")
def cnn():
    model, _ = freeze(graph_model(_build, {"x": (None, 8, 8, 1)}, ["logits"]), verify=False)
    x_train, _, x_test, _ = examples.digits()
    return model, {"x": x_train[:256]}, {"x": x_test}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def rounded(request, cnn):
    model, calib, _ = cnn
    before = model.graph_def.SerializeToString(deterministic=True)
    config = CONFIGS[request.param]
    out, report = adaround(model, calib, iterations=200, hyper=FAST, **config)
    return config, out, report, before


def _weights(model):
    nodes = node_map(model.graph_def)
    return {layer.node.name: const_value(nodes[layer.const.name]) for layer in find_layers(model.graph_def)[0]}


def _channels_last(w, op):
    return w.reshape(*w.shape[:2], -1) if op == "DepthwiseConv2dNative" else w


def _fake_quant(w, op, *, bits, per_channel):
    """TensorFlow's FakeQuantWithMinMaxVarsPerChannel(min=-max|W|, max=max|W|, narrow_range=True);
    MatMul weights per tensor, as the engine quantizes them (fake_quant.PER_CHANNEL_OPS)."""
    flat = _channels_last(w, op)
    amax = np.abs(flat).reshape(-1, flat.shape[-1]).max(axis=0)
    if not per_channel or op not in PER_CHANNEL_OPS:
        amax = np.full_like(amax, amax.max())
    q = tf().quantization.fake_quant_with_min_max_vars_per_channel(flat, -amax, amax, num_bits=bits, narrow_range=True)
    return q.numpy().reshape(w.shape), amax


def _nearest_model(model, config):
    """Round-to-nearest: every layer's weights fake-quantized by TensorFlow."""
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    nodes = node_map(graph_def)
    for layer in find_layers(model.graph_def)[0]:
        const = nodes[layer.const.name]
        q, _ = _fake_quant(const_value(const), layer.node.op, **config)
        const.attr["value"].tensor.CopyFrom(tf().make_tensor_proto(q))
    return model.replace(graph_def=graph_def)


def test_weights_are_on_the_grid_and_keep_their_range(cnn, rounded):
    model, _, _ = cnn
    config, out, report, _ = rounded
    assert [r.layer for r in report.layers] == LAYERS and report.done == LAYERS
    assert {r.status for r in report.layers} == {"adaround"}
    floats, quantized = _weights(model), _weights(out)
    for row in report.layers:
        w, q = floats[row.layer], quantized[row.layer]
        again, amax = _fake_quant(q, row.op, **config)
        np.testing.assert_allclose(again, q, rtol=0, atol=1e-6 * amax.max())  # already on the grid
        _, amax_float = _fake_quant(w, row.op, **config)
        np.testing.assert_array_equal(amax, amax_float)  # max|W| kept exactly: the scale does not move
        levels = _channels_last(q, row.op) / (amax / (2 ** (config["bits"] - 1) - 1))
        assert np.abs(levels - np.round(levels)).max() < 1e-3
        assert not np.array_equal(q, w)


def _layer_tensors(model, feeds, tensors):
    runner = GraphRunner(model.replace(outputs=[TensorSpec(t, t, "float32", None) for t in tensors]))
    try:
        return runner(feeds)
    finally:
        runner.close()


# Each layer's input comes from the float model (the layer alone) or from the AdaRounded model (x̂,
# what AdaRound optimised it on: ‖W x - W̃ x̂‖); either way only that layer's weights differ between
# the two roundings, and the target is the float model's output of that layer.
@pytest.mark.parametrize(("inputs_from", "bound"), [("float", 0.9), ("adarounded", 0.75)], ids=["alone", "in-chain"])
def test_each_layer_beats_round_to_nearest_on_held_out_data(cnn, rounded, inputs_from, bound):
    model, _, held_out = cnn
    config, out, _, _ = rounded
    nodes = node_map(model.graph_def)
    ins, outs = [canonical_tensor(nodes[n].input[0]) for n in LAYERS], [f"{n}:0" for n in LAYERS]
    exact = _layer_tensors(model, held_out, outs)
    feeds = _layer_tensors(model if inputs_from == "float" else out, held_out, ins)  # fed all at once
    ada, nearest = _layer_tensors(out, feeds, outs), _layer_tensors(_nearest_model(model, config), feeds, outs)
    for name in outs:
        mse_ada, mse_nearest = (np.mean((got[name] - exact[name]) ** 2) for got in (ada, nearest))
        assert mse_ada < bound * mse_nearest, (name, mse_ada / mse_nearest)


def test_network_output_beats_round_to_nearest(cnn, rounded):
    model, _, held_out = cnn
    config, out, _, _ = rounded
    exact = GraphRunner(model)(held_out)["logits"]
    mse_ada = np.mean((GraphRunner(out)(held_out)["logits"] - exact) ** 2)
    mse_nearest = np.mean((GraphRunner(_nearest_model(model, config))(held_out)["logits"] - exact) ** 2)
    assert mse_ada < 0.5 * mse_nearest, mse_ada / mse_nearest


def test_input_model_is_unchanged(cnn, rounded):
    model, _, _ = cnn
    _, out, _, before = rounded
    assert model.graph_def.SerializeToString(deterministic=True) == before
    assert out.graph_def.SerializeToString(deterministic=True) != before
    assert out.inputs == model.inputs and out.outputs == model.outputs


@pytest.mark.parametrize("budget", [0.0, 1e-3], ids=["zero", "1ms"])
def test_spent_time_budget_keeps_layers_float(cnn, budget):
    model, calib, _ = cnn
    out, report = adaround(model, calib, iterations=200, time_budget=budget, hyper=FAST)
    assert report.done == [] and report.kept_float == LAYERS
    assert all(r.iterations == 0 and r.planned == 200 and "time budget" in r.reason for r in report.layers)
    floats, kept = _weights(model), _weights(out)
    for name in LAYERS:
        np.testing.assert_array_equal(kept[name], floats[name])


def test_only_the_named_layers(cnn):
    model, calib, _ = cnn
    steps = []
    out, report = adaround(model, calib, iterations=25, layers=["dw"], hyper=FAST, progress=steps.append)
    assert [r.layer for r in report.layers] == ["dw"] and report.layers[0].iterations == 25
    assert [str(s) for s in steps] == ["AdaRound (1/1)"]
    floats, got = _weights(model), _weights(out)
    assert np.array_equal(got["conv"], floats["conv"]) and not np.array_equal(got["dw"], floats["dw"])


def _mixed(t):
    x = t.compat.v1.placeholder(t.float32, (None, 4), name="x")
    w = t.compat.v1.placeholder(t.float32, (4, 4), name="w")
    shared = t.constant(np.eye(4, dtype=np.float32), name="shared")
    through = t.identity(t.constant(np.eye(4, dtype=np.float32), name="kernel"), name="read")
    y = t.matmul(x, shared, name="a") + t.matmul(x, shared, name="b") + t.matmul(x, w, name="c")
    t.identity(y + t.matmul(x, through, name="d"), name="y")
    t.nn.conv2d(t.reshape(x, (-1, 1, 2, 2)), np.ones((1, 1, 1, 1), np.float32), 1, "SAME", data_format="NCHW",
                name="nchw")


def test_declines_shared_non_constant_and_channels_first_weights():
    model = graph_model(_mixed, {"x": (None, 4), "w": (4, 4)}, ["y"])
    found, skips = find_layers(model.graph_def)
    assert [(layer.node.name, layer.const.name) for layer in found] == [("d", "kernel")]  # through Identity
    reasons = {s.node: s.reason for s in skips}
    assert sorted(reasons) == ["a", "b", "c", "nchw"]
    assert "shared by 2 consumers" in reasons["a"] and "shared by 2 consumers" in reasons["b"]
    assert "not constant (Placeholder)" in reasons["c"] and "only NHWC" in reasons["nchw"]
    with pytest.raises(OptionError, match=r"'a' is not a Conv2D.*shared by 2"):
        adaround(model, {"x": np.ones((2, 4), np.float32), "w": np.ones((2, 4, 4), np.float32)}, layers=["a"])


@pytest.mark.parametrize(("samples", "match"), [({"y": np.ones((2, 8, 8, 1))}, r"unknown \['y'\], missing \['x'\]"),
                                                ({"x": np.ones((0, 8, 8, 1))}, "non-zero number of samples")],
                         ids=["wrong-input", "no-samples"])
def test_bad_samples(cnn, samples, match):
    with pytest.raises(OptionError, match=match):
        adaround(cnn[0], samples)
