"""Empirical bias correction: the weight quantizer it simulates, the mean output error it removes
on held-out data, and that it changes nothing but biases."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt._tf import const_value
from tfopt.errors import OptionError
from tfopt.graph import DT_DOUBLE, TensorSpec, consumers, node_map
from tfopt.passes._correction_graph import BLOCK_ROWS, correction_graph, in_graph_means
from tfopt.passes._linear import add_bias, const_array, set_const
from tfopt.passes.base import copy_graph
from tfopt.quantizing.engine._channels import Layer, as_layer, channel_stats, out_channels
from tfopt.quantizing.engine.bias_correction import bias_correct, fake_quantize_weights, quantizable_layers
from tfopt.quantizing.engine.weight_grid import weight_grid
from tfopt.runtimes.tensorflow import GraphRunner

SHAPE = (None, 8, 8, 3)


def _conv(t, x, w, name):
    return t.raw_ops.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME", name=name)


def _net(t, fc_bias=None):
    """conv+bias -> Relu -> conv (no bias) -> Relu -> depthwise -> mean -> dense+bias (zeros by default)."""
    rng = np.random.default_rng(11)
    a = 10 ** rng.uniform(-1.5, 0.5, 8)
    x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
    y = t.nn.relu(t.nn.bias_add(_conv(t, x, (rng.normal(0, 1, (3, 3, 3, 8)) * a).astype(np.float32), "c1"),
                                (rng.normal(0, 1, 8) * a).astype(np.float32)))
    y = t.nn.relu(_conv(t, y, rng.normal(0, 1, (3, 3, 8, 8)).astype(np.float32), "c2"))
    y = t.raw_ops.DepthwiseConv2dNative(input=y, filter=rng.normal(0, 1, (3, 3, 8, 1)).astype(np.float32),
                                        strides=[1, 1, 1, 1], padding="SAME", name="dw")
    y = t.reduce_mean(y, axis=[1, 2])
    t.nn.bias_add(t.matmul(y, rng.normal(0, 1, (8, 4)).astype(np.float32), name="fc"),
                  np.zeros(4, np.float32) if fc_bias is None else fc_bias, name="out")


def _images(n, seed):
    """Image-like inputs: a positive mean, which is what turns weight error into a mean shift."""
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return graph_model(_net, {"x": SHAPE}, ["out"])


def _out(model, x):
    return GraphRunner(model)({"x": x})["out"]


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_mean_output_error_drops_on_held_out_data(model, per_channel):
    corrected, report = bias_correct(model, {"x": _images(64, seed=1)}, per_channel=per_channel)
    assert [row.layer for row in report.layers] == ["c1", "c2", "dw", "fc"] and report.skips == []
    held_out = _images(64, seed=2)
    want = _out(model, held_out)

    def mean_error(m):
        got = _out(fake_quantize_weights(m, per_channel=per_channel), held_out)
        return np.abs((got - want).mean(axis=0)).mean()
    before, after = mean_error(model), mean_error(corrected)
    # measured ~85x (per channel) and ~115x (per tensor); a correction made for the other
    # quantizer than the one evaluated gets only ~3x
    assert after * 10 <= before, (before, after)


def test_only_biases_change(model):
    corrected, report = bias_correct(model, {"x": _images(32, seed=1)})
    old, new = node_map(model.graph_def), node_map(corrected.graph_def)
    # c2 and dw had no bias: each gets a BiasAdd under its own name, the conv renamed beside it
    assert {k: v - ops(model).get(k, 0) for k, v in ops(corrected).items() if v != ops(model).get(k, 0)} == \
        {"BiasAdd": 2, "Const": 2}
    assert [row.layer for row in report.layers if row.bias_created] == ["c2", "dw"]
    assert new["c2"].op == "BiasAdd" and new["c2/linear"].op == "Conv2D"
    for name, node in old.items():
        if node.op == "Const" and name in new and node.attr["value"] != new[name].attr["value"]:
            assert name == old["BiasAdd"].input[1] or name == old["out"].input[1], name  # only c1's and fc's bias
    np.testing.assert_allclose(const_value(new["c2/bias"]), report.corrections["c2"], rtol=1e-6)
    fc_bias = const_value(new[old["out"].input[1]]) - const_value(old[old["out"].input[1]])
    np.testing.assert_allclose(fc_bias, report.corrections["fc"], rtol=1e-5, atol=1e-7)
    assert np.abs(report.corrections["fc"]).max() > 1e-3  # a real correction, not a no-op


def test_layers_kept_float_are_neither_rounded_nor_corrected(model):
    """A layer the engine keeps in float has no rounding shift of its own: ``skip`` leaves its bias
    alone, and the layers after it are corrected for the others' rounding only."""
    samples = {"x": _images(32, seed=1)}
    _, full = bias_correct(model, samples)
    corrected, report = bias_correct(model, samples, skip=["c1"])
    assert "c1" not in report.corrections and set(report.corrections) == set(full.corrections) - {"c1"}
    old, new = node_map(model.graph_def), node_map(corrected.graph_def)
    bias = old["BiasAdd"].input[1]  # c1's bias
    np.testing.assert_array_equal(const_value(new[bias]), const_value(old[bias]))
    # c1's rounding no longer upstream of c2 and dw (fc, after a mean of dw's corrected output, has
    # E[input] = the float one either way: its correction is the same up to float32 rounding)
    for name in ("c2", "dw"):
        assert not np.allclose(report.corrections[name], full.corrections[name], rtol=0.05), name


