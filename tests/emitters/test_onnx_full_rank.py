"""`full_rank_constants`: lower-rank constant operands get their partner's rank; ORT gives the same bits."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.emitters.onnx_graphs import graph_model, rewritten, run
from tfopt.emitters.onnx_full_rank import full_rank_constants

SPEC = ("N", 40, 256, 1)  # a one-channel spectrogram, NHWC as tf2onnx leaves a graph input


def _ranks(model):
    return {t.name: len(t.dims) for t in model.graph.initializer}


def test_scalar_like_scale_and_shift_get_full_rank_and_the_same_bits():
    model = graph_model([helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["t", "m"], ["y"])],
                        {"s": np.float32([1.7]), "t": np.float32([-0.3])}, SPEC)
    new, count = rewritten(full_rank_constants, model)
    assert count == 2
    assert _ranks(new) == {"s/rank4": 4, "t/rank4": 4}  # the rank-1 originals are gone: nothing reads them
    x = np.random.default_rng(0).standard_normal((2, 40, 256, 1)).astype(np.float32)
    np.testing.assert_array_equal(run(new, x), run(model, x))  # tolerance 0: the same arithmetic


def test_a_constant_read_by_three_ops_gets_one_full_rank_copy():
    model = graph_model([helper.make_node("Mul", ["x", "s"], ["y"]), helper.make_node("Sub", ["x", "s"], ["z"]),
                         helper.make_node("Div", ["s", "x"], ["w"])],
                        {"s": np.float32([2.0])}, SPEC, outputs=("y", "z", "w"))
    new, count = rewritten(full_rank_constants, model)
    assert count == 3
    assert _ranks(new) == {"s/rank4": 4}


@pytest.mark.parametrize("case", ["already_full_rank", "two_tensors", "unknown_rank", "not_elementwise"])
def test_does_not_fire(case):
    nodes, inits, shape = [helper.make_node("Mul", ["x", "s"], ["y"])], {"s": np.float32([0.1])}, SPEC
    if case == "already_full_rank":
        inits = {"s": np.ones((1, 1, 1, 1), np.float32)}
    elif case == "two_tensors":
        nodes, inits = [helper.make_node("Mul", ["x", "x"], ["y"])], {}
    elif case == "unknown_rank":
        shape = None
    else:
        nodes = [helper.make_node("PRelu", ["x", "s"], ["y"])]
    model = graph_model(nodes, inits, shape)
    new, count = rewritten(full_rank_constants, model)
    assert count == 0
    assert new.SerializeToString() == model.SerializeToString()
