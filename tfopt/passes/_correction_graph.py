"""The bias correction's means computed inside the graph (:mod:`tfopt.passes._bias_correction`).

For one batch, each layer's ``E[y_i]`` per output channel is summed where TensorFlow computes ``y_i``
and only ``C`` float64 values per layer leave the session: in the quantized graph the correction
``δ_i = E[y_i] − E[ỹ_i]`` is then added to the layer's output for every consumer in the same run
(:func:`correction_graph`), in the float graph the means alone are read (:func:`in_graph_means`).
The sums are float64 sums of float32 partial sums of ``BLOCK_ROWS`` rows (:func:`_block_sum`: within
``γ_{B−1}·mean|y|`` per channel of the exact mean).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.graph import DT_DOUBLE, DT_INT32, Model, TensorSpec, canonical_tensor, is_control, node_map, unique_name
from tfopt.passes._linear import Linear
from tfopt.passes.base import copy_graph


def in_graph_means(model: Model, layers: Sequence[Linear], batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``E[y_i]`` per output channel of each layer of ``layers`` in ``model`` on one batch, in one
    run, summed in the graph as the corrections' means are (:func:`_block_sum`): nothing of
    activation size is copied out of TensorFlow."""
    from tfopt.runtimes.tensorflow import GraphRunner

    work, fetch = correction_graph(model, layers, {layer.op.name: np.zeros(layer.channels) for layer in layers},
                                   rewire=False)
    runner = GraphRunner(model.replace(graph_def=work,
                                       outputs=[TensorSpec(t, t, "float64", None) for t in fetch.values()]))
    try:
        values = runner.fetch(list(fetch.values()), batch)
    finally:
        runner.close()
    return {name: -value for name, value in zip(fetch, values)}  # δ = 0 − mean, exactly


def correction_graph(quantized: Model, layers: Sequence[Linear], expected: Mapping[str, np.ndarray], *,
                     rewire: bool = True) -> tuple[Any, dict[str, str]]:
    """A copy of ``quantized``'s graph whose every layer in ``layers`` adds its correction ``δ_i``
    (:func:`in_graph_corrections`) to its output for every consumer, and layer name -> ``δ_i``'s
    tensor (float64). ``rewire=False``: ``δ_i`` computed, the outputs left as they are."""
    from tfopt._tf import make_const

    work = copy_graph(quantized.graph_def)
    nodes = node_map(work)
    taken = set(nodes)
    readers: dict[str, list[tuple[Any, int]]] = {}  # tensor -> (node, input index) of the original graph
    for consumer in work.node:
        for i, ref in enumerate(consumer.input):
            if not is_control(ref):
                readers.setdefault(canonical_tensor(ref), []).append((consumer, i))
    fetch: dict[str, str] = {}
    for layer in layers:
        name = layer.op.name
        out = layer.bias_add.name if layer.bias_add is not None else name
        dtype = nodes[name].attr["T"].type

        def node(op: str, inputs: list[str], base: str = name, **types: int) -> str:
            n = work.node.add(name=unique_name(work, f"{base}/bias_correction/{op}", taken), op=op, input=inputs)
            for key, value in types.items():
                n.attr[key].type = value
            return str(n.name)

        def const(value: Any, base: str = name) -> str:
            c = make_const(unique_name(work, f"{base}/bias_correction/const", taken), value)
            work.node.append(c)
            return str(c.name)

        rows = node("Reshape", [f"{name}:0", const(np.array([-1, layer.channels], np.int32))], T=dtype,
                    Tshape=DT_INT32)
        total = _block_sum(node, const, rows, layer.channels, dtype)
        size = node("Cast", [node("Size", [rows], T=dtype, out_type=DT_INT32)], SrcT=DT_INT32, DstT=DT_DOUBLE)
        n = node("RealDiv", [size, const(np.float64(layer.channels))], T=DT_DOUBLE)  # rows: exact
        mean = node("RealDiv", [total, n], T=DT_DOUBLE)
        delta = node("Sub", [const(np.asarray(expected[name], np.float64)), mean], T=DT_DOUBLE)
        corrected = node("AddV2", [f"{out}:0", node("Cast", [delta], SrcT=DT_DOUBLE, DstT=dtype)], T=dtype)
        for consumer, i in readers.get(f"{out}:0", []) if rewire else ():  # every reader in the original graph
            consumer.input[i] = corrected
        fetch[name] = f"{delta}:0"
    return work, fetch


BLOCK_ROWS = 32  # rows of a float32 partial sum in the corrections' means


def _block_sum(node: Callable[..., str], const: Callable[[Any], str], rows: str, channels: int, dtype: int) -> str:
    """Nodes computing ``Σ_r rows[r, :]`` in float64 from float32 partial sums of ``B = BLOCK_ROWS``
    rows (the tail of ``n mod B`` rows cast whole)::

        Σ_r x_r = Σ_j fl32(Σ_{r in block j} x_r) + Σ_{r in tail} x_r

    A float32 sum of ``B`` terms, in any order, is within ``γ_{B−1}·Σ|x_r|`` of the exact one
    (``γ_k = k·u/(1 − k·u)``, ``u = 2⁻²⁴``: 1.85e-6 for ``B = 32``), so the mean is within
    ``γ_{B−1}·mean|x|`` per channel (plus float64 rounding, ~1e-16 relative). Casting the whole
    ``[n, C]`` activation to float64 first (a copy twice its size, summed again) cost ~12x more.
    """
    block = const(np.int32(BLOCK_ROWS))
    n = node("FloorDiv", [node("Size", [rows], T=dtype, out_type=DT_INT32), const(np.int32(channels))], T=DT_INT32)
    whole = node("Mul", [node("FloorDiv", [n, block], T=DT_INT32), block], T=DT_INT32)  # rows in full blocks
    start = node("Mul", [const(np.array([1, 0], np.int32)), whole], T=DT_INT32)  # [whole, 0]: the tail's start
    head = node("Slice", [rows, const(np.array([0, 0], np.int32)),
                          node("AddV2", [start, const(np.array([0, channels], np.int32))], T=DT_INT32)],
                T=dtype, Index=DT_INT32)
    blocks = node("Reshape", [head, const(np.array([-1, BLOCK_ROWS, channels], np.int32))], T=dtype, Tshape=DT_INT32)
    partial = node("Sum", [blocks, const(np.array([1], np.int32))], T=dtype, Tidx=DT_INT32)  # [n // B, C]
    tail = node("Slice", [rows, start, const(np.array([-1, -1], np.int32))],
                T=dtype, Index=DT_INT32)
    axis = const(np.array([0], np.int32))
    sums = [node("Sum", [node("Cast", [part], SrcT=dtype, DstT=DT_DOUBLE), axis], T=DT_DOUBLE, Tidx=DT_INT32)
            for part in (partial, tail)]
    return node("AddV2", sums, T=DT_DOUBLE)
