"""Whether each compute layer's activation runs inside its kernel, and where int8 work drops to float.

An int8 layer is fast when its runtime runs it as *one* kernel: conv/matmul, bias, activation and the
requantization of its output together. A transform that leaves an activation the runtime cannot fuse
(ReLU6 turned into ``Minimum(Relu(x), c)`` with a per-channel ``c``) keeps every layer int8, and
still adds a kernel per layer, or a Dequantize -> float op -> Quantize round trip. This module reads
the graph each runtime executes (as :mod:`tfopt.quantizing.int8_ops` gives it, one
:class:`KernelOp` per executed op) and says, per compute layer:

``activation``
    ``"fused"``: the layer's kernel applies it: TFLite's ``fused_activation_function``; ONNX
    Runtime's ``FusedConv``, or a ``QLinearConv``/``QLinearMatMul``/``QGemm`` whose output zero
    point is the integer type's minimum (its requantization clamps at 0: ONNX Runtime's
    ``ReluQuantFusion``/``ClipQuantFusion`` removed the ReLU/Clip into it, or the quantizer did);
    OpenVINO's compiled layer whose ``originalLayersNames`` holds an activation, or a FakeQuantize
    whose output low is >= 0 everywhere (the same clamp at 0).
    ``"separate"``: a separate kernel follows the layer (seen through a Dequantize or a layout
    reorder): a unary activation, an elementwise op whose other operand is a constant (per-channel
    ``Minimum``/``Maximum``/``Mul``/``Add``), or (after a layer that does not clamp itself) a
    separate quantize that clamps at 0.
    ``None``: no activation is visible (a linear layer, or one whose activation was folded away).
    In ONNX Runtime and OpenVINO a clamp at 0 is all that is left of a ReLU, so a linear layer
    whose calibrated output range is one-sided (>= 0) reads as ``"fused"`` too: its kernel does
    clamp at 0, whatever the float model did.

and, for the artifact:

``float_islands``
    groups of connected ops computing in float that lie on a path from an int8 layer to an int8
    layer (TFLite's DEQUANTIZE -> op -> QUANTIZE, ONNX's DequantizeLinear -> op -> QuantizeLinear,
    OpenVINO's f32 Eltwise or Reorder between int8 layers). Quantize and dequantize ops are their
    borders, not members; compute layers are counted by :mod:`tfopt.quantizing.int8_ops`.
``int8_elementwise``
    separate activation-like ops that run in integer arithmetic between int8 layers (TFLite's
    int8 ``MINIMUM`` after a conv): no float, but one more kernel and requantization each.
``offsets``
    layers whose kernel adds a per-channel offset where the runtime charges for one (OpenVINO: a
    bias input, or a bias folded into the output FakeQuantize's per-channel input thresholds; a
    layer without one runs its requantization as a scale only). TFLite's and ONNX Runtime's int8
    kernels always add a bias, so their readers report none.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# roles of an executed op
LAYER, ACTIVATION, QUANTIZE, DEQUANTIZE, PASS, OTHER = "layer", "activation", "quantize", "dequantize", "pass", "other"


@dataclass(frozen=True)
class KernelOp:
    """One op as a runtime executes it.

    Attributes:
        name: the runtime's name for it (a layer's: the one the report shows).
        op: the runtime's op type.
        inputs: tensors it reads that are computed at run time (constants left out).
        outputs: tensors it writes.
        role: ``layer`` (a compute layer), ``activation`` (unary, or elementwise with constants
            only), ``quantize``, ``dequantize``, ``pass`` (a layout or type change seen through),
            or ``other``.
        float: it computes in floating point.
        precision: a layer's: ``int8``, ``int16``, ``float`` or ``dynamic``.
        fused: a layer's kernel applies an activation; a quantize op clamps at 0 (a ReLU in it).
        offset: a layer's kernel adds a per-channel offset the runtime charges for (``offsets`` above).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    role: str = OTHER
    float: bool = False
    precision: str | None = None
    fused: bool = False
    offset: bool = False


