"""Elementwise math TFLite has no builtin for, as builtins (``LOG``, ``EXP``, ``SQRT``, ``ATAN2``...).

Which ops: those the converter refuses (``Asinh``, ``Acosh``, ``Atanh``, ``Asin``, ``Acos``,
``Atan``, ``Sinh``, ``Cosh``, ``Tan``, float ``TruncateMod``), and three it converts inexactly
(``Log1p`` as ``LOG(1 + x)``, ``Expm1`` as ``EXP(x) - 1``: a relative error of 5% at x = 1e-6,
measured; ``Softplus`` as ``LOG(1 + EXP(x))``, which is 88.4 for every x past ~88.4 where
TensorFlow gives x). ``Erf``, ``Erfc``, ``Digamma``, ``Erfinv``, ``Ndtri`` and the Bessel functions have no
finite exact formula and stay as they are. float16/bfloat16 are computed in float32 and rounded
back (as TensorFlow's CPU kernels do); float64 is left alone (TFLite computes in float32).

Formulas (a = |x|, ε = 2⁻²⁴). The bounds are relative, in ulps of float32, measured in LiteRT with
its default XNNPACK delegate against TensorFlow (the tests): XNNPACK's own ``LOG`` is accurate only
to an ulp of 1 near 1 (so no formula takes a log of 1 + small), and its ``EXP`` is up to 31 ulps
off near 88::

    log1p(x) = 2s · Σ_{k≤7} s^{2k}/(2k + 1),  s = x/(2 + x)    |x| ≤ ½  (series of 2·atanh s)   ≤ 5
             = log(1 + x)                                     |x| > ½  (log ≥ 0.4: no loss)
    expm1(x) = x(1 + x/2(1 + x/3(… (1 + x/9))))               |x| ≤ ½  (Taylor, tail < 2⁻³⁰)  ≤ 3
             = e^x − 1                                        |x| > ½  (no cancellation)   ≤ 31
    asinh(x) = sign(x) · log1p(a + a²/(1 + √(1 + a²)))        a ≤ 2¹²                      ≤ 3
             = sign(x) · (log(a) + ln 2)                      a > 2¹² (√(a²+1) = a to ε/2)
    acosh(x) = log1p(t + √(t·(t + 2))),  t = x − 1            x ≤ 2¹²                      ≤ 5
             = log(x) + ln 2                                  x > 2¹²;  NaN for x < 1
    atanh(x) = sign(x) · ½ · log1p(2a / (1 − a))              (±inf at a = 1, NaN past it)  ≤ 4
    sinh(x)  = sign(x) · ½ · (m + m / (m + 1)),  m = expm1(a) a ≤ 20                      ≤ 31
             = sign(x) · h · (h / 2),  h = e^{a/2}            a > 20 (e^{−a} below ε; finite to 89.4)
    cosh(x)  = ½ · (e^a + 1/e^a)  (a ≤ 20);   h · (h / 2)  (a > 20)                        ≤ 31
    tan(x)   = sin(x) / cos(x)                      ≤ 4/|cos x| (TFLite's COS: an ulp of 1)
    asin(x)  = atan2(x, √((1 − x)(1 + x)))     acos(x) = atan2(√((1 − x)(1 + x)), x)      ≤ 4
    atan(x)  = atan2(x, 1)                                                                 ≤ 3
    truncatemod(x, y) = sign(x) · floormod(|x|, |y|)     (fmod's sign rule)                exact
    softplus(x) = ½x + ½|x| + log1p(e^{−|x|})       (max(x, 0) without overflow; −inf → 0)  ≤ 31

±inf and NaN come out as TensorFlow gives them: ``LOG(inf)`` is 88.4 in XNNPACK and the converter
stores an inf constant as the largest float, so inf is tested as ``x > FLT_MAX`` and made as
``x + x``; a NaN input is selected through (a NaN may fall in the branch a Select drops). Tan of a
large argument (|x| > ~1e4) is as inexact as TFLite's own SIN/COS there.

In an int8 build, no Select, Minimum or Maximum here takes the op's input as an operand: the
converter gives such "same scale" ops the int8 scale of their quantized operand, which would round
the formula's result to the input's grid (measured: asinh off by 93).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import FLOATS, Operand, registry

LN2 = math.log(2.0)
BIG = 4096.0  # 2^12: above it √(a² + 1) = a to half an ulp of float32
FLOAT_MAX = 3.4028234663852886e38  # float32's largest finite value
EXP_SPLIT = 20.0  # above it e^{-a} < 2^-28 e^a: the small term is below float32's rounding


def _t() -> Any:
    from tfopt._tf import tf

    return tf()


def _in_float32(f: Callable[..., Any]) -> Callable[[Any, Sequence[Any]], Sequence[Any]]:
    """Run the formula ``f`` in float32 and give the result the input's dtype."""

    def build(node: Any, inputs: Sequence[Any]) -> Sequence[Any]:
        t = _t()
        dtype = inputs[0].dtype
        args = [x if x.dtype == t.float32 else t.cast(x, t.float32) for x in inputs]
        out = f(*args)
        for arg in args:  # NaN in, NaN out (a NaN can fall in the branch a Select drops)
            out = t.where(t.not_equal(arg, arg), t.constant(math.nan), out)
        return [out if dtype == t.float32 else t.cast(out, dtype)]

    return build


def log1p(x: Any) -> Any:
    """log(1 + x) to a few ulp: a series for |x| ≤ ½ (the module docstring), ``LOG`` past it."""
    t = _t()
    s = x / (2.0 + x)
    z = s * s
    series = t.constant(1.0 / 15.0)
    for k in (13, 11, 9, 7, 5, 3, 1):
        series = 1.0 / k + z * series
    far = _log(1.0 + x)
    return t.where(t.less_equal(t.abs(x), 0.5), 2.0 * s * series, far)


