from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.passes.base import run_passes
from tfopt.passes.fold_pad import FoldPad, same_pads
from tfopt.runtimes.tensorflow import GraphRunner

W = np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype(np.float32)


def _model(pads, stride, op="conv"):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, [1, 9, 9, 3], name="x")
        p = t.pad(x, [[0, 0], *pads, [0, 0]])
        if op == "conv":
            t.identity(t.nn.conv2d(p, W, stride, "VALID"), name="out")
        else:
            t.identity(t.nn.depthwise_conv2d(p, W[..., :1], [1, stride, stride, 1], "VALID"), name="out")
    return graph_model(build, {"x": (1, 9, 9, 3)}, ["out"])


@pytest.mark.parametrize(("pads", "stride", "op"), [
    ([[1, 1], [1, 1]], 1, "conv"),   # 3x3 stride 1: SAME pads 1 each side
    ([[0, 1], [0, 1]], 2, "conv"),   # even input (after ZeroPadding2D) is not this case: 9 -> total 2? see same_pads
    ([[1, 1], [1, 1]], 2, "depthwise"),
], ids=["stride1", "stride2-asym", "depthwise-stride2"])
def test_folds_when_exactly_same(pads, stride, op):
    want = [list(same_pads(9, stride, 3, 1))] * 2
    model = _model(pads, stride, op)
    result, stats = run_passes(model, [FoldPad()])
    if pads != want:
        assert "Pad" in ops(result) and "not what SAME adds" in str(stats[0].skips[0])
        return
    after = ops(result)
    assert "Pad" not in after
    conv = next(n for n in result.graph_def.node if n.op in ("Conv2D", "DepthwiseConv2dNative"))
    assert conv.attr["padding"].s == b"SAME"
    x = np.random.default_rng(1).normal(size=(1, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(result)({"x": x})["out"], GraphRunner(model)({"x": x})["out"],
                               rtol=1e-5, atol=1e-6)


def test_same_pads_formula():
    assert same_pads(224, 2, 3, 1) == (0, 1)    # MobileNetV2's ZeroPadding2D((0,1),(0,1))
    assert same_pads(9, 1, 3, 1) == (1, 1)
    assert same_pads(9, 2, 3, 1) == (1, 1)
    assert same_pads(10, 1, 3, 2) == (2, 2)     # dilated kernel spans 5


def test_wider_pad_not_folded():
    model = _model([[2, 2], [2, 2]], 1)
    result, stats = run_passes(model, [FoldPad()])
    assert ops(result)["Pad"] == 1
    assert "pads [[2, 2], [2, 2]] are not what SAME adds here ([[1, 1], [1, 1]])" in str(stats[0].skips[0])
