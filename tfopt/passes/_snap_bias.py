"""Bias correction for the cluster snap: put back the mean output shift the snapped kernels make.

Snapping a kernel T to Ŵ (``cluster_weights``) changes the layer's output by
op(x; T) − op(x; Ŵ) = op(x; T − Ŵ) (the op is linear in its kernel). k-means makes T − Ŵ sum to
zero over each cluster, i.e. over the whole kernel, not over output channel k's slice, and its
effect on channel k depends on the input: for a matmul E[op(x; Δ)]ₖ = Σᵢ Δᵢₖ·E[xᵢ]. Inputs after a
ReLU have a positive mean, so the error has a per-channel mean that the next layers carry as a
shift (Nagel et al. 2019, "Data-Free Quantization", §4.2). A bias absorbs it:

    bₖ ← bₖ + δₖ,        δₖ = E[yₖ] − E[ŷₖ]

y the layer's output in the unsnapped graph (kernels T), ŷ in the snapped graph *with every earlier
layer snapped and corrected*: the same sequential correction as the int8 engine's
(:mod:`tfopt.passes._bias_correction`, shared), so a layer's correction also absorbs the shift the
snaps above it left. Expectations over the real rows and every output position (borders counted as
they are). What a bias cannot remove is the error's variation around that mean.

The inputs are real ones: the first ``--calibration`` rows, else the first ``--eval-data`` rows
(:data:`tfopt.conversion.pipeline.FIT_ROWS` of either). Made-up inputs have the wrong mean, so without real
data no bias is corrected (reported).

Where the correction goes: the snapped op's own BiasAdd (the folded bias; not shared), else a new
BiasAdd that takes over the op's name (so its consumers and the model's outputs read the
corrected value) while the op becomes ``<name>/linear``, as in the int8 engine's bias correction.
Channels-first ops are not corrected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import make_const
from tfopt.graph import Model, TensorSpec, attr_bytes, consumers, is_control, node_map, tensor_node
from tfopt.passes._linear import Linear, find_bias, plain_const
from tfopt.passes._linear import add_bias as add_to_layer


def correct_biases(snapped: Model, ops: Sequence[Any], expected: Mapping[str, np.ndarray],
                   feeds: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, str]]:
    """Add δ = E[y] − E[ŷ] to each of ``ops``' biases in ``snapped.graph_def`` (modified in place),
    producers first, earlier ones corrected (:func:`tfopt.passes._bias_correction.sequential_corrections`).

    Returns op name -> (δ, where it went).
    """
    from tfopt.graphdef.order import topological_rank
    from tfopt.passes._bias_correction import sequential_corrections

    graph_def = snapped.graph_def
    rank = topological_rank(graph_def)
    nodes, users = node_map(graph_def), consumers(graph_def)
    layers = [_layer(nodes, users, op) for op in sorted(ops, key=lambda op: rank[op.name])]
    deltas = sequential_corrections(snapped, layers, expected, [dict(feeds)])
    out = {}
    for layer in layers:
        name = layer.op.name
        out[name] = (deltas[name], add_bias(graph_def, node_map(graph_def)[name],
                                            deltas[name].astype(np.float32)))
    return out


def _layer(nodes: dict[str, Any], users: dict[str, list[Any]], op: Any) -> Linear:
    layer = Linear(op, plain_const(nodes, op.input[1]))
    found = find_bias(nodes, users, op, layer.channels)
    if found:
        layer.bias_add, layer.bias = found
    return layer


def add_kernel_copy(graph_def: Any, nodes: Mapping[str, Any], op: Any, name: str, kernel: np.ndarray) -> TensorSpec:
    """Append to ``graph_def`` a copy of ``op`` named ``name`` that reads ``kernel`` (a new Const
    ``<name>/kernel`` in the op's kernel dtype) on the same input; its output's spec."""
    dtype = nodes[tensor_node(op.input[1])].attr["dtype"].type
    graph_def.node.append(make_const(f"{name}/kernel", kernel, dtype=dtype))
    clone = graph_def.node.add()
    clone.CopyFrom(op)
    clone.name = name
    del clone.input[:]
    clone.input.extend([f"{name}/kernel" if i == 1 else ref for i, ref in enumerate(op.input) if not is_control(ref)])
    return TensorSpec(name, f"{name}:0", "float32", None)


def channels_last(op: Any) -> bool:
    return attr_bytes(op, "data_format") in (b"", b"NHWC", b"NDHWC")


def add_bias(graph_def: Any, op: Any, error: np.ndarray) -> str:
    """Add ``error`` (in the kernel's dtype) to ``op``'s bias in ``graph_def`` (its unshared
    per-channel bias, else a new BiasAdd: :func:`tfopt.passes._linear.add_bias`); returns where."""
    nodes = node_map(graph_def)
    layer = Linear(op, plain_const(nodes, op.input[1]))
    found = find_bias(nodes, consumers(graph_def), op, int(np.size(error)))
    if found:
        layer.bias_add, layer.bias = found
    name = op.name
    add_to_layer(graph_def, layer, error)
    return f"bias '{found[1].name}'" if found else f"new BiasAdd '{name}'"