def expm1(x: Any) -> Any:
    """e^x − 1 to a few ulp: a Taylor series for |x| ≤ ½ (the module docstring), ``EXP`` past it."""
    t = _t()
    series = 1.0 + x / 9.0
    for k in (8, 7, 6, 5, 4, 3, 2):
        series = 1.0 + x / float(k) * series
    return t.where(t.less_equal(t.abs(x), 0.5), x * series, t.exp(x) - 1.0)


def _log(x: Any) -> Any:
    """log x, with log(inf) = inf (TFLite's XNNPACK LOG gives 88.4 there). The converter stores an
    inf constant as the largest float, so inf is tested as "above the largest float" and made as
    ``x + x``; a Select never passes ``x`` itself (in an int8 build, the converter would carry
    ``x``'s int8 scale into the Select and round the result to it)."""
    t = _t()
    return t.where(t.greater(x, FLOAT_MAX), x + x, t.math.log(x))


def _signed(x: Any, magnitude: Any) -> Any:
    t = _t()
    return t.where(t.less(x, 0.0), -magnitude, magnitude)


def _asinh(x: Any) -> Any:
    t = _t()
    a = t.abs(x)
    small = log1p(a + a * a / (1.0 + t.sqrt(1.0 + a * a)))
    return _signed(x, t.where(t.greater(a, BIG), _log(a) + LN2, small))


def _acosh(x: Any) -> Any:
    t = _t()
    d = x - 1.0
    small = log1p(d + t.sqrt(d * (d + 2.0)))
    out = t.where(t.greater(x, BIG), _log(x) + LN2, small)
    return t.where(t.less(x, 1.0), t.constant(math.nan), out)  # d·(d + 2) ≥ 0 again below −1


def _atanh(x: Any) -> Any:
    t = _t()
    a = t.abs(x)
    return _signed(x, 0.5 * log1p(2.0 * a / (1.0 - a)))


def _sinh(x: Any) -> Any:
    t = _t()
    a = t.abs(x)
    m = expm1(a)
    h = t.exp(0.5 * a)
    return _signed(x, t.where(t.greater(a, EXP_SPLIT), h * (0.5 * h), 0.5 * (m + m / (m + 1.0))))


def _cosh(x: Any) -> Any:
    t = _t()
    a = t.abs(x)
    e = t.exp(a)
    h = t.exp(0.5 * a)
    return t.where(t.greater(a, EXP_SPLIT), h * (0.5 * h), 0.5 * (e + 1.0 / e))


def _softplus(x: Any) -> Any:
    """log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}): the exponent is never positive, so nothing
    overflows. max(x, 0) is ½x + ½|x| (exact in float32, finite up to the largest float), not a
    Maximum with ``x`` as an operand (see the int8 note above); −inf gives NaN there and is 0."""
    t = _t()
    a = t.abs(x)
    out = (0.5 * x + 0.5 * a) + log1p(t.exp(-a))
    return t.where(t.less(x, -FLOAT_MAX), t.zeros_like(out), out)


def _cosine_side(x: Any) -> Any:
    t = _t()
    return t.sqrt((1.0 - x) * (1.0 + x))


UNARY: dict[str, tuple[Callable[[Any], Any], str]] = {
    "Asinh": (_asinh, "sign(x)·log1p(|x| + x²/(1 + √(1 + x²))), log|x| + ln 2 past 2¹²"),
    "Acosh": (_acosh, "log1p(t + √(t(t + 2))), t = x − 1; log x + ln 2 past 2¹²"),
    "Atanh": (_atanh, "sign(x)·½·log1p(2|x|/(1 − |x|))"),
    "Sinh": (_sinh, "sign(x)·½(m + m/(m + 1)), m = expm1|x|; e^{|x|/2}·e^{|x|/2}/2 past 20"),
    "Cosh": (_cosh, "½(e^|x| + e^−|x|); e^{|x|/2}·e^{|x|/2}/2 past 20"),
    "Tan": (lambda x: _t().sin(x) / _t().cos(x), "sin/cos"),
    "Asin": (lambda x: _t().atan2(x, _cosine_side(x)), "atan2(x, √((1 − x)(1 + x)))"),
    "Acos": (lambda x: _t().atan2(_cosine_side(x), x), "atan2(√((1 − x)(1 + x)), x)"),
    "Atan": (lambda x: _t().atan2(x, _t().ones_like(x)), "atan2(x, 1)"),
    "Log1p": (log1p, "2·atanh(x/(2 + x)) series for |x| ≤ ½, log(1 + x) past it"),
    "Expm1": (expm1, "Taylor series for |x| ≤ ½, e^x − 1 past it"),
    "Softplus": (_softplus, "½x + ½|x| + log1p(e^−|x|)"),
}

for _op, (_formula, _what) in UNARY.items():
    registry.register(_op, what=_what)(_in_float32(_formula))


def _truncate_mod_check(node: Any, operands: Sequence[Operand]) -> str | None:
    if any(o.dtype.name not in FLOATS for o in operands):
        return f"TruncateMod on {operands[0].dtype.name}: lowered for floats only (an integer |INT_MIN| overflows)"
    return None


@registry.register("TruncateMod", what="sign(x)·floormod(|x|, |y|)", check=_truncate_mod_check)
def _truncate_mod(node: Any, inputs: Sequence[Any]) -> Sequence[Any]:
    def mod(x: Any, y: Any) -> Any:
        t = _t()
        return t.sign(x) * t.math.floormod(t.abs(x), t.abs(y))

    return _in_float32(mod)(node, inputs)