def test_no_new_bias_corrects_only_layers_with_a_bias(model):
    """``new_biases=False`` (a target whose int8 kernels pay for a bias, OpenVINO): layers whose bias
    is absent (c2, dw) or zero (fc) are rounded but not corrected, no BiasAdd is created, fc's zero
    bias stays zero; c1, the one biased layer, gets the same correction as with every layer corrected."""
    samples = {"x": _images(32, seed=1)}
    _, full = bias_correct(model, samples)
    corrected, report = bias_correct(model, samples, new_biases=False)
    assert list(report.corrections) == ["c1"] and not any(row.bias_created for row in report.layers)
    assert sorted(s.node for s in report.skips) == ["c2", "dw", "fc"], report.skips
    assert ops(corrected) == ops(model)
    old, new = node_map(model.graph_def), node_map(corrected.graph_def)
    assert not np.any(const_value(new[old["out"].input[1]]))
    np.testing.assert_allclose(report.corrections["c1"], full.corrections["c1"], rtol=1e-6)


def test_no_new_bias_leaves_the_uncorrected_shift_to_the_next_biased_layer():
    """With fc biased, c2's and dw's rounding shift reaches fc, whose correction includes it: the
    mean output error on held-out data drops as much as when every layer is corrected."""
    fc_bias = np.random.default_rng(3).normal(0, 1, 4).astype(np.float32)
    biased = graph_model(lambda t: _net(t, fc_bias), {"x": SHAPE}, ["out"])
    samples, held_out = {"x": _images(64, seed=1)}, _images(64, seed=2)
    want = _out(biased, held_out)

    def mean_error(m):
        return np.abs((_out(fake_quantize_weights(m), held_out) - want).mean(axis=0)).mean()
    corrected, report = bias_correct(biased, samples, new_biases=False)
    assert list(report.corrections) == ["c1", "fc"]
    before, after = mean_error(biased), mean_error(corrected)
    assert after * 10 <= before, (before, after)


def test_float_output_moves_by_the_correction_alone():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        w = (np.random.default_rng(5).normal(0, 1, (3, 3, 3, 6)) * np.geomspace(0.01, 10, 6)).astype(np.float32)
        t.nn.bias_add(_conv(t, x, w, "c1"), np.ones(6, np.float32), name="out")
    single = graph_model(build, {"x": SHAPE}, ["out"])
    corrected, report = bias_correct(single, {"x": _images(16, seed=1)}, per_channel=False)
    x = _images(4, seed=9)
    shift = _out(corrected, x) - _out(single, x)
    np.testing.assert_allclose(shift, np.broadcast_to(report.corrections["c1"], shift.shape), rtol=1e-4, atol=1e-5)
    assert np.abs(report.corrections["c1"]).max() > 1e-3


