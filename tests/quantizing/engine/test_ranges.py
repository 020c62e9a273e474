"""Quantization ranges from activation statistics: each method on distributions whose right answer is
known, the closed forms checked against brute force, degenerate tensors, and --calibration-method parsing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tfopt.errors import ConversionError, OptionError
from tfopt.quantizing.engine.ranges import (
    CalibrationMethod,
    compute_range,
    expected_square_error,
    kl_divergences,
    parse_method,
    quantization_grid,
)
from tfopt.quantizing.engine.statistics import TensorStats

ALL = ["minmax", "percentile", "entropy", "mse"]
CLIPPING = ["percentile", "entropy", "mse"]


def _stats(values) -> TensorStats:
    return TensorStats.empty("t:0").add(np.asarray(values))


def _fake_quant(x: np.ndarray, lo: float, hi: float, levels: int = 256) -> np.ndarray:
    """Round to the uniform grid of ``levels`` points on ``[lo, hi]``, clipping outside."""
    step = (hi - lo) / (levels - 1)
    return lo + np.round((np.clip(x, lo, hi) - lo) / step) * step


def _mse(x: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((x - _fake_quant(x, lo, hi)) ** 2))


@pytest.fixture(scope="module")
def outliers():
    """N(0, 1) with one value at -10 and one at +10 in 200 000."""
    x = np.random.default_rng(0).normal(size=200_000)
    x[:2] = [-10.0, 10.0]
    return x


@pytest.fixture(scope="module", params=["student-t2", "laplace"])
def heavy_tail(request):
    rng = np.random.default_rng(1)
    return rng.standard_t(2, 200_000) if request.param == "student-t2" else rng.laplace(0.0, 1.0, 200_000)


# --- each method on known distributions -------------------------------------------------------------

def test_minmax_is_the_exact_range(outliers):
    assert compute_range(_stats(outliers), "minmax") == (-10.0, 10.0)


@pytest.mark.parametrize("method", CLIPPING)
def test_clipping_methods_drop_rare_outliers_and_keep_the_body(outliers, method):
    lo, hi = compute_range(_stats(outliers), method)
    assert -8 < lo < -3 and 3 < hi < 8, (lo, hi)


@pytest.mark.parametrize("method", ALL)
def test_uniform_data_keeps_about_the_full_range(method):
    x = np.random.default_rng(2).uniform(-1.0, 3.0, 100_000)
    lo, hi = compute_range(_stats(x), method)
    np.testing.assert_allclose((lo, hi), (x.min(), x.max()), atol=0.01 * 4.0, rtol=0)


def test_mse_range_quantizes_heavy_tails_better_than_minmax(heavy_tail):
    stats = _stats(heavy_tail)
    mse_range, minmax_range = compute_range(stats, "mse"), compute_range(stats, "minmax")
    assert mse_range[1] - mse_range[0] < 0.9 * (minmax_range[1] - minmax_range[0])
    assert _mse(heavy_tail, *mse_range) < 0.85 * _mse(heavy_tail, *minmax_range)


def test_mse_range_is_near_the_best_threshold_found_by_brute_force(heavy_tail):
    stats = _stats(heavy_tail)
    brute = min(_mse(heavy_tail, max(stats.min, -t), min(stats.max, t)) for t in np.geomspace(1, stats.amax, 300))
    assert _mse(heavy_tail, *compute_range(stats, "mse")) <= 1.03 * brute


def test_percentile_two_sided_on_skewed_data():
    x = np.random.default_rng(3).exponential(1.0, 100_000) - 1.0
    stats = _stats(x)
    lo, hi = compute_range(stats, "percentile:99")
    want_lo, want_hi = np.percentile(x, [0.5, 99.5], method="inverted_cdf")
    assert want_lo - stats.width <= lo <= want_lo and want_hi <= hi <= want_hi + stats.width


def test_percentile_symmetric_is_of_abs(outliers):
    stats = _stats(outliers)
    lo, hi = compute_range(stats, "percentile:99.9", symmetric=True)
    want = np.percentile(np.abs(outliers), 99.9, method="inverted_cdf")
    assert lo == -hi and want <= hi <= want + stats.width


def test_percentile_100_is_minmax(outliers):
    assert compute_range(_stats(outliers), "percentile:100") == (-10.0, 10.0)


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("symmetric", [False, True], ids=["asymmetric", "symmetric"])
def test_unsigned_tensor_starts_at_zero(outliers, method, symmetric):
    relu = np.maximum(outliers, 0)
    lo, hi = compute_range(_stats(relu), method, symmetric=symmetric)
    assert lo == 0.0 and 1.0 < hi <= 10.0


def test_entropy_is_not_dragged_down_by_relu_zeros():
    """Half the values of a ReLU output are exactly 0; counted as they are, that spike alone would pull
    the KL threshold to about 1.8σ (clipping a tenth of the positive values)."""
    relu = np.maximum(np.random.default_rng(6).normal(size=200_000), 0)
    lo, hi = compute_range(_stats(relu), "entropy")
    assert lo == 0.0 and 3.5 < hi <= relu.max()


@pytest.mark.parametrize(("values", "symmetric", "expected"), [
    ([0.0, 2.0, 5.1], False, (0.0, 5.0 / 255, 256)),
    ([0.0, 2.0, 5.1], True, (0.0, 5.0 / 255, 256)),
    ([-3.0, 1.0, 5.1], False, (-3.0, 8.0 / 255, 256)),
    ([-3.0, 1.0, 5.1], True, (-5.0, 10.0 / 254, 255)),
], ids=["unsigned", "unsigned-symmetric", "asymmetric", "symmetric"])
def test_quantization_grid(values, symmetric, expected):
    lo, step, levels = quantization_grid(_stats(values), 5.0, symmetric=symmetric)
    np.testing.assert_allclose((lo, step, levels), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ALL)
def test_symmetric_signed_range(method):
    x = np.random.default_rng(4).normal(0.5, 1.0, 50_000)
    lo, hi = compute_range(_stats(x), method, symmetric=True)
    assert lo == -hi and hi > 3


# --- degenerate tensors ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize(("values", "expected"), [
    (np.zeros(100), (0.0, 1.0)),
    (np.full(100, 2.5), (0.0, 2.5)),
    (np.full(100, -3.0), (-3.0, 0.0)),
    (np.array([-1e-40, 1e-40]), (-1.0, 1.0)),
], ids=["zero", "positive-constant", "negative-constant", "vanishing"])
def test_degenerate_tensors_get_a_usable_range(method, values, expected):
    assert compute_range(_stats(values), method) == expected


def test_every_range_contains_zero():
    x = np.random.default_rng(5).uniform(-5.0, -2.0, 1000)
    for method in ALL:
        lo, hi = compute_range(_stats(x), method)
        assert lo < -1.9 and hi == 0.0, method


def test_empty_tensor_has_no_range():
    with pytest.raises(ConversionError, match="tensor 't:0' had no values"):
        compute_range(_stats(np.zeros((0, 4))), "minmax")


# --- the closed forms against brute force ---------------------------------------------------------

def test_expected_square_error_matches_sampling():
    edges = np.array([-4.0, -3.1, -1.05, -0.3, 0.0, 0.01, 0.8, 2.0, 2.0, 5.5])  # one bin of zero width
    lo, step, levels = -1.0, 0.25, 13  # grid -1 .. 2
    got = expected_square_error(edges, np.array(lo), np.array(step), np.array(levels))
    want = []
    for a, b in itertools.pairwise(edges):
        x = np.linspace(a, b, 200_001)
        want.append(np.mean((x - _fake_quant(x, lo, lo + (levels - 1) * step, levels)) ** 2))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-9)


def _kl_brute_force(h: np.ndarray, i: int, levels: int) -> float:
    p = h[:i].astype(float)
    clipped = h[i:].sum()
    p[-1] += clipped
    group = (np.arange(i) * levels) // i
    q = np.zeros(i)
    for g in range(levels):
        members = (group == g) & (h[:i] > 0)
        if members.any():
            q[members] = h[:i][group == g].sum() / members.sum()
    if h[i - 1] == 0 and clipped > 0:
        q[-1] = 1e-4
    p, q = p / p.sum(), q / q.sum()
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def test_kl_divergences_match_brute_force():
    h = np.random.default_rng(6).poisson(3.0, 60).astype(float)
    h[[10, 25, 26, 40, 59]] = 0
    candidates = np.arange(8, 61)
    want = [_kl_brute_force(h, i, 8) for i in candidates]
    np.testing.assert_allclose(kl_divergences(h, candidates, 8), want, rtol=1e-9, atol=1e-12)


# --- --calibration-method ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("minmax", CalibrationMethod("minmax")),
    (" Entropy ", CalibrationMethod("entropy")),
    ("mse", CalibrationMethod("mse")),
    ("percentile", CalibrationMethod("percentile", 99.99)),
    ("percentile:99.9", CalibrationMethod("percentile", 99.9)),
    ("PERCENTILE:100", CalibrationMethod("percentile", 100.0)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_parse_method(text, expected):
    method = parse_method(text)
    assert method == expected
    assert parse_method(str(method)) == method


@pytest.mark.parametrize(("text", "problem"), [
    ("kl", "unknown method"),
    ("percentil", "unknown method. Did you mean: percentile"),
    ("minmax:1", "minmax takes no ':' argument"),
    ("percentile:", "the percentile must be a number in \\[50, 100\\]"),
    ("percentile:abc", "the percentile must be a number"),
    ("percentile:0.9999", "the percentile must be a number in \\[50, 100\\], in percent"),
    ("percentile:101", "the percentile must be a number in \\[50, 100\\]"),
    ("percentile:nan", "the percentile must be a number"),
], ids=["unknown", "typo", "argument", "empty", "text", "fraction", "over-100", "nan"])
def test_parse_method_errors(text, problem):
    with pytest.raises(OptionError, match=f"^--calibration-method {text}: {problem}") as info:
        parse_method(text)
    assert "minmax, percentile[:P] (P in [50, 100], default 99.99), entropy, mse" in str(info.value)


def test_compute_range_parses_text(outliers):
    with pytest.raises(OptionError, match="--calibration-method median"):
        compute_range(_stats(outliers), "median")


@pytest.mark.parametrize(("name", "percentile"), [("median", 99.99), ("percentile", 0.5)], ids=["name", "percentile"])
def test_a_method_cannot_be_built_invalid(name, percentile):
    with pytest.raises(OptionError, match=r"--calibration-method .*: choose one of: minmax"):
        CalibrationMethod(name, percentile)
