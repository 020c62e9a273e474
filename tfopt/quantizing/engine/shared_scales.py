"""Ranges that int8 kernels require to be one: a concatenation's inputs and output.

TFLite's int8 ``CONCATENATION`` (and ONNX Runtime's ``QLinearConcat`` after fusion) needs every
input on the output's scale; the converter refuses a graph whose fake quants say otherwise ("'tfl.
concatenation' op quantization parameters violate the same scale constraint"). So each
``ConcatV2``'s output range and the ranges its inputs come from are replaced by their union
``[min lo, max hi]``:

    x1 (range r1) ─┐
    x2 (range r2) ─┴─ ConcatV2 (range r) ->  all three: [min(lo1, lo2, lo), max(hi1, hi2, hi)]

An input's range is found by walking up through scale-preserving ops (MaxPool, Reshape...: they
carry their input's scale) to the tensor that has one. Concats that share an input are merged
into one group (a union-find over tensors), so the result satisfies every constraint at once.

An op whose int8 kernel writes on its input's grid (``same_grid``: the target's ``"input"`` entries
of :attr:`tfopt.targets.Target.engine_fixed_ranges`, TFLite's ``AvgPool``) ties its output to its
input in the same union. Without it a concatenation widened the pool's output alone, and the
converter added a requantize (an int8 ``QUANTIZE``) from the pool's grid to the concatenation's,
which the converter's own int8 has not (it gives the conv before the pool the concatenation's scale)::

    conv -> AvgPool -> FQ[concat range] -> concat   --TFLite-->  CONV_2D -> AVERAGE_POOL_2D -> QUANTIZE -> CONCATENATION
    conv -> FQ[concat range] -> AvgPool -> concat   --TFLite-->  CONV_2D -> AVERAGE_POOL_2D -> CONCATENATION
The widened range costs the narrower inputs resolution; it is what TFMOT and the converters' own
calibrators do too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tfopt.graph import Model, canonical_tensor, is_control, node_map, tensor_node
from tfopt.quantizing.engine.placement import SCALE_PRESERVING_OPS


def share_concat_ranges(model: Model, ranges: Mapping[str, tuple[float, float]],
                        same_grid: Collection[str] = ()) -> dict[str, tuple[float, float]]:
    """``ranges`` with every concatenation's inputs and output on one range, and each output of an op
    in ``same_grid`` (TF op types) on its input's (module docstring)."""
    nodes = node_map(model.graph_def)
    given = {canonical_tensor(k): v for k, v in ranges.items()}
    parent = {t: t for t in given}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def source(ref: str) -> str | None:
        tensor = canonical_tensor(ref)
        for _ in range(64):  # a chain of scale-preserving ops, bounded
            if tensor in given:
                return tensor
            node = nodes.get(tensor_node(tensor))
            if node is None or node.op not in SCALE_PRESERVING_OPS or not node.input:
                return None
            tensor = canonical_tensor(node.input[0])
        return None

    for node in model.graph_def.node:
        if f"{node.name}:0" not in given:
            continue
        if node.op == "ConcatV2":
            count = node.attr["N"].i or len([i for i in node.input if not is_control(i)]) - 1
            inputs = node.input[:count]
        elif node.op in same_grid and node.input:
            inputs = node.input[:1]
        else:
            continue
        members = [f"{node.name}:0", *(s for s in (source(i) for i in inputs) if s is not None)]
        for member in members[1:]:
            parent[find(member)] = find(members[0])
    groups: dict[str, list[str]] = {}
    for tensor in given:
        groups.setdefault(find(tensor), []).append(tensor)
    out = dict(given)
    for members in groups.values():
        if len(members) > 1:
            union = (min(given[m][0] for m in members), max(given[m][1] for m in members))
            out.update({m: union for m in members})
    return out
