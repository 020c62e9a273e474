"""Elementwise math TFLite has no builtin for converts through its exact lowering
(tfopt.emitters.tflite_lower_math) and matches TensorFlow in LiteRT.

Values include large magnitudes, domain edges, ±inf and NaN. Tolerance: 64 float32 ulps relative
(2⁻¹⁸; LiteRT's XNNPACK EXP alone is 31 ulps off at 88), non-finite values identical; Tan's bound
grows as 1/|cos x| (TFLite's COS is accurate to an ulp of 1). Without the lowering every
conversion here fails ("TFLite builtins lack Asinh ..."); Softplus converts without it but as
LOG(1 + EXP(x)), which gives 88.4 for every x past ~88.4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.emitters.tflite_graphs import REL, assert_close, litert, one_op_model, tensorflow
from tests.helpers import ops
from tfopt.emitters.tflite_lower import lower_for_builtins

EDGES = [0.0, -0.0, 1e-30, -1e-7, 1e-6, 3e-4, -0.49, 0.5, 0.51, -0.99, 0.9999, 1.0, -1.0, 1.5, 20.0, 21.0, -50.0,
         88.0, 89.0, 4000.0, 5000.0, -1e6, 3e20, 1e30, math.inf, -math.inf, math.nan]
# op -> (TensorFlow's function, where its values are tested)
UNARY = {"Asinh": "all", "Acosh": "all", "Atanh": "all", "Sinh": "all", "Cosh": "all", "Asin": "all", "Acos": "all",
         "Atan": "all", "Log1p": "all", "Expm1": "all", "Tan": "moderate", "Softplus": "all"}


def _values(where: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    random = np.concatenate([rng.standard_normal(64) * 3, rng.uniform(-1, 1, 32), 10.0 ** rng.uniform(-8, 30, 32)])
    values = np.concatenate([np.array(EDGES), random, -random]).astype(np.float32)
    if where == "moderate":  # TFLite's SIN/COS reduce large arguments inexactly (XNNPACK: NaN at 1e30)
        values = values[~(np.abs(values) > 10)]
    return values


@pytest.mark.parametrize("op", list(UNARY))
def test_elementwise_math_converts_and_matches_tensorflow(op, tmp_path):
    arg = "features" if op == "Softplus" else "x"  # the raw op's own argument name
    model = one_op_model(lambda t, x: [getattr(t.raw_ops, op)(**{arg: x})], (None,))
    assert ops(lower_for_builtins(model).model).get(op, 0) == 0
    x = _values(UNARY[op], seed=len(op))
    out, ref = litert(model, x, tmp_path)["y"], tensorflow(model, x)["y"]
    # tan = sin/cos: TFLite's COS is accurate to an ulp of 1, not of cos x, near a pole
    rel = REL * (1.0 + 1.0 / np.abs(np.cos(x.astype(np.float64)))) if op == "Tan" else REL
    assert_close(out, ref, rel)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32_and_rounded_back(dtype, tmp_path):
    import tensorflow as tf

    model = one_op_model(lambda t, x: [t.math.asinh(x), t.math.atanh(x)], (None,), ("a", "b"), dtype=dtype)
    x = tf.cast(tf.constant(_values("moderate", seed=3)), dtype).numpy()
    out, ref = litert(model, x, tmp_path), tensorflow(model, x)
    for name in ("a", "b"):  # one rounding of the float32 result more than TensorFlow's: one half ulp
        assert_close(out[name].astype(np.float32), ref[name].astype(np.float32), 2.0 ** -7 if dtype == "bfloat16" else 2.0 ** -10)


def test_truncate_mod_keeps_the_dividend_sign(tmp_path):
    model = one_op_model(lambda t, x: [t.raw_ops.TruncateMod(x=x, y=t.reverse(x, [0]))], (None,))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-9, 9, 40), rng.standard_normal(40) * 1e4, [0.0, -0.0, 7.0, -7.0]]).astype(np.float32)
    out, ref = litert(model, x, tmp_path)["y"], tensorflow(model, x)["y"]
    assert_close(out, ref, REL)
