"""When made-up inputs fail, the error never suggests ``--verify-shape`` at the shape that just failed
(an input whose every dimension is known, or one of unknown rank), and does suggest one that differs."""

from __future__ import annotations

import pytest

from tests.helpers import graph_model
from tfopt.errors import VerificationError
from tfopt.freezing import freeze


def _rejects_made_up_values(shape):
    def build(t):
        x = t.compat.v1.placeholder(t.float32, shape, name="x")
        check = t.debugging.assert_greater(t.reduce_min(x), 100.0)  # random inputs never pass it
        with t.control_dependencies([check]):
            t.identity(x * 2.0, name="out")
    return build


def _needs_nine_values(t):
    x = t.compat.v1.placeholder(t.float32, None, name="x")  # unknown rank: made up as a vector
    t.identity(t.reshape(x, [3, 3]) * 2.0, name="out")


@pytest.mark.parametrize("shape", [(2, 6), (3,), (1, 4, 4, 2)], ids=lambda s: "x".join(map(str, s)))
def test_known_shape_that_failed_is_not_suggested(shape):
    model = graph_model(_rejects_made_up_values(list(shape)), {"x": shape}, ["out"])
    with pytest.raises(VerificationError, match="no usable output") as info:
        freeze(model)
    assert "--verify-shape" not in str(info.value) and "--calibration" in str(info.value)


def test_unknown_rank_shape_that_failed_is_not_suggested():
    model = graph_model(_needs_nine_values, {"x": None}, ["out"])
    with pytest.raises(VerificationError, match="no usable output") as info:
        freeze(model)
    assert "--verify-shape" not in str(info.value)


def test_a_different_shape_is_still_suggested():
    model = graph_model(_rejects_made_up_values([None, None]), {"x": (None, None)}, ["out"])
    with pytest.raises(VerificationError, match=r"--verify-shape x:2xN") as info:
        freeze(model)
    assert "--calibration" in str(info.value)
