"""One symmetric weight grid (:mod:`tfopt.quantizing.engine.weight_grid`) for every place that
quantizes weights: TensorFlow's own fake quant on the stored ranges, the fake-quant graph the
engine writes, bias correction's simulated weights and AdaRound's rounding all land on the same
steps, for generated weights of every layer kind, per channel and per tensor, 8- and 7-bit, with
all-zero, constant and tiny (``max|W| < MIN_AMAX``) channels."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import const_value, tf
from tfopt.graph import node_map, tensor_node
from tfopt.quantizing.engine.adaround import adaround
from tfopt.quantizing.engine.bias_correction import fake_quantize_weights
from tfopt.quantizing.engine.fake_quant import activation_tensors, insert_fake_quant
from tfopt.quantizing.engine.weight_grid import MIN_AMAX, channel_axes, levels, weight_grid

SHAPES = {"Conv2D": (3, 3, 4, 6), "DepthwiseConv2dNative": (3, 3, 3, 2), "MatMul": (5, 6)}


def _weights(op, kind, seed):
    """Channel 0 all zero, 1 constant, 2 tiny, the rest normal at different scales ("mixed"), or a
    whole weight below MIN_AMAX ("tiny")."""
    rng = np.random.default_rng(seed)
    shape = SHAPES[op]
    w = rng.normal(0, 1, shape) * rng.uniform(0.05, 2, shape[-1])
    if kind == "tiny":
        return (w / np.abs(w).max() * MIN_AMAX * 0.4).astype(np.float32)
    flat = w.reshape(*shape[:-2], -1) if op == "DepthwiseConv2dNative" else w  # channels last
    flat[..., 0], flat[..., 1], flat[..., 2] = 0.0, -0.3, flat[..., 2] * 1e-7
    return flat.reshape(shape).astype(np.float32)


def _channels_last(w, op):
    return w.reshape(*w.shape[:2], -1) if op == "DepthwiseConv2dNative" else w


@pytest.mark.parametrize("op", list(SHAPES))
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("bits", [8, 7], ids=["8bit", "7bit"])
@pytest.mark.parametrize("kind", ["mixed", "tiny"])
@pytest.mark.parametrize("narrow_range", [True, False], ids=["narrow", "wide"])
def test_the_grid_is_tensorflows_fake_quant_on_its_ranges(op, per_channel, bits, kind, narrow_range):
    w = _weights(op, kind, seed=bits)
    grid = weight_grid(w, op, per_channel=per_channel, levels=levels(bits))
    lo, hi = grid.ranges(narrow_range=narrow_range)
    flat = _channels_last(w, op)
    channels = flat.shape[-1]
    assert lo.shape == hi.shape == ((channels,) if per_channel and op != "MatMul" else ())
    assert np.all(hi > 0) and np.all(lo < 0)
    tf_q = tf().quantization.fake_quant_with_min_max_vars_per_channel(
        flat, np.broadcast_to(lo, channels), np.broadcast_to(hi, channels), num_bits=8,
        narrow_range=narrow_range).numpy().reshape(w.shape)
    q = grid.quantize(w)
    step = np.broadcast_to(grid.scale, w.shape)
    np.testing.assert_allclose(q / step, tf_q / step, rtol=0, atol=1e-3)  # the same step of the same grid
    steps = q / step
    assert np.abs(steps - np.round(steps)).max() < 1e-4 and np.abs(np.round(steps)).max() <= levels(bits)
    zero = w == 0
    assert np.all(q[zero] == 0)  # all-zero channels stay exactly zero


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_quantize_rounds_within_half_a_step(per_channel):
    rng = np.random.default_rng(0)
    w = (rng.normal(0, 1, (3, 3, 4, 5)) * np.array([1e-3, 0.1, 1, 10, 0])).astype(np.float32)
    q = weight_grid(w, "Conv2D", per_channel=per_channel).quantize(w)
    assert q.dtype == w.dtype and q.shape == w.shape
    amax = np.abs(w).max(axis=(0, 1, 2)) if per_channel else np.full(5, np.abs(w).max())
    scale = np.maximum(amax, MIN_AMAX) / 127
    steps = q / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on the int8 grid
    assert np.abs(steps).max() <= 127 + 1e-3
    assert (np.abs(q - w) <= scale / 2 * (1 + 1e-5) + 1e-12).all()
    assert (q[..., 4] == 0).all()  # an all-zero channel stays zero (no division by zero)
    # per tensor, the 1e-3 channel is below half a step of the 10-channel's grid: it vanishes
    assert (q[..., 0] == 0).all() != per_channel


def test_depthwise_channels_are_in_times_mult():
    w = np.stack([np.full((3, 3, 2), 0.01), np.full((3, 3, 2), 1.0)], axis=-1).astype(np.float32)  # [3, 3, 2, 2]
    grid = weight_grid(w, "DepthwiseConv2dNative")
    np.testing.assert_allclose(grid.quantize(w), w, rtol=1e-6)  # each (in, m) channel has its own step
    lo, hi = grid.ranges()
    np.testing.assert_allclose(hi, [0.01, 1.0, 0.01, 1.0], rtol=1e-6)  # c = i·mult + m
    np.testing.assert_array_equal(lo, -hi)


def test_channel_axes_match_each_layout():
    assert channel_axes("Conv2D", 4) == (3,)
    assert channel_axes("DepthwiseConv2dNative", 4) == (2, 3)
    assert channel_axes("MatMul", 2) == ()  # per tensor, as the engine's fake quants
    assert channel_axes("Conv2D", 4, per_channel=False) == ()


def _layer_model(op, w):
    shape = SHAPES[op]

    def build(t):
        if op == "MatMul":
            x = t.compat.v1.placeholder(t.float32, (None, shape[0]), name="x")
            t.identity(t.matmul(x, w, name="layer"), name="y")
        else:
            x = t.compat.v1.placeholder(t.float32, (None, 6, 6, shape[2]), name="x")
            layer = t.nn.conv2d if op == "Conv2D" else t.nn.depthwise_conv2d
            t.identity(layer(x, w, [1, 1, 1, 1], "SAME", name="layer"), name="y")

    inputs = {"x": (None, shape[0]) if op == "MatMul" else (None, 6, 6, shape[2])}
    return graph_model(build, inputs, ["y"]), inputs


def _weight_of(model, op):
    """The value ``op``'s node reads as its weight (through a fake quant and reshapes, if any)."""
    layer = next(n for n in model.graph_def.node if n.op == op)
    graph = tf().Graph()
    with graph.as_default():
        tf().graph_util.import_graph_def(model.graph_def, name="")
        ref = layer.input[1] if ":" in layer.input[1] else f"{layer.input[1]}:0"
        with tf().compat.v1.Session(graph=graph) as session:
            return session.run(ref)


