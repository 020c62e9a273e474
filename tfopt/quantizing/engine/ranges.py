"""Quantization ranges from activation statistics: ``--calibration-method minmax|percentile[:P]|entropy|mse``.

Every method reads a :class:`~tfopt.quantizing.engine.statistics.TensorStats` (exact min/max, histogram of
``x`` with bin width ``w``) and returns ``(lo, hi)`` for an 8-bit grid:

* unsigned tensor (``min >= 0``, a ReLU's output): ``lo = 0``, 256 levels on ``[0, hi]``;
* signed, asymmetric (default; TFLite's and ONNX's int8 activations): 256 levels on ``[lo, hi]``;
* signed, ``symmetric=True``: ``lo = -hi``, 255 levels (int8 ``-127..127``).

The methods:

* ``minmax``: ``(min, max)``, every value representable, outliers included.
* ``percentile[:P]`` (``P`` in [50, 100], default 99.99): keep ``P`` % of the values. Two-sided for an
  asymmetric signed range: ``(100 - P) / 2`` % is clipped below and as much above. For a symmetric or
  unsigned range it is the ``P``-th percentile of ``|x|`` (ONNX Runtime's and TensorRT's reading).
  Read off the histogram rounded outward to a bin edge, so within one bin of the exact quantile.
* ``entropy``: TensorRT's KL-divergence calibration (Migacz, GTC 2017), on the histogram of
  ``|x|`` (``B`` bins ``h_j``), with ``N = 128`` quantized bins (256 for an unsigned tensor, whose
  8 bits all go to magnitude). For each candidate threshold ``t_i = i·w``, ``i = N .. B``:
  ``p = h[0:i]`` with every clipped count added to its last bin (``p_{i-1} += Σ_{j>=i} h_j``);
  ``q`` merges ``h[0:i]`` into ``N`` groups (bin ``j`` -> group ``floor(j·N / i)``) and spreads each
  group's count evenly over the group's non-empty bins. The threshold minimises
  ``KL(p‖q) = Σ_j p̂_j·log(p̂_j / q̂_j)`` (``p̂``, ``q̂`` normalised); ties go to the largest ``t``.
  Two details from the reference implementations: bin 0 takes bin 1's count first
  (pytorch-quantization), so a spike of exact zeros (ReLU) does not drag the threshold down; and
  an empty last bin, where the clipped count lands, gets ``q = ε = 1e-4`` (a count, ONNX Runtime's
  smoothing constant), a finite penalty: TensorRT's toolkit makes it ``∞``, which rules out every
  threshold in a gap of a sparse tail and so keeps far outliers.
* ``mse``: the threshold ``t`` minimising the expected squared quantization error
  ``E[(x - Q_t(x))²]`` over the histogram, where ``Q_t`` rounds to the nearest point of the grid
  ``lo + k·s`` (``k = 0 .. n-1``, ``hi = lo + (n-1)·s``) built from ``t`` as above, and clips outside
  ``[lo, hi]``. Values are taken uniform within each bin (bins trimmed to ``[min, max]``), so each
  bin's error is exact: with ``G`` an antiderivative of the squared error,
  ``E_bin = (G(b) - G(a)) / (b - a)``, where, with ``v = (x - lo) / s`` and ``r = round(v)``,
  ``G(x) = (x - lo)³/3`` below ``lo``, ``s³·((v - r)³/3 + r/12)`` inside (one grid step holds
  ``s³/12``), and ``G(hi) + (x - hi)³/3`` above ``hi``. Candidates are the |x| bin edges up to
  ``amax``, searched every ``B/128``-th edge, then edge by edge around the best.

Threshold methods give ``t`` on ``|x|``; the range is ``(max(min, -t), min(max, t))`` (asymmetric),
``(-t, t)`` (symmetric) or ``(0, min(max, t))`` (unsigned). Every range then contains 0, which
TFLite, ONNX and OpenVINO need exactly representable (``lo <= 0 <= hi``), so a constant tensor
``c`` gets ``(0, c)`` or ``(c, 0)``. A range still degenerate (an all-zero tensor, or a span whose
int8 scale ``span / 255`` is not a normal float32) is widened to ``(0, 1)`` (``(-1, 1)`` if signed):
its values all quantize to 0 exactly and the scale stays ordinary (ONNX Runtime uses scale 1 there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tfopt.errors import ConversionError, OptionError, did_you_mean
from tfopt.quantizing.engine.statistics import TensorStats

METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.99
CHOICES = "minmax, percentile[:P] (P in [50, 100], default 99.99), entropy, mse"
MIN_SPAN = 255 * float(np.finfo(np.float32).tiny)
ENTROPY_BINS = 128  # quantized bins of |x| for a signed int8 tensor; twice that when unsigned
MSE_COARSE = 128  # candidates in the MSE search's first sweep
_BLOCK = 1 << 14  # array elements per vectorised block of candidates
EPSILON = 1e-4  # q of an empty last bin (a count): ONNX Runtime's smoothing constant


@dataclass(frozen=True)
class CalibrationMethod:
    """A parsed ``--calibration-method``: ``name`` in :data:`METHODS`; ``percentile`` for ``percentile``."""

    name: str
    percentile: float = DEFAULT_PERCENTILE

    def __post_init__(self) -> None:
        if self.name not in METHODS or not 50 <= self.percentile <= 100:
            raise OptionError(f"--calibration-method {self}: choose one of: {CHOICES}")

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.name == "percentile" else self.name


def parse_method(text: str) -> CalibrationMethod:
    """``"minmax"``, ``"percentile"``, ``"percentile:99.9"``, ``"entropy"`` or ``"mse"`` (any case).

    Raises:
        OptionError: naming ``--calibration-method``, the value and the valid choices.
    """
    name, sep, arg = text.strip().lower().partition(":")
    if name not in METHODS:
        raise OptionError(f"--calibration-method {text}: unknown method.{did_you_mean(name, METHODS)} "
                          f"Choose one of: {CHOICES}")
    if name != "percentile":
        if sep:
            raise OptionError(f"--calibration-method {text}: {name} takes no ':' argument. Choose one of: {CHOICES}")
        return CalibrationMethod(name)
    if not sep:
        return CalibrationMethod(name)
    try:
        value = float(arg)
    except ValueError:
        value = math.nan
    if not 50 <= value <= 100:  # NaN fails too
        raise OptionError(f"--calibration-method {text}: the percentile must be a number in [50, 100], in percent "
                          f"(percentile:99.9 keeps 99.9 % of the values). Choose one of: {CHOICES}")
    return CalibrationMethod(name, value)


def compute_range(stats: TensorStats, method: CalibrationMethod | str, *, symmetric: bool = False) -> tuple[float, float]:
    """The ``(lo, hi)`` that ``method`` gives for ``stats`` (see the module docstring).

    Args:
        stats: what calibration saw of the tensor.
        method: a :class:`CalibrationMethod` or its text (``"percentile:99.9"``).
        symmetric: a signed tensor gets ``(-t, t)`` on 255 levels; an unsigned one keeps ``(0, t)``.

    Returns:
        ``(lo, hi)`` with ``lo <= 0 <= hi`` and ``hi - lo >= MIN_SPAN``.

    Raises:
        OptionError: a bad method text.
        ConversionError: the tensor had no values on the calibration samples.
    """
    if isinstance(method, str):
        method = parse_method(method)
    if stats.count == 0:
        raise ConversionError(f"tensor '{stats.tensor}' had no values on the calibration samples (it is empty): it "
                              "has no quantization range; keep its layer in float with --keep-float")
    lo, hi = _RANGES[method.name](stats, method, symmetric)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if not hi - lo >= MIN_SPAN:
        return (0.0, 1.0) if stats.unsigned else (-1.0, 1.0)
    return lo, hi


def quantization_grid(stats: TensorStats, t: float, *, symmetric: bool = False) -> tuple[float, float, int]:
    """``(lo, step, levels)`` of the grid a threshold ``t`` on ``|x|`` gives (clipped, with 0 inside)."""
    if stats.unsigned:
        lo, hi, levels = 0.0, min(stats.max, t), 256
    elif symmetric:
        t = min(t, stats.amax)
        lo, hi, levels = -t, t, 255
    else:
        lo, hi, levels = min(max(stats.min, -t), 0.0), max(min(stats.max, t), 0.0), 256
    return lo, (hi - lo) / (levels - 1), levels


def _clipped(stats: TensorStats, t: float, symmetric: bool) -> tuple[float, float]:
    lo, step, levels = quantization_grid(stats, t, symmetric=symmetric)
    return lo, lo + step * (levels - 1)


def _minmax(stats: TensorStats, method: CalibrationMethod, symmetric: bool) -> tuple[float, float]:
    return _clipped(stats, stats.amax, symmetric)


def _percentile(stats: TensorStats, method: CalibrationMethod, symmetric: bool) -> tuple[float, float]:
    keep = method.percentile / 100
    if stats.unsigned or symmetric:
        counts, edges = stats.abs_histogram()
        j = min(int(np.searchsorted(np.cumsum(counts), keep * stats.count, side="left")), len(counts) - 1)
        return _clipped(stats, float(edges[j + 1]), symmetric)
    counts, edges = stats.histogram()
    cum = np.cumsum(counts)
    tail = (1 - keep) / 2 * stats.count
    # lo: the highest edge with at most `tail` values below it; hi: the lowest with at most `tail` above.
    j_lo = min(int(np.searchsorted(cum, tail, side="right")), len(counts) - 1)
    j_hi = min(int(np.searchsorted(cum, stats.count - tail, side="left")), len(counts) - 1)
    return max(float(edges[j_lo]), stats.min), min(float(edges[j_hi + 1]), stats.max)


def _entropy(stats: TensorStats, method: CalibrationMethod, symmetric: bool) -> tuple[float, float]:
    counts, edges = stats.abs_histogram()
    levels = 2 * ENTROPY_BINS if stats.unsigned else ENTROPY_BINS
    top = _top_bin(stats)
    if top <= levels:  # no more occupied bins than quantized ones: nothing to gain by clipping
        return _clipped(stats, stats.amax, symmetric)
    h = counts[:top].astype(np.float64)
    h[0] = h[1]
    candidates = np.arange(levels, top + 1)
    rows = max(1, _BLOCK // levels)  # candidates per block: temporaries stay in cache
    divergences = np.concatenate([kl_divergences(h, candidates[i:i + rows], levels)
                                  for i in range(0, len(candidates), rows)])
    best = len(divergences) - 1 - int(np.argmin(divergences[::-1]))  # the last minimum: the widest range
    return _clipped(stats, float(edges[candidates[best]]), symmetric)


def kl_divergences(h: np.ndarray, candidates: np.ndarray, levels: int) -> np.ndarray:
    """``KL(p‖q)`` of the module docstring for each candidate bin count ``i``, in ``O(levels)`` each.

    Within group ``g`` (bins ``[c_g, c_{g+1})``, ``c_g = ceil(g·i / levels)``, count ``S_g`` over
    ``N_g`` non-empty bins) every non-empty bin has ``q = S_g / N_g``, so
    ``Σ_j p_j·log q_j = Σ_g S_g·log(S_g / N_g) + o·log q_{i-1}`` (``o``: the clipped count added to
    ``p_{i-1}``), and ``KL = (Σ p·log p - Σ p·log q) / P + log(Q / P)`` with ``P = Σ p``, ``Q = Σ q``.
    Prefix sums give every term without touching the ``i`` bins one by one.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
    mass = np.concatenate([[0.0], np.cumsum(h)])  # mass[k] = Σ_{j<k} h_j
    filled = np.concatenate([[0], np.cumsum(h > 0)])
    entropy_sum = np.concatenate([[0.0], np.cumsum(plogp)])
    i = candidates.astype(np.int64)
    total = mass[-1]
    clipped = total - mass[i]
    last = h[i - 1]
    starts = -((-np.arange(levels + 1)[None, :] * i[:, None]) // levels)  # c_g = ceil(g·i / levels)
    sums = mass[starts[:, 1:]] - mass[starts[:, :-1]]
    nonzero = filled[starts[:, 1:]] - filled[starts[:, :-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        group_terms = np.where(sums > 0, sums * np.log(sums / np.where(nonzero > 0, nonzero, 1)), 0.0).sum(axis=1)
        # q of the last bin: its group's mean, or EPSILON if the bin is empty (where the clipped count lands)
        last_group = ((i - 1) * levels) // i
        rows = np.arange(len(i))
        q_last = np.where(last > 0, sums[rows, last_group] / np.maximum(nonzero[rows, last_group], 1), EPSILON)
        p_last = last + clipped
        sum_plogp = entropy_sum[i - 1] + np.where(p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1.0)), 0.0)
        sum_plogq = group_terms + np.where(clipped > 0, clipped * np.log(q_last), 0.0)
        q_total = mass[i] + np.where((last == 0) & (clipped > 0), EPSILON, 0.0)
        kl = (sum_plogp - sum_plogq) / total + np.log(q_total / total)
    return np.where(mass[i] > 0, kl, np.inf)


def _top_bin(stats: TensorStats) -> int:
    """How many |x| bins hold data: up to and including the one holding ``amax``."""
    return min(int(stats.amax / stats.width) + 1, stats.bins) if stats.width else 0


def _mse(stats: TensorStats, method: CalibrationMethod, symmetric: bool) -> tuple[float, float]:
    if stats.width == 0 or stats.min == stats.max:  # one value: the full range holds it exactly
        return _clipped(stats, stats.amax, symmetric)
    counts, edges = stats.histogram()
    used = np.flatnonzero(counts)
    first, last = used[0], used[-1] + 1
    # Bins trimmed to [min, max]: the outermost ones are only partly filled.
    trimmed = np.clip(edges[first:last + 1], stats.min, stats.max)
    weights = counts[first:last] / stats.count
    top = _top_bin(stats)

    def cost(ks: np.ndarray) -> np.ndarray:
        grids = [quantization_grid(stats, min(k * stats.width, stats.amax), symmetric=symmetric) for k in ks]
        lo, step, levels = (np.array(v, dtype=np.float64)[:, None] for v in zip(*grids))
        rows = max(1, _BLOCK // len(trimmed))  # candidates per block: temporaries stay in cache
        return np.concatenate([expected_square_error(trimmed[None, :], lo[i:i + rows], step[i:i + rows],
                                                     levels[i:i + rows]) @ weights for i in range(0, len(ks), rows)])

    stride = max(1, top // MSE_COARSE)
    coarse = np.unique(np.append(np.arange(stride, top + 1, stride), top))
    best = int(coarse[np.argmin(cost(coarse))])
    fine = np.arange(max(1, best - stride), min(top, best + stride) + 1)
    best = int(fine[np.argmin(cost(fine))])
    return _clipped(stats, min(best * stats.width, stats.amax), symmetric)


def expected_square_error(edges: np.ndarray, lo: np.ndarray, step: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``E[(x - Q(x))²]`` for ``x`` uniform in each bin ``[edges[..., k], edges[..., k+1]]`` (the point
    ``edges[..., k]`` when the bin is empty of width), ``Q`` rounding to the nearest of
    ``lo + n·step`` (``n = 0 .. levels-1``) and clipping outside; arrays broadcast, the result has
    one fewer entry on the last axis than ``edges``."""
    hi = lo + (levels - 1) * step
    safe = np.where(step > 0, step, 1.0)
    v = (np.clip(edges, lo, hi) - lo) / safe
    r = np.floor(v + 0.5)
    d, below, above = v - r, np.minimum(edges - lo, 0.0), np.maximum(edges - hi, 0.0)
    # G, an antiderivative of the squared error (module docstring): a grid step holds step³/12.
    g = step * step * step * (d * d * d / 3 + r / 12) + (below * below * below + above * above * above) / 3
    span = np.diff(edges, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.diff(g, axis=-1) / span
    if np.any(span == 0):
        error = edges - (lo + r * step) * (edges <= hi) * (edges >= lo) - lo * (edges < lo) - hi * (edges > hi)
        mean = np.where(span > 0, mean, (error * error)[..., :-1])
    return mean


_RANGES: dict[str, Callable[[TensorStats, CalibrationMethod, bool], tuple[float, float]]] = {
    "minmax": _minmax, "percentile": _percentile, "entropy": _entropy, "mse": _mse,
}
