"""Ranges a target's kernels decide, whatever calibration saw: fixed output grids and float outputs.

Some int8 kernels fix their output's grid. TFLite's int8 ``SOFTMAX`` and ``LOGISTIC`` always write
scale 1/256 with zero point −128 (the range [0, 255/256]), ``TANH`` 1/128 and 0 ([−1, 127/128]),
``LOG_SOFTMAX`` 16/256 and 127 ([−255/16, 0]). A fake quant with any other range on such an op's
output makes the converter add a requantize from the kernel's grid to the graph's: one more pass
over the tensor, and one more rounding of values the kernel already rounded to its own grid::

    Softmax -> FQ[calibrated range]  --TFLite-->  SOFTMAX (1/256) -> QUANTIZE (calibrated scale)
    Softmax -> FQ[0, 255/256]        --TFLite-->  SOFTMAX (1/256)

So for a target whose record lists the op (:attr:`tfopt.targets.Target.engine_fixed_ranges`), the
op's output range is the kernel's (:func:`fixed_output_ranges`). The nudge of
:func:`tfopt.quantizing.engine.fake_quant.nudge` keeps each of these ranges as it is: 0 is on the grid.

Other targets run an op in float whatever the graph says (OpenVINO's CPU plugin has no int8
``Softmax``; :attr:`tfopt.targets.Target.engine_float_ops`). A range on such an op's output that is a
graph output read by no op buys only a standalone FakeQuantize rounding the float result, so there
it gets none (:func:`float_outputs`). Where an op reads it, the range stays: it is that reader's
int8 input.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tfopt.graph import Model, canonical_tensor, node_map, tensor_node
from tfopt.quantizing.engine.placement import data_consumers, range_groups


def fixed_output_ranges(model: Model, table: Sequence[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """``tensor -> (lo, hi)`` for each range-taking output of an op in ``table`` (``(TF op, lo, hi)``)."""
    fixed = {op: (float(lo), float(hi)) for op, lo, hi in table}
    if not fixed:
        return {}
    nodes = node_map(model.graph_def)
    return {tensor: fixed[nodes[tensor_node(tensor)].op] for _, tensor in range_groups(model)
            if nodes[tensor_node(tensor)].op in fixed}


def float_outputs(model: Model, ops: Collection[str]) -> list[str]:
    """The range-taking tensors that are graph outputs of an op in ``ops`` and read by no op."""
    if not ops:
        return []
    nodes = node_map(model.graph_def)
    users = data_consumers(model.graph_def)
    outputs = {canonical_tensor(s.tensor) for s in model.outputs}
    return [tensor for _, tensor in range_groups(model) if tensor in outputs
            and nodes[tensor_node(tensor)].op in ops and not users.get(tensor_node(tensor))]
