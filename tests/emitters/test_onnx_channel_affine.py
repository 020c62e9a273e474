"""`fuse_channel_affine`: a per-channel Mul + Add no conv took becomes one BatchNormalization."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import helper

from tests.emitters.onnx_graphs import graph_model, rewritten, run
from tfopt.emitters.onnx_channel_affine import fuse_channel_affine

C = 6
RNG = np.random.default_rng(0)
SCALE = RNG.uniform(0.5, 2.0, (C, 1, 1)).astype(np.float32)
SHIFT = RNG.standard_normal((C, 1, 1)).astype(np.float32)


def _model(*, scale=SCALE, shift=SHIFT, x_shape=("N", C, 5, 7), extra=(), outputs=("y",)):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Mul", ["r", "s"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "t"], ["y"], name="bn/add"), *extra]
    return graph_model(nodes, {"s": scale, "t": shift}, x_shape, outputs)


def _ops(model):
    return Counter(n.op_type for n in model.graph.node)


@pytest.mark.parametrize("layout", ["C11", "1C11", "rank3"])
def test_fuses_and_computes_the_same(layout):
    scale, shift, x_shape = SCALE, SHIFT, ("N", C, 5, 7)
    if layout == "1C11":
        scale, shift = SCALE[None], SHIFT[None]
    elif layout == "rank3":  # Conv1D's layout: [N, C, L] against [C, 1]
        scale, shift, x_shape = SCALE[:, :, 0], SHIFT[:, :, 0], ("N", C, 9)
    model = _model(scale=scale, shift=shift, x_shape=x_shape)
    new, count = rewritten(fuse_channel_affine, model)
    assert count == 1
    assert _ops(new) == {"Relu": 1, "BatchNormalization": 1}
    assert new.graph.node[-1].output[0] == "y"  # the Add's output name is kept
    assert new.graph.node[-1].name == "bn/add"
    assert {t.name for t in new.graph.initializer} == {f"bn/add/bn_{k}" for k in ("scale", "bias", "mean", "var")}
    x = RNG.standard_normal((3, *[d for d in x_shape[1:]])).astype(np.float32)
    np.testing.assert_allclose(run(new, x), run(model, x), rtol=0, atol=1e-6)  # one rounding of FMA at most


@pytest.mark.parametrize("case", ["scalar_scale", "varies_along_width", "mul_read_twice", "mul_is_output",
                                  "channels_unknown", "int_constants", "rank2"])
def test_does_not_fire(case):
    kwargs: dict = {}
    if case == "scalar_scale":
        kwargs = {"scale": np.float32([1.5])}
    elif case == "varies_along_width":
        kwargs = {"shift": RNG.standard_normal((1, 1, 7)).astype(np.float32)}
    elif case == "mul_read_twice":
        kwargs = {"extra": [helper.make_node("Neg", ["m"], ["z"])], "outputs": ("y", "z")}
    elif case == "mul_is_output":
        kwargs = {"outputs": ("y", "m")}
    elif case == "channels_unknown":
        kwargs = {"x_shape": ("N", "C", 5, 7)}
    elif case == "int_constants":
        kwargs = {"scale": SCALE.astype(np.float64)}
    else:
        kwargs = {"scale": SCALE[:, 0, 0], "shift": SHIFT[:, 0, 0], "x_shape": ("N", C)}
    model = _model(**kwargs)
    new, count = rewritten(fuse_channel_affine, model)
    assert count == 0
    assert _ops(new) == _ops(model)