# Every user of the grid on one generated layer: what the fake-quant graph feeds the layer, what
# bias correction measures with, what AdaRound writes. All sit on the steps of the ranges the
# fake-quant graph stores (what every target converts), within ±L of them.
CASES = [("Conv2D", True, 8, "mixed"), ("Conv2D", False, 7, "mixed"), ("DepthwiseConv2dNative", True, 7, "mixed"),
         ("DepthwiseConv2dNative", True, 8, "tiny"), ("MatMul", True, 8, "mixed"), ("MatMul", False, 7, "tiny")]


@pytest.mark.parametrize(("op", "per_channel", "bits", "kind"), CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_every_user_lands_on_the_stored_grid(op, per_channel, bits, kind):
    w = _weights(op, kind, seed=3)
    model, inputs = _layer_model(op, w)
    ranges = {t: (-1.0, 1.0) for t in activation_tensors(model)}
    faked = insert_fake_quant(model, ranges, per_channel=per_channel, weight_levels=levels(bits))
    nodes = node_map(faked.graph_def)
    fq = next(n for n in faked.graph_def.node if n.op.startswith("FakeQuantWithMinMaxVars") and "/weights_quant" in n.name)
    stored_hi = const_value(nodes[tensor_node(fq.input[2])])
    step = np.asarray(stored_hi, np.float64) / levels(8)  # the stored grid's step, per channel or per tensor

    rng = np.random.default_rng(0)
    samples = {"x": rng.normal(0, 1, (8, *inputs["x"][1:])).astype(np.float32)}
    users = {"fake quant graph": _weight_of(faked, op),
             "bias correction": _weight_of(fake_quantize_weights(model, per_channel=per_channel, levels=levels(bits)), op),
             "adaround": _weight_of(adaround(model, samples, per_channel=per_channel, bits=bits, iterations=20)[0], op)}
    expected = weight_grid(w, op, per_channel=per_channel, levels=levels(bits)).quantize(w)
    for user, got in users.items():
        steps = _channels_last(np.asarray(got, np.float64), op) / step
        assert np.abs(steps - np.round(steps)).max() < 1e-3, user
        assert np.abs(np.round(steps)).max() <= levels(bits), user
        assert np.all(got[w == 0] == 0), user
    for user in ("fake quant graph", "bias correction"):  # round to nearest: the very same values
        np.testing.assert_allclose(users[user], expected, rtol=1e-6, atol=1e-6 * step.min(), err_msg=user)