def test_samples_as_a_list_of_batches(model):
    images = _images(16, seed=1)
    _, from_dict = bias_correct(model, {"x": images})
    _, from_list = bias_correct(model, [{"x": images[i:i + 4]} for i in range(0, 16, 4)])
    assert from_list.batches == 4 and from_dict.batches == 1
    for name, delta in from_dict.corrections.items():
        np.testing.assert_allclose(from_list.corrections[name], delta, rtol=1e-4, atol=1e-6)


def test_layer_with_non_constant_weights_is_reported():
    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        w = t.compat.v1.placeholder(t.float32, (1, 1, 3, 3), name="w")
        y = t.nn.relu(_conv(t, x, np.full((1, 1, 3, 3), 0.5, np.float32), "c1"))
        t.identity(_conv(t, y, w, "c2"), name="out")
    m = graph_model(build, {"x": SHAPE, "w": (1, 1, 3, 3)}, ["out"])
    _, report = bias_correct(m, [{"x": _images(4, seed=1), "w": np.ones((1, 1, 3, 3), np.float32)}])
    assert [row.layer for row in report.layers] == ["c1"]
    assert [str(s) for s in report.skips] == ["c2: weights not quantized: weights of 'c2' are not constant (Placeholder)"]


def test_missing_input_in_samples(model):
    with pytest.raises(OptionError, match="no values for input 'x'"):
        bias_correct(model, {"image": _images(4, seed=1)})


def _generated(blocks, width, seed):
    """A generated multi-layer graph of ``blocks`` blocks, cycling through the shapes the
    correction meets: conv+bias+Relu6, a residual (1x1 conv -> depthwise -> conv without bias, added
    back), two convs concatenated, then mean -> dense+bias -> Relu -> dense without bias."""
    def build(t):
        rng = np.random.default_rng(seed)

        def w(*shape):
            return (rng.normal(0, 1, shape) * 10 ** rng.uniform(-1, 0.3, shape[-1])).astype(np.float32)
        y = t.nn.relu6(t.nn.bias_add(_conv(t, t.compat.v1.placeholder(t.float32, SHAPE, name="x"), w(3, 3, 3, width),
                                           "stem"), w(width)))
        for i in range(blocks):
            if i % 3 == 0:
                y = t.nn.relu6(t.nn.bias_add(_conv(t, y, w(3, 3, width, width), f"b{i}/conv"), w(width)))
            elif i % 3 == 1:
                z = t.nn.relu(_conv(t, y, w(1, 1, width, width), f"b{i}/expand"))
                z = t.raw_ops.DepthwiseConv2dNative(input=z, filter=w(3, 3, width, 1), strides=[1, 1, 1, 1],
                                                    padding="SAME", name=f"b{i}/dw")
                y = y + _conv(t, t.nn.relu(z), w(1, 1, width, width), f"b{i}/project")
            else:
                half = width // 2
                y = t.nn.relu(t.concat([_conv(t, y, w(3, 3, width, half), f"b{i}/left"),
                                        _conv(t, y, w(1, 1, width, width - half), f"b{i}/right")], axis=-1))
        y = t.nn.relu(t.nn.bias_add(t.matmul(t.reduce_mean(y, axis=[1, 2]), w(width, 6), name="fc1"), w(6)))
        t.identity(t.matmul(y, w(6, 3), name="fc2"), name="out")
    return graph_model(build, {"x": SHAPE}, ["out"])


def _layer_by_layer(model, batches, *, per_channel, skip=()):
    """The definition, run the slow way: correct one layer, re-run the whole model for the next."""
    work = copy_graph(model.graph_def)
    layers = [layer for layer in quantizable_layers(work)[0] if layer.op.name not in skip]
    names = [layer.op.name for layer in layers]
    expected = channel_stats(model, [f"{n}:0" for n in names], batches)
    for layer in layers:
        weights = const_array(layer.weights)
        set_const(layer.weights, weight_grid(weights, layer.op.op, per_channel=per_channel).quantize(weights))
    deltas = {}
    for name, layer in zip(names, layers):
        deltas[name] = expected[f"{name}:0"][0] - channel_stats(model.replace(graph_def=work), [f"{name}:0"],
                                                                batches)[f"{name}:0"][0]
        nodes = node_map(work)
        fresh = as_layer(nodes, consumers(work), nodes[name])
        add_bias(work, fresh if isinstance(fresh, Layer) else layer, deltas[name])
    return deltas