def analyze(ops: list[KernelOp]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Classify each layer's activation and find the float islands.

    Args:
        ops: the executed ops, in execution order.

    Returns:
        ``(layers, summary)``: per layer ``{"name", "op", "precision", "activation", "offset"}`` in
        order; ``{"fused", "unfused", "int8_elementwise", "offsets", "float_islands", "islands"}``
        (``islands``: each island's ops as ``"OP name"``).
    """
    readers: dict[str, list[int]] = defaultdict(list)
    for i, op in enumerate(ops):
        for t in op.inputs:
            readers[t].append(i)
    layers: list[dict[str, Any]] = []
    separate_ops: set[int] = set()
    for i, op in enumerate(ops):
        if op.role != LAYER:
            continue
        # a quantize clamping at 0 after the layer is its ReLU run separately, unless the kernel clamps already
        after = [j for j in _followers(ops, readers, i)
                 if ops[j].role == ACTIVATION or (ops[j].role == QUANTIZE and ops[j].fused and not op.fused)]
        separate_ops.update(j for j in after if ops[j].role == ACTIVATION)
        activation = "separate" if after else "fused" if op.fused else None
        layers.append({"name": op.name, "op": op.op, "precision": op.precision, "activation": activation,
                       "offset": op.offset})
    int8 = [i for i, op in enumerate(ops) if op.role == LAYER and op.precision == "int8"]
    between = _reach(ops, readers, int8, forward=True) & _reach(ops, readers, int8, forward=False)
    members = sorted(i for i in between if ops[i].float and ops[i].role not in (LAYER, QUANTIZE, DEQUANTIZE))
    islands = _components(ops, readers, members)
    return layers, {
        "fused": sum(layer["activation"] == "fused" for layer in layers),
        "unfused": sum(layer["activation"] == "separate" for layer in layers),
        "int8_elementwise": len([j for j in separate_ops if j in between and not ops[j].float]),
        "offsets": sum(op.offset for op in ops if op.role == LAYER),
        "float_islands": len(islands),
        "islands": [[f"{ops[j].op} {ops[j].name}" for j in island] for island in islands],
    }


def _followers(ops: list[KernelOp], readers: dict[str, list[int]], start: int) -> list[int]:
    """The ops reading ``start``'s outputs, seen through dequantize and pass ops."""
    out, todo, seen = [], list(ops[start].outputs), set()
    while todo:
        for j in readers.get(todo.pop(), []):
            if j in seen:
                continue
            seen.add(j)
            if ops[j].role in (DEQUANTIZE, PASS):
                todo.extend(ops[j].outputs)
            else:
                out.append(j)
    return out


def _reach(ops: list[KernelOp], readers: dict[str, list[int]], starts: list[int], *, forward: bool) -> set[int]:
    """Ops downstream (``forward``) or upstream of any of ``starts`` (a start only when another reaches it)."""
    writer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    seen: set[int] = set()
    todo = list(starts)
    while todo:
        i = todo.pop()
        nxt = ([j for t in ops[i].outputs for j in readers.get(t, [])] if forward
               else [writer[t] for t in ops[i].inputs if t in writer])
        for j in nxt:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _components(ops: list[KernelOp], readers: dict[str, list[int]], members: list[int]) -> list[list[int]]:
    """``members`` grouped by the tensors they share, each group in execution order."""
    inside = set(members)
    links: dict[int, set[int]] = {i: set() for i in members}
    for i in members:
        for j in (j for t in ops[i].outputs for j in readers.get(t, []) if j in inside):
            links[i].add(j)
            links[j].add(i)
    groups, placed = [], set()
    for i in members:
        if i in placed:
            continue
        group, todo = {i}, [i]
        while todo:
            for j in links[todo.pop()] - group:
                group.add(j)
                todo.append(j)
        placed |= group
        groups.append(sorted(group))
    return groups
