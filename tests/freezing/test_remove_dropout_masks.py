"""remove_dropout on masks applied to something other than a rescaled ``x`` (held-out set 23: odachi's
graph convolutions draw ``Cast(U >= knock) * W`` on their weights, ``knock = 0`` at inference, and all 4
masks stayed in every artifact with "scaling ... is not x / 1 or x * 1: dropout kept"). At rate 0 the mask
is all ones, so the applier is exactly its other operand: a DropConnect mask on a weight (``Cast`` then
``Mul``, either side), a ``SelectV2`` of an unscaled tensor, TF 1.12's ``floor(1 + U)`` on an unscaled
tensor. Asserted: no random op left, no skip, and the frozen graph equal bit for bit to the model without
dropout; a mask at a training rate stays, with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.freezing import freeze
from tfopt.runtimes.tensorflow import GraphRunner

W = np.random.default_rng(23).normal(size=[6, 4]).astype(np.float32)
RANDOM = {"RandomUniform", "Floor", "GreaterEqual", "SelectV2"}


def _weights(t, rate):  # odachi's GraphConv: x @ (Cast(U >= rate) * W)
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    mask = t.cast(t.greater_equal(t.random.uniform([6, 4]), rate), t.float32)
    t.identity(t.nn.elu(t.matmul(x, mask * W)), name="out")


def _weights_right(t, rate):  # W * mask: the mask on the other side of the Mul
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    mask = t.cast(t.greater_equal(t.random.uniform([6, 4]), rate), t.float32)
    t.identity(t.nn.elu(t.matmul(x, W * mask)), name="out")


def _select(t, rate):  # where(U >= rate, h, 0) of an unscaled h
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    h = t.matmul(x, W)
    t.identity(t.nn.elu(t.where(t.random.uniform([2, 4]) >= rate, h, t.zeros_like(h))), name="out")


def _floor(t, rate):  # TF 1.12's mask floor(keep + U) on an unscaled h
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    h = t.matmul(x, W)
    t.identity(t.nn.elu(h * t.floor((1.0 - rate) + t.random.uniform([2, 4]))), name="out")


def _plain(t):  # the same model without dropout
    x = t.compat.v1.placeholder(t.float32, [2, 6], name="x")
    t.identity(t.nn.elu(t.matmul(x, W)), name="out")


CASES = {"weights": _weights, "weights-right": _weights_right, "select": _select, "floor": _floor}


def _frozen(build, rate):
    model = graph_model(lambda t: build(t, rate), {"x": (2, 6)}, ["out"])
    assert ops(model)["RandomUniform"] == 1
    return freeze(model, verify=False)


@pytest.mark.parametrize("case", list(CASES))
def test_a_mask_at_rate_0_on_anything_is_removed_exactly(case):
    frozen, report = _frozen(CASES[case], 0.0)
    assert not RANDOM & set(ops(frozen)), ops(frozen)
    assert next(p for p in report.passes if p.name == "remove_dropout").skips == []
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    plain = graph_model(_plain, {"x": (2, 6)}, ["out"])
    np.testing.assert_array_equal(GraphRunner(frozen)({"x": x})["out"], GraphRunner(plain)({"x": x})["out"])


@pytest.mark.parametrize("case", list(CASES))
def test_a_mask_at_a_training_rate_stays_with_its_reason(case):
    frozen, report = _frozen(CASES[case], 0.25)
    assert "RandomUniform" in ops(frozen)
    skips = next(p for p in report.passes if p.name == "remove_dropout").skips
    assert len(skips) == 1 and ("is 0.25, not 0" in skips[0].reason or "is 0.75, not 1" in skips[0].reason), skips
