"""A value the inputs' static dimensions decide beside an open batch (:func:`tfopt.emitters.static_values.graph_static`,
what a lowering reads as constant: resize scales, reverse axes): computed feeding zeros at batch 1 and 2, and kept
only when a larger batch agrees too. Values the same at the small batches only are not taken."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import graph_model
from tfopt._tf import ELEMENT_BUDGET
from tfopt.emitters.static_values import PROBE_SIZES, graph_static, probe_size

SHAPE = (None, 3, 4, 5)


def _value(t, x, kind: str):
    b = t.shape(x)[0]
    return {"static": t.shape(x)[1:3] * 2 - 1,  # [5, 7] at every batch
            "batch": t.stack([b, t.shape(x)[3]]),  # the batch itself
            "at-least-2": t.stack([1, t.minimum(t.maximum(b, 2), 3)]),  # [1, 2] at batch 1 and 2, [1, 3] beyond
            "quarter": t.stack([t.shape(x)[1], b // 4])}[kind]  # [3, 0] at batch 1 to 3, [3, 15] at 61


@pytest.mark.parametrize(("kind", "want"), [("static", [5, 7]), ("batch", None), ("at-least-2", None),
                                            ("quarter", None)])
def test_a_value_is_static_only_when_a_larger_batch_agrees(kind, want):
    from tfopt._tf import GraphFacts

    def build(t):
        x = t.compat.v1.placeholder(t.float32, SHAPE, name="x")
        t.identity(_value(t, x, kind), name="v")
        t.identity(x * 2.0, name="y")

    model = graph_model(build, {"x": SHAPE}, ["y", "v"])
    got = graph_static(model.graph_def, GraphFacts(model.graph_def))("v:0")
    assert (got is None) if want is None else got.tolist() == want


def test_the_probe_size_keeps_every_input_within_the_element_budget():
    assert probe_size([(None, 3, 4, 5), None]) == PROBE_SIZES[0]
    per_row = ELEMENT_BUDGET // PROBE_SIZES[1]  # fits 11 rows, not 61
    assert probe_size([(None, per_row)]) == PROBE_SIZES[1]
    assert probe_size([(-1, -1, ELEMENT_BUDGET)]) == PROBE_SIZES[-1]  # nothing fits: the smallest
    assert all(np.gcd(size, 6) == 1 for size in PROBE_SIZES)  # shares no factor with the small sizes 1, 2, 3
