"""1-D k-means for weight clustering: N centroids for the values of one tensor.

Lloyd's iteration in one dimension: with centroids c₁ < … < c_N sorted, each value belongs to
the nearest centroid, i.e. to the interval between the midpoints (c_{j-1}+c_j)/2 and
(c_j+c_{j+1})/2 (one ``searchsorted``), and each centroid moves to the mean of its values. Each
step lowers Σᵢ (wᵢ − c_{a(i)})², so it converges (to a local optimum the initialisation picks).

Initialisations, as TFMOT names them (``--cluster-init``): ``linear`` (evenly spaced over
[min, max]), ``density`` (at the quantiles (j + ½)/N: equal counts per cluster), ``random``
(uniform over [min, max], seeded) and ``kmeans++`` (D² sampling on a seeded subsample).
With ``keep_zero``, exact zeros (pruning's) stay zero: they are one cluster, fixed at 0, and the
other values share the remaining N − 1 centroids.
"""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 100
KMEANS_PP_SAMPLE = 4096  # kmeans++ seeds from this many values at most (O(N·sample))


def kmeans_1d(values: np.ndarray, n: int, init: str = "kmeans++", *, keep_zero: bool = False,
              seed: int = 0) -> np.ndarray:
    """``values`` (any shape) with each element replaced by its cluster's centroid (float64).

    Args:
        values: the weights.
        n: the number of clusters (shared values) at most.
        init: ``kmeans++``, ``linear``, ``density`` or ``random``.
        keep_zero: exact zeros stay zero and count as one of the ``n`` values.
        seed: seeds ``kmeans++`` and ``random``.

    Returns:
        An array of ``values``'s shape holding at most ``n`` distinct values.
    """
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    out = flat.copy()
    mask = flat != 0 if keep_zero else np.ones(flat.shape, bool)
    k = n - 1 if keep_zero and not mask.all() else n
    live = flat[mask]
    if live.size == 0 or k < 1:
        return np.zeros_like(flat).reshape(np.shape(values)) if keep_zero else out.reshape(np.shape(values))
    centroids = np.unique(_init(live, k, init, seed))
    for _ in range(MAX_ITERATIONS):
        labels = _assign(live, centroids)
        counts = np.bincount(labels, minlength=len(centroids))
        sums = np.bincount(labels, weights=live, minlength=len(centroids))
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        moved = moved[counts > 0]  # an empty cluster is dropped: fewer values, never more
        if moved.shape == centroids.shape and np.allclose(moved, centroids, rtol=0, atol=1e-12 * _scale(live)):
            centroids = moved
            break
        centroids = np.unique(moved)
    out[mask] = centroids[_assign(live, centroids)]
    return out.reshape(np.shape(values))


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centroids`` for each value."""
    if len(centroids) == 1:
        return np.zeros(values.shape, np.int64)
    return np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values).astype(np.int64)


def _scale(values: np.ndarray) -> float:
    return float(np.max(np.abs(values))) or 1.0


def _init(values: np.ndarray, k: int, init: str, seed: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if init == "linear":
        return np.linspace(lo, hi, k)
    if init == "density":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    rng = np.random.default_rng(seed)
    if init == "random":
        return np.sort(rng.uniform(lo, hi, k))
    if init != "kmeans++":
        raise ValueError(f"unknown k-means initialisation {init!r}")
    sample = values if values.size <= KMEANS_PP_SAMPLE else rng.choice(values, KMEANS_PP_SAMPLE, replace=False)
    chosen = [float(sample[rng.integers(sample.size)])]
    distance = (sample - chosen[0]) ** 2
    for _ in range(1, k):
        total = distance.sum()
        if total <= 0:  # fewer distinct values than clusters
            break
        chosen.append(float(sample[rng.choice(sample.size, p=distance / total)]))
        distance = np.minimum(distance, (sample - chosen[-1]) ** 2)
    return np.sort(np.asarray(chosen))
