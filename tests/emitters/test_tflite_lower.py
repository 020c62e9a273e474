"""Ops TFLite has no builtin for convert through their exact lowerings (tfopt.emitters.tflite_lower).

Each case is a tiny graph holding the op, converted by the TFLite emitter and run in LiteRT (its
default XNNPACK delegate), compared with TensorFlow on values that include ties, large magnitudes,
domain edges, ±inf and NaN. Tolerances: elementwise math within 64 float32 ulps relative (2⁻¹⁸;
XNNPACK's own EXP is 31 ulps off at 88), non-finite values identical; MaxPool3D and
MaxPoolWithArgmax exact (values and indices); AvgPool3D within the sum's rounding
(k·2⁻²³·max|x|). Without the lowering every conversion here fails ("TFLite builtins lack ...").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import graph_model, ops
from tfopt.emitters.tflite import emit_tflite
from tfopt.emitters.tflite_lower import lower_for_builtins
from tfopt.graph import Model, TensorSpec

ULP = 2.0 ** -24
REL = 64 * ULP


def _model(build, shape, outputs=("y",), dtype="float32") -> Model:
    def graph(t):
        x = t.compat.v1.placeholder(t.as_dtype(dtype), shape, name="x")
        for name, value in zip(outputs, build(t, x)):
            t.identity(value, name=name)

    model = graph_model(graph, {"x": shape}, list(outputs))
    return model.replace(inputs=[TensorSpec("x", "x:0", dtype, tuple(shape))])


def _litert(model: Model, x: np.ndarray, tmp_path) -> dict[str, np.ndarray]:
    from tfopt.runtimes.tflite import open_runner

    path = emit_tflite(model, str(tmp_path / "m.tflite"))
    runner = open_runner(path, model)
    try:
        return runner({"x": x})
    finally:
        runner.close()


def _tensorflow(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    from tfopt.runtimes.tensorflow import GraphRunner

    return GraphRunner(model)({"x": x})


EDGES = [0.0, -0.0, 1e-30, -1e-7, 1e-6, 3e-4, -0.49, 0.5, 0.51, -0.99, 0.9999, 1.0, -1.0, 1.5, 20.0, 21.0, -50.0,
         88.0, 89.0, 4000.0, 5000.0, -1e6, 3e20, 1e30, math.inf, -math.inf, math.nan]
# op -> (TensorFlow's function, where its values are tested)
UNARY = {"Asinh": "all", "Acosh": "all", "Atanh": "all", "Sinh": "all", "Cosh": "all", "Asin": "all", "Acos": "all",
         "Atan": "all", "Log1p": "all", "Expm1": "all", "Tan": "moderate"}


def _values(where: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    random = np.concatenate([rng.standard_normal(64) * 3, rng.uniform(-1, 1, 32), 10.0 ** rng.uniform(-8, 30, 32)])
    values = np.concatenate([np.array(EDGES), random, -random]).astype(np.float32)
    if where == "moderate":  # TFLite's SIN/COS reduce large arguments inexactly (XNNPACK: NaN at 1e30)
        values = values[~(np.abs(values) > 10)]
    return values


def _assert_close(out: np.ndarray, ref: np.ndarray, rel: np.ndarray | float) -> None:
    assert out.shape == ref.shape and out.dtype == ref.dtype
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(out[~finite], ref[~finite])  # ±inf and NaN where TensorFlow has them
    err = np.abs(out[finite].astype(np.float64) - ref[finite])
    bound = np.broadcast_to(rel, ref.shape)[finite] * np.maximum(np.abs(ref[finite]), np.finfo(np.float32).tiny)
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (ref[finite][worst], out[finite][worst])


@pytest.mark.parametrize("op", list(UNARY))
def test_elementwise_math_converts_and_matches_tensorflow(op, tmp_path):
    model = _model(lambda t, x: [getattr(t.raw_ops, op)(x=x)], (None,))
    assert ops(lower_for_builtins(model).model).get(op, 0) == 0
    x = _values(UNARY[op], seed=len(op))
    out, ref = _litert(model, x, tmp_path)["y"], _tensorflow(model, x)["y"]
    # tan = sin/cos: TFLite's COS is accurate to an ulp of 1, not of cos x, near a pole
    rel = REL * (1.0 + 1.0 / np.abs(np.cos(x.astype(np.float64)))) if op == "Tan" else REL
    _assert_close(out, ref, rel)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32_and_rounded_back(dtype, tmp_path):
    import tensorflow as tf

    model = _model(lambda t, x: [t.math.asinh(x), t.math.atanh(x)], (None,), ("a", "b"), dtype=dtype)
    x = tf.cast(tf.constant(_values("moderate", seed=3)), dtype).numpy()
    out, ref = _litert(model, x, tmp_path), _tensorflow(model, x)
    for name in ("a", "b"):  # one rounding of the float32 result more than TensorFlow's: one half ulp
        _assert_close(out[name].astype(np.float32), ref[name].astype(np.float32), 2.0 ** -7 if dtype == "bfloat16" else 2.0 ** -10)


def test_truncate_mod_keeps_the_dividend_sign(tmp_path):
    model = _model(lambda t, x: [t.raw_ops.TruncateMod(x=x, y=t.reverse(x, [0]))], (None,))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-9, 9, 40), rng.standard_normal(40) * 1e4, [0.0, -0.0, 7.0, -7.0]]).astype(np.float32)
    out, ref = _litert(model, x, tmp_path)["y"], _tensorflow(model, x)["y"]
    _assert_close(out, ref, REL)


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
    model = _model(lambda t, x: [getattr(t.nn, pool)(x, ksize, strides, padding)], (None, *shape[1:]))
    lowered = lower_for_builtins(model).model
    assert ops(lowered).get("MaxPool3D", 0) + ops(lowered).get("AvgPool3D", 0) == 0
    rng = np.random.default_rng(sum(shape))
    x = (rng.integers(-3, 3, shape) * 1e4 + rng.standard_normal(shape)).astype(np.float32)  # ties, large values
    out, ref = _litert(model, x, tmp_path)["y"], _tensorflow(model, x)["y"]
    assert out.shape == ref.shape
    bound = 0.0 if kind == "max" else np.prod(ksize) * 2.0 ** -23 * np.abs(x).max()
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

    model = _model(build, (None, *shape[1:]), ("values", "argmax"))
    assert ops(lower_for_builtins(model).model).get("MaxPoolWithArgmax", 0) == 0
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.integers(-2, 2, shape).astype(np.float32)  # most windows tie: TensorFlow's first maximum wins
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = -np.inf, 1e30
    out, ref = _litert(model, x, tmp_path), _tensorflow(model, x)
    np.testing.assert_array_equal(out["values"], ref["values"])
    assert out["argmax"].dtype == ref["argmax"].dtype
    np.testing.assert_array_equal(out["argmax"], ref["argmax"])
