"""Per-channel views of conv/matmul weights and calibration statistics: shared by the weight
transforms :mod:`.equalize` and :mod:`.bias_correction` (a layer's bias, found or created, is
:mod:`tfopt.passes._linear`'s, shared with the bias snap).

Channel layout (channels-last graphs only):

=======================  ===============  ==========================  =================
op                       W layout         output channel k            input channel i
=======================  ===============  ==========================  =================
Conv2D                   [h, w, in, out]  W[..., k]                   W[:, :, i, :]
DepthwiseConv2dNative    [h, w, in, m]    W[:, :, k // m, k % m]      W[:, :, i, :]
MatMul                   [in, out]        W[:, k]                     W[i, :]
MatMul (transpose_b)     [out, in]        W[k, :]                     W[:, i]
=======================  ===============  ==========================  =================

so, with ``x`` the layer's input, ``op(x·s_in, W) == op(x, W·s_in)`` along the input axis and
``op(x, W)·s_out == op(x, W·s_out)`` along the output axes: every transform here is one of those
two identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import (
    DT_DOUBLE,
    DT_FLOAT,
    Model,
    TensorSpec,
    attr_bytes,
    is_control,
    tensor_node,
)
from tfopt.passes._linear import Linear, find_bias, plain_const

LAYER_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})
WEIGHT_TYPES = frozenset({DT_FLOAT, DT_DOUBLE})

Samples = Mapping[str, Any] | Sequence[Mapping[str, Any]]


@dataclass
class Layer(Linear):
    """A conv/matmul with constant weights, and the per-channel bias after it (if any)."""

    @property
    def out_axes(self) -> tuple[int, ...]:
        """Axes of W indexing the output channel (C order: k = i·m + j for depthwise)."""
        if self.op.op == "DepthwiseConv2dNative":
            return (2, 3)
        if self.op.op == "MatMul":
            return (0,) if self.op.attr["transpose_b"].b else (1,)
        return (3,)

    @property
    def in_axis(self) -> int:
        if self.op.op == "MatMul":
            return 1 if self.op.attr["transpose_b"].b else 0
        return 2


def channel_max(w: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """``max|W|`` per channel indexed by ``axes`` (flattened in C order)."""
    other = tuple(a for a in range(w.ndim) if a not in axes)
    return np.abs(w).max(axis=other).reshape(-1)


def scale_axes(w: np.ndarray, axes: Sequence[int], s: np.ndarray) -> np.ndarray:
    """``W·s`` with ``s`` laid along ``axes`` (one factor per channel)."""
    return w * s.reshape([w.shape[a] if a in axes else 1 for a in range(w.ndim)])


def constant_input_response(layer: Layer, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``Σ_i W[.., i, .., k]·c_i`` per output channel k: what a constant input ``c`` adds to each
    output away from zero padding (a matmul, a VALID or 1x1 conv)."""
    weighted = scale_axes(w, (layer.in_axis,), c)
    other = tuple(a for a in range(w.ndim) if a not in layer.out_axes)
    return weighted.sum(axis=other).reshape(-1)


def data_consumers(users: Mapping[str, list[tuple[Any, int]]], name: str) -> list[Any]:
    return [u for u, i in users.get(name, []) if not is_control(u.input[i])]


def layer_problem(nodes: dict[str, Any], users: Mapping[str, list[tuple[Any, int]]], op: Any) -> str | None:
    """Why ``op`` (a :data:`LAYER_OPS` node) cannot have its weights rewritten, or ``None``."""
    if attr_bytes(op, "data_format") not in (b"", b"NHWC"):
        return f"'{op.name}' uses {attr_bytes(op, 'data_format').decode()}; only channels-last is rewritten"
    if op.op == "MatMul" and op.attr["transpose_a"].b:
        return f"'{op.name}' has transpose_a: its input channels are not the last axis"
    weights = plain_const(nodes, op.input[1])
    if weights is None:
        src = nodes.get(tensor_node(op.input[1]))
        return f"weights of '{op.name}' are not constant ({src.op if src else 'missing'})"
    if len(users.get(weights.name, [])) > 1:
        return f"weights '{weights.name}' are shared by {len(users[weights.name])} consumers"
    if weights.attr["dtype"].type not in WEIGHT_TYPES:
        return f"weights of '{op.name}' are not float32/float64"
    return None


def out_channels(layer: Layer) -> int:
    shape = [d.size for d in layer.weights.attr["value"].tensor.tensor_shape.dim]
    return int(np.prod([shape[a] for a in layer.out_axes]))


def as_layer(nodes: dict[str, Any], users: Mapping[str, list[tuple[Any, int]]], op: Any) -> Layer | str:
    """``op`` as a :class:`Layer` (bias found when it has one), or why its weights cannot change."""
    reason = layer_problem(nodes, users, op)
    if reason:
        return reason
    layer = Layer(op, plain_const(nodes, op.input[1]))
    found = find_bias(nodes, users, op, out_channels(layer))
    if found:
        layer.bias_add, layer.bias = found
    return layer


def sample_batches(samples: Samples, inputs: Sequence[TensorSpec]) -> list[dict[str, np.ndarray]]:
    """Calibration samples as feedable batches.

    Args:
        samples: ``{input name: array}`` (samples on each input's batch axis,
            :func:`tfopt.verification.data_batches.sample_axes`; split into the inputs' static batch
            size when they have one) or a sequence of such dicts, each fed as is.
        inputs: the model's inputs.

    Raises:
        OptionError: no samples, or a sample missing one of the model's inputs.
    """
    if isinstance(samples, Mapping):
        from tfopt.verification.data_batches import rows_of, sample_axes, take_rows

        arrays = {k: np.asarray(v) for k, v in samples.items()}
        axes = sample_axes(arrays, inputs)  # each input's batch axis (a time-major sequence: axis 1)
        n = rows_of(arrays, axes) if arrays else 0
        fixed = [int(d) for s in inputs if s.shape and (a := axes.get(s.name)) is not None and (d := s.shape[a]) is not None]
        step = fixed[0] if fixed else max(n, 1)
        batches = [take_rows(arrays, i, i + step, axes) for i in range(0, n - step + 1, step)]
    else:
        batches = [dict(b) for b in samples]
    if not batches:
        raise OptionError("calibration samples: none given, or fewer than the inputs' static batch size "
                          "(pass {input name: array} or a list of such dicts)")
    for spec in inputs:
        if spec.name not in batches[0]:
            raise OptionError(f"calibration samples: no values for input '{spec.name}' (got {sorted(batches[0])})")
    return batches


def channel_stats(model: Model, tensors: Sequence[str], batches: Sequence[Mapping[str, Any]]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``tensor -> (mean, min, max)`` per last-axis channel over every batch, position and sample."""
    from tfopt.runtimes.tensorflow import GraphRunner

    specs = [TensorSpec(t, t, "float32", None) for t in tensors]
    runner = GraphRunner(model.replace(outputs=specs))
    sums: dict[str, Any] = {}
    try:
        for batch in batches:
            for name, value in runner(batch).items():
                flat = value.reshape(-1, value.shape[-1])  # summed in float64 without a float64 copy
                s, n, lo, hi = sums.get(name, (0.0, 0, np.inf, -np.inf))
                sums[name] = (s + flat.sum(axis=0, dtype=np.float64), n + len(flat),
                              np.minimum(lo, flat.min(axis=0).astype(np.float64)),
                              np.maximum(hi, flat.max(axis=0).astype(np.float64)))
    finally:
        runner.close()
    return {name: (s / n, lo, hi) for name, (s, n, lo, hi) in sums.items()}