GENERATED = [(1, 4, 0), (3, 6, 1), (5, 8, 2), (8, 5, 3)]


@pytest.mark.parametrize(("blocks", "width", "seed"), GENERATED, ids=[f"{b}blocks-{w}wide" for b, w, _ in GENERATED])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_propagated_corrections_equal_layer_by_layer(blocks, width, seed, per_channel):
    """Feeding each corrected output to the layers below gives the layer-by-layer corrections:
    within 1e-4 of the largest correction plus 1e-4 relative (float32 sums in another order)."""
    model = _generated(blocks, width, seed)
    batches = [{"x": _images(6, seed=seed * 10 + i)} for i in range(3)]  # kept outputs are per batch
    skip = ["b1/expand"] if blocks > 1 else []  # a float layer between corrected ones is recomputed, not fed
    _, report = bias_correct(model, batches, per_channel=per_channel, skip=skip)
    want = _layer_by_layer(model, batches, per_channel=per_channel, skip=skip)
    assert list(report.corrections) == list(want) and len(want) >= 4
    scale = max(np.abs(d).max() for d in want.values())
    for name, delta in want.items():
        np.testing.assert_allclose(report.corrections[name], delta, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
    assert scale > 1e-2  # real corrections


@pytest.mark.parametrize(("blocks", "width", "seed"), GENERATED, ids=[f"{b}blocks-{w}wide" for b, w, _ in GENERATED])
def test_one_quantized_pass_whatever_the_depth(blocks, width, seed):
    """The cost counted in the code: two sessions (float, quantized), one run per layer and batch,
    and each quantized node evaluated about once per batch, however many layers there are (layer by
    layer re-running the model costs about layers/2 passes)."""
    model = _generated(blocks, width, seed)
    _, report = bias_correct(model, [{"x": _images(4, seed=i)} for i in range(2)])
    count, layers = report.passes, len(report.layers)
    assert count.sessions == 2 and count.runs == 2 * (1 + layers)
    assert count.graph_nodes == len(model.graph_def.node) and layers >= 4
    assert 0.5 < count.quantized_passes <= 1.25, count  # a node read by two layers is counted twice
    assert report.as_dict()["passes"]["quantized_passes"] == round(count.quantized_passes, 3)


@pytest.mark.parametrize(("blocks", "width", "seed"), GENERATED, ids=[f"{b}blocks-{w}wide" for b, w, _ in GENERATED])
def test_one_batch_corrects_in_one_run(blocks, width, seed):
    """With one batch (what the engine passes: every sample in one array), the corrections are the
    layer-by-layer ones, computed in a single run of the quantized graph whatever the depth
    (one float run for the means, one quantized run), not one run per layer."""
    model = _generated(blocks, width, seed)
    images = _images(8, seed=seed)
    skip = ["b1/expand"] if blocks > 1 else []
    _, report = bias_correct(model, {"x": images}, skip=skip)
    count = report.passes
    assert (count.sessions, count.runs) == (2, 2) and len(report.layers) >= 4
    assert 0.5 < count.quantized_passes <= 1.25, count
    want = _layer_by_layer(model, [{"x": images}], per_channel=True, skip=skip)
    assert list(report.corrections) == list(want)
    scale = max(np.abs(d).max() for d in want.values())
    for name, delta in want.items():
        np.testing.assert_allclose(report.corrections[name], delta, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
    assert scale > 1e-2


@pytest.mark.parametrize(("blocks", "width", "seed"), GENERATED, ids=[f"{b}blocks-{w}wide" for b, w, _ in GENERATED])
@pytest.mark.parametrize("samples", [3, 8, 13])
def test_in_graph_means_are_float64_sums_of_float32_blocks(blocks, width, seed, samples):
    """Each in-graph correction's mean of ``ỹ`` is within ``γ_{B−1}·mean|ỹ|`` per channel of the
    float64 mean of the same activations (B = BLOCK_ROWS rows per float32 partial sum), for row
    counts below, at and off a multiple of B; and nothing of activation size is cast to float64:
    every float64 cast reads at most ``n·C/B + B·C`` values (a cast of the whole ``[n, C]``
    activation cost ~12x the sum)."""
    model = _generated(blocks, width, seed)
    quantized = fake_quantize_weights(model)
    layers = quantizable_layers(quantized.graph_def)[0]
    expected = {layer.op.name: np.zeros(out_channels(layer)) for layer in layers}  # so δ = −mean
    work, fetch = correction_graph(quantized, layers, expected)
    casts = [n for n in work.node if n.op == "Cast" and n.attr["DstT"].type == DT_DOUBLE and n.input[0] in
             {m.name for m in work.node if m.op in ("Sum", "Slice", "Reshape")}]
    outputs = [f"{layer.op.name}:0" for layer in layers]
    cast_inputs = [f"{n.input[0]}:0" for n in casts]
    tensors = [*fetch.values(), *outputs, *cast_inputs]
    runner = GraphRunner(quantized.replace(graph_def=work, outputs=[TensorSpec(t, t, "float32", None) for t in tensors]))
    try:
        values = dict(zip(tensors, runner.fetch(tensors, {"x": _images(samples, seed=seed)})))
    finally:
        runner.close()
    gamma = (BLOCK_ROWS - 1) * 2.0 ** -24 / (1 - (BLOCK_ROWS - 1) * 2.0 ** -24)
    for layer in layers:
        y = values[f"{layer.op.name}:0"]
        rows = y.reshape(-1, y.shape[-1]).astype(np.float64)
        mean, bound = rows.mean(axis=0), gamma * np.abs(rows).mean(axis=0) + 1e-12
        got = -values[fetch[layer.op.name]]
        assert np.all(np.abs(got - mean) <= bound), (layer.op.name, np.abs(got - mean).max(), bound.max())
    assert len(cast_inputs) == 2 * len(layers)
    biggest = max(values[o].size for o in outputs)
    for name in cast_inputs:
        size, channels = values[name].size, values[name].shape[-1]
        assert size <= biggest / BLOCK_ROWS + BLOCK_ROWS * channels, (name, values[name].shape)


@pytest.mark.parametrize(("blocks", "width", "seed"), GENERATED, ids=[f"{b}blocks-{w}wide" for b, w, _ in GENERATED])
@pytest.mark.parametrize("samples", [3, 13])
def test_float_means_in_one_run_within_the_block_bound(blocks, width, seed, samples):
    """The float model's ``E[y]`` for one batch, summed in the graph, is within ``γ_{B−1}·mean|y|``
    per channel of the float64 mean of the activations (``channel_stats``, which copies every
    activation out), and the model itself is left as it was."""
    model = _generated(blocks, width, seed)
    layers = quantizable_layers(model.graph_def)[0]
    batch = {"x": _images(samples, seed=seed)}
    before = model.graph_def.SerializeToString()
    got = in_graph_means(model, layers, batch)
    assert model.graph_def.SerializeToString() == before
    gamma = (BLOCK_ROWS - 1) * 2.0 ** -24 / (1 - (BLOCK_ROWS - 1) * 2.0 ** -24)
    runner = GraphRunner(model.replace(outputs=[TensorSpec(f"{n.op.name}:0", f"{n.op.name}:0", "float32", None)
                                                for n in layers]))
    values = runner.fetch([f"{n.op.name}:0" for n in layers], batch)
    for layer, y in zip(layers, values):
        rows = y.reshape(-1, y.shape[-1]).astype(np.float64)
        assert np.all(np.abs(got[layer.op.name] - rows.mean(axis=0)) <= gamma * np.abs(rows).mean(axis=0) + 1e-12)
