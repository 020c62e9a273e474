"""Bias correction for the cluster snap: put back the mean output error each snapped kernel made.

Snapping a folded kernel W' to Ŵ' (``cluster_weights``) changes the layer's output by

    y − ŷ = op(x; W') − op(x; Ŵ') = op(x; Δ),        Δ = W' − Ŵ'

(the op is linear in its kernel). k-means makes Δ sum to zero over each cluster, i.e. over the
whole kernel, not over output channel k's slice, and its effect on channel k depends on the input:
for a matmul E[op(x; Δ)]ₖ = Σᵢ Δᵢₖ·E[xᵢ], for a conv Σ_{h,w,c} Δ_{hwck}·E[x_c] away from the
borders. Inputs after a ReLU have a positive mean, so the error has a per-channel mean that the
next layers carry as a shift (Nagel et al. 2019, "Data-Free Quantization", §4.2). A bias absorbs it:

    bₖ ← bₖ + eₖ,        eₖ = mean over samples and output positions of op(x; Δ)ₖ

which leaves the snapped layer's output with zero mean error per channel on those inputs. eₖ is
measured, not derived: the op itself is run with kernel Δ on its real input (the unsnapped graph's
activations), so padding at the borders (positions that see zeros) is counted exactly, averaged
over positions; what a bias cannot remove is the error's variation around that mean.

The inputs are real ones: the ``--eval-data`` / ``--calibration`` rows every stage is verified on
(:data:`tfopt.verification.verify.DATA_ROWS`). Made-up inputs have the wrong mean, so without real data no
bias is corrected (reported). The data-free estimate of E[x] from the preceding BatchNorm (β, or
the rectified-Gaussian mean γ·φ(β/γ) + β·Φ(β/γ) after a ReLU) is not used: the folded graph no
longer holds γ, β, and a max-pool or residual add between two layers has no closed form.

Where the correction goes: the snapped op's own BiasAdd (the folded bias; not shared), else a new
BiasAdd that takes over the op's name (so its consumers and the model's outputs read the
corrected value) while the op becomes ``<name>/linear``, as in the int8 engine's bias correction. Channels-first ops are not corrected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import make_const
from tfopt.graph import Model, TensorSpec, attr_bytes, consumers, is_control, node_map, tensor_node
from tfopt.passes._linear import Linear, find_bias, plain_const
from tfopt.passes._linear import add_bias as add_to_layer


def mean_errors(model: Model, deltas: Sequence[tuple[Any, np.ndarray]],
                feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per snapped op name, eₖ: the mean over samples and positions of ``op(x; Δ)`` per output channel.

    ``model`` is the unsnapped graph (its activations are the ops' inputs); ``deltas`` pairs each op
    node with its kernel's Δ = W' − Ŵ'. One run of the graph with a copy of each op reading Δ.
    """
    from tfopt.passes.base import copy_graph
    from tfopt.runtimes.tensorflow import GraphRunner

    graph_def = copy_graph(model.graph_def)
    nodes = node_map(graph_def)
    outputs: list[TensorSpec] = []
    for op, delta in deltas:
        dtype = nodes[tensor_node(op.input[1])].attr["dtype"].type
        delta_name, error_name = f"{op.name}/snap_delta", f"{op.name}/snap_error"
        graph_def.node.append(make_const(delta_name, delta, dtype=dtype))
        clone = graph_def.node.add()
        clone.CopyFrom(op)
        clone.name = error_name
        del clone.input[:]
        clone.input.extend([delta_name if i == 1 else ref for i, ref in enumerate(op.input) if not is_control(ref)])
        outputs.append(TensorSpec(error_name, f"{error_name}:0", "float32", None))
    runner = GraphRunner(model.replace(graph_def=graph_def, outputs=outputs))
    try:
        values = runner(dict(feeds))
    finally:
        runner.close()
    return {op.name: _channel_mean(values[f"{op.name}/snap_error"]) for op, _ in deltas}


def _channel_mean(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    return value.reshape(-1, value.shape[-1]).mean(0)


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
