"""Pools TFLite has no builtin for convert through their lowering (tfopt.emitters.tflite_lower_pool)
and match TensorFlow in LiteRT: MaxPool3D and MaxPoolWithArgmax exactly (values and indices, ties
broken as TensorFlow's CPU kernel does), AvgPool3D within its sum's rounding (k·2⁻²³·max|x|).
Shapes, kernels, strides (≠ kernel), VALID/SAME, include_batch_in_index and Targmax vary.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.emitters.tflite_graphs import litert, one_op_model, tensorflow
from tests.helpers import ops
from tfopt.emitters.tflite_lower import lower_for_builtins

POOLS_3D = [  # (N, D, H, W, C), ksize, strides, padding
    ((2, 5, 6, 7, 3), (2, 2, 2), (2, 2, 2), "VALID"),
    ((1, 5, 6, 7, 2), (3, 2, 3), (1, 2, 2), "SAME"),
    ((2, 4, 5, 5, 1), (2, 3, 2), (3, 1, 2), "SAME"),
    ((1, 3, 3, 3, 4), (3, 3, 3), (1, 1, 1), "VALID"),
    ((1, 7, 4, 6, 2), (3, 1, 2), (2, 1, 3), "SAME"),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOLS_3D, ids=lambda c: f"{'x'.join(map(str, c[0]))}-k{''.join(map(str, c[1]))}"
                         f"-s{''.join(map(str, c[2]))}-{c[3]}")
def test_pool_3d_matches_tensorflow(kind, case, tmp_path):
    shape, ksize, strides, padding = case
    pool = {"max": "max_pool3d", "avg": "avg_pool3d"}[kind]
    model = one_op_model(lambda t, x: [getattr(t.nn, pool)(x, ksize, strides, padding)], (None, *shape[1:]))
    lowered = lower_for_builtins(model).model
    assert ops(lowered).get("MaxPool3D", 0) + ops(lowered).get("AvgPool3D", 0) == 0
    rng = np.random.default_rng(sum(shape))
    x = (rng.integers(-3, 3, shape) * 1e4 + rng.standard_normal(shape)).astype(np.float32)  # ties, large values
    bound = 0.0 if kind == "max" else np.prod(ksize) * 2.0 ** -23 * np.abs(x).max()
    if kind == "max":  # a whole edge depth at -inf: SAME's depth padding must not show through
        x[0, 0] = -np.inf
    out, ref = litert(model, x, tmp_path)["y"], tensorflow(model, x)["y"]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=bound)


ARGMAX = [  # (N, H, W, C), ksize, strides, padding, include_batch_in_index, Targmax
    ((2, 6, 6, 3), (2, 2), (2, 2), "VALID", False, "int64"),
    ((2, 5, 7, 2), (3, 3), (2, 2), "SAME", True, "int32"),
    ((1, 4, 5, 3), (2, 3), (1, 2), "SAME", True, "int64"),
    ((3, 4, 4, 1), (2, 2), (1, 1), "VALID", False, "int32"),
    ((2, 3, 3, 2), (3, 3), (3, 3), "SAME", False, "int64"),
]


@pytest.mark.parametrize("case", ARGMAX, ids=lambda c: f"{'x'.join(map(str, c[0]))}-k{''.join(map(str, c[1]))}"
                         f"-s{''.join(map(str, c[2]))}-{c[3]}-{'batch' if c[4] else 'image'}-{c[5]}")
def test_max_pool_with_argmax_matches_tensorflow_ties_included(case, tmp_path):
    shape, ksize, strides, padding, with_batch, index = case

    def build(t, x):
        return t.nn.max_pool_with_argmax(x, ksize, strides, padding, output_dtype=t.as_dtype(index),
                                         include_batch_in_index=with_batch)

    model = one_op_model(build, (None, *shape[1:]), ("values", "argmax"))
    assert ops(lower_for_builtins(model).model).get("MaxPoolWithArgmax", 0) == 0
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.integers(-2, 2, shape).astype(np.float32)  # most windows tie: TensorFlow's first maximum wins
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = -np.inf, 1e30
    out, ref = litert(model, x, tmp_path), tensorflow(model, x)
    np.testing.assert_array_equal(out["values"], ref["values"])
    assert out["argmax"].dtype == ref["argmax"].dtype
    np.testing.assert_array_equal(out["argmax"], ref["argmax"])
