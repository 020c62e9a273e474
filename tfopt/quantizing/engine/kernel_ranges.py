"""Ranges a target's kernels decide, whatever calibration saw: fixed output grids and float outputs.

Some int8 kernels fix their output's grid. TFLite's int8 ``SOFTMAX`` and ``LOGISTIC`` always write
scale 1/256 with zero point −128 (the range [0, 255/256]), ``TANH`` 1/128 and 0 ([−1, 127/128]),
``LOG_SOFTMAX`` 16/256 and 127 ([−255/16, 0]); ``AVERAGE_POOL_2D`` writes on its input's grid. A fake
quant with any other range on such an op's output makes the converter add a requantize from the
kernel's grid to the graph's: one more pass over the tensor, and one more rounding of values the
kernel already rounded to its own grid::

    Softmax -> FQ[calibrated range]  --TFLite-->  SOFTMAX (1/256) -> QUANTIZE (calibrated scale)
    Softmax -> FQ[0, 255/256]        --TFLite-->  SOFTMAX (1/256)

So for a target whose record lists the op (:attr:`tfopt.targets.Target.engine_fixed_ranges`), the
op's output range is the kernel's (:func:`fixed_output_ranges`): the given ``(lo, hi)``, or for
``"input"`` the range of the tensor it reads (through scale-preserving ops). The nudge of
:func:`tfopt.quantizing.engine.fake_quant.nudge` keeps each fixed range as it is: 0 is on the grid.

Other targets run an op in float whatever the graph says (OpenVINO's CPU plugin has no int8
``Softmax``; :attr:`tfopt.targets.Target.engine_float_ops`). A range on such an op's output that is a
graph output read by no op buys only a standalone FakeQuantize rounding the float result, and a
range on a tensor only such ops read (the logits before a Softmax) only rounds the float op's input:
there they get none (:func:`float_outputs`), as in the native int8::

    MatMul -> FQ -> Softmax -> FQ -> output   --OpenVINO-->  FC (int8, requantized, to f32) -> Softmax -> FakeQuantize
    MatMul -> Softmax -> output               --OpenVINO-->  FC (int8, to f32) -> Softmax

Where another op reads the Softmax, its range stays: it is that reader's int8 input.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from tfopt.graph import Model, canonical_tensor, node_map, tensor_node
from tfopt.quantizing.engine.fake_quant import scale_source
from tfopt.quantizing.engine.placement import data_consumers, range_groups

INPUT = "input"  # a table entry's range: the op's input's


def fixed_output_ranges(model: Model, table: Sequence[tuple[str, tuple[float, float] | str]],
                        ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """``tensor -> (lo, hi)`` for each range-taking output of an op in ``table`` (``(TF op, (lo, hi))``,
    or ``(TF op, "input")``: the range ``ranges`` has for the tensor the op reads). Without ``ranges``:
    every such tensor, an ``"input"`` one with ``(0, 0)`` (which tensors, not their ranges)."""
    fixed = dict(table)
    if not fixed:
        return {}
    nodes = node_map(model.graph_def)
    known = dict(ranges or {})
    out: dict[str, tuple[float, float]] = {}
    for _, tensor in range_groups(model):  # in graph order: a chain of such ops takes the first one's input
        node = nodes[tensor_node(tensor)]
        given = fixed.get(node.op)
        if given is None:
            continue
        if not isinstance(given, str):
            out[tensor] = (float(given[0]), float(given[1]))
        elif ranges is None:
            out[tensor] = (0.0, 0.0)
        elif (source := scale_source(nodes, node.input[0], known)) is not None:
            out[tensor] = known[source]
        known.update(out)
    return out


def float_outputs(model: Model, ops: Collection[str]) -> list[str]:
    """The range-taking tensors no int8 kernel of the target reads: a graph output of an op in ``ops``
    read by no op, or a tensor (not a graph output) read only by ops in ``ops``."""
    if not ops:
        return []
    nodes = node_map(model.graph_def)
    users = data_consumers(model.graph_def)
    outputs = {canonical_tensor(s.tensor) for s in model.outputs}

    def unread_in_int8(tensor: str) -> bool:
        readers = users.get(tensor_node(tensor), [])
        if tensor in outputs:
            return not readers and nodes[tensor_node(tensor)].op in ops
        return bool(readers) and all(r.op in ops for r in readers)

    return [tensor for _, tensor in range_groups(model) if unread_in_int8(tensor)]
