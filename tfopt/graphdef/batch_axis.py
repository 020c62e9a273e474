"""Which axis of an input holds its samples, read from what the graph does with the input.

A lone time-major input ``x [time, batch, n]`` ties no dimension to another input, so the dimension
ties (:mod:`tfopt.verification.shapes`) cannot tell its batch from its time, and axis 0 would be cut
into samples. The graph says which is which. Each input's axes are followed forward through ops whose
output axes are a known function of their input axes (``out[i] = x[axes[i]]``):

    elementwise ops, BiasAdd, Pad, ConcatV2        every axis stays where it is
    Transpose(x, perm)  (constant perm)            out axis i is x axis perm[i]
    Sum/Mean/Max/... (constant axes, no keep_dims) the reduced axes leave
    ExpandDims / Squeeze (constant axes)           an axis enters / the squeezed ones leave
    MatMul (x on the left, not transposed)         out axis 0 is x axis 0
    Conv/Pool/FusedBatchNorm                       out axis 0 is x axis 0
    Unpack(x, axis=a)                              every part holds x's axes without a
    StridedSlice (constant, no ellipsis/new axis)  a shrunk axis leaves, one taken whole stays
    Enter/Exit/Merge/Switch/NextIteration          v1 control flow: every axis stays where it is
    TensorArrayScatterV3 -> TensorArrayReadV3      a v1 TensorArray's step holds the value's axes after 0

Two facts are collected, both in terms of the input's own axes:

1. **Time** ``t``: the axis a loop iterates over. ``TensorArrayScatterV3`` (TF1 ``dynamic_rnn``'s
   ``TensorArray.unstack``), ``TensorListFromTensor`` (TF2 / Keras 2 RNNs) take axis 0 of their value
   apart step by step; ``Unpack`` (``tf.unstack``, a ``static_rnn``) takes axis ``a`` apart.
   **Reads** ``R``: the axes whose size the graph reads, ``StridedSlice(Shape(x), [k])`` of a followed
   tensor. An RNN reads the batch size to build its zero state (``zeros([shape(x)[1], units])``);
   ``tf.map_fn`` over a batch reads only the axis it iterates.
   The batch is the smallest read axis other than ``t`` when exactly one axis is iterated and that
   axis is unknown (``None``) in the input's shape: a loop over a batch (``map_fn``, towers cut by
   ``Unpack``) reads no other axis and is no evidence.
2. Else, **the axis that reaches the outputs' batch axis**: the input axis that arrives, followed as
   above, at axis 0 of a model output (``tf.transpose(x, [1, 0, 2])`` at the start of a batch-major
   network, then reductions and dense layers), when every output reached says the same one.

3. **A tie to a batch found above**: an input neither fact names whose one unknown dimension meets,
   at an op needing equal sizes (both operands of an elementwise op or a comparison, aligned from
   the right; a ``Select`` by a vector condition, on axis 0; a ``ConcatV2``, off the joined axis), a
   dimension tied (transitively) to an input's batch axis from facts 1 and 2 gets that dimension: the
   initial state ``state [1, batch, h]`` of a time-major RNN, ``state[0]`` concatenated with each step
   ``[batch, n]`` of ``x [time, batch, n]``, gets 1; the ``seq_len [batch]`` compared per row, 0.

Nothing else is read: when no fact holds (no loop over the input, the trail lost in a Reshape),
the input gets no batch axis here and the dimension ties and axis 0 decide as before. A batch-major
input that says axis 0 gets 0, which changes nothing.

An output's batch axis (:func:`output_batch_axes`, recorded in ``manifest.json``) is where the inputs'
batch axes arrive, followed the same way: an output reached by them at one axis only (a transposed
time-major output ``[time, batch, n]``: 1); none when a trail is lost or an input's batch is reduced away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import constant_behind
from tfopt.graph import TensorSpec, tensor_node

Axes = tuple[int | None, ...]  # position in a followed tensor -> the input axis there (None: none)

_SAME = frozenset({
    "Identity", "Snapshot", "StopGradient", "PreventGradient", "CheckNumerics", "EnsureShape", "Cast", "Neg", "Abs",
    "Tanh", "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign", "Exp", "Log", "Log1p",
    "Sqrt", "Rsqrt", "Square", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Erf", "Softmax",
    "LogSoftmax", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum", "Pow",
    "SquaredDifference", "BiasAdd", "FloorDiv", "FloorMod", "Pad", "PadV2", "MirrorPad", "ConcatV2", "Select",
    "SelectV2", "ClipByValue", "IdentityN", "Enter", "Exit", "Merge", "NextIteration", "Less", "LessEqual", "Greater",
    "GreaterEqual", "Equal", "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot",
})
_TIE = _SAME - {"IdentityN", "Enter", "Exit", "Merge", "NextIteration", "Pad", "PadV2", "MirrorPad"}  # operands' sizes agree
_KEEP_FIRST = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D",
                         "FusedBatchNorm", "FusedBatchNormV3", "Conv1D"})
_REDUCE = frozenset({"Sum", "Mean", "Max", "Min", "Prod", "All", "Any"})
_ITERATE_AXIS0 = {"TensorArrayScatterV3": 2, "TensorListFromTensor": 0}  # op -> the input it takes apart on axis 0


@dataclasses.dataclass
class _Facts:
    iterated: set[int] = dataclasses.field(default_factory=set)
    reads: set[int] = dataclasses.field(default_factory=set)
    at_outputs: set[int | None] = dataclasses.field(default_factory=set)
    arrived: dict[str, set[Axes]] = dataclasses.field(default_factory=dict)  # output ref -> the axes there
    met: dict[str, set[tuple[int, Axes]]] = dataclasses.field(default_factory=dict)  # _TIE node -> (slot, axes) there


def structural_batch_axes(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()) -> dict[str, int]:
    """Input name -> the axis of its samples that the graph's structure says (see the module
    docstring); inputs about which nothing is said are absent."""
    out: dict[str, int] = {}
    followed = _followed(graph_def, specs, outputs)
    for spec, facts in followed:
        axis = _decide(spec, facts)
        if axis is not None:
            out[spec.name] = axis
    if out and followed:
        out.update(_tied(followed, {n.name: n for n in graph_def.node}, out))
    return out


def _tied(followed: Sequence[tuple[TensorSpec, _Facts]], nodes: Mapping[str, Any], found: Mapping[str, int]) -> dict[str, int]:
    """Fact 3: inputs the first two name nothing about, whose one unknown dimension the graph ties to an
    input's batch axis from them (its operand meets one of that input's at an elementwise op, a
    comparison, a ``Select``, or a ``ConcatV2`` off the joined axis; ties chain): that dimension."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def root(d: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(d, d) != d:
            d = parent[d]
        return d

    unknown = {(s.name, a) for s, _ in followed for a, d in enumerate(s.shape or ()) if d is None}
    met: dict[str, list[tuple[str, int, Axes]]] = {}
    for spec, facts in followed:
        for node, there in facts.met.items():
            met.setdefault(node, []).extend((spec.name, slot, axes) for slot, axes in there)
    for name, seen in met.items():
        for i, (na, sa, aa) in enumerate(seen):
            for nb, sb, ab in seen[i + 1:]:
                if na != nb and sa != sb:
                    for a, b in _aligned(nodes[name], nodes, aa, ab):
                        if (na, a) in unknown and (nb, b) in unknown:
                            parent[root((na, a))] = root((nb, b))
    batch = {root((n, a)) for n, a in found.items() if (n, a) in unknown}
    out: dict[str, int] = {}
    for spec, _ in followed:
        axes = [a for a in range(len(spec.shape or ())) if (spec.name, a) in unknown and root((spec.name, a)) in batch]
        if spec.name not in found and len(axes) == 1:
            out[spec.name] = axes[0]
    return out


def _aligned(node: Any, nodes: Mapping[str, Any], a: Axes, b: Axes) -> list[tuple[int, int]]:
    """The pairs of input axes that ``node`` needs equal sizes of, ``a`` and ``b`` two of its operands'."""
    if node.op == "ConcatV2":
        joined = constant_behind(nodes, node.input[-1])
        if joined is None or len(a) != len(b) or not a:
            return []
        skip = int(joined.ravel()[0]) % len(a)
        return [(x, y) for i, (x, y) in enumerate(zip(a, b)) if x is not None and y is not None and i != skip]
    if node.op == "Select" and min(len(a), len(b)) == 1:  # a vector condition picks rows: aligned on axis 0
        return [(a[0], b[0])] if a[0] is not None and b[0] is not None else []
    return [(x, y) for x, y in zip(reversed(a), reversed(b)) if x is not None and y is not None]  # broadcast: from the right


def output_batch_axes(graph_def: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> dict[str, int]:
    """Output name -> the axis of its samples: where the batch axis of every input reaching it arrives
    (an input's :attr:`TensorSpec.batch_axis`, else its axis 0), when that is one axis; outputs no
    input's batch reaches, or reaches at two axes or not at all (reduced away), are absent."""
    where: dict[str, set[int | None]] = {}
    for spec, facts in _followed(graph_def, inputs, outputs):
        batch = spec.batch_axis if spec.batch_axis is not None else 0
        for ref, arrived in facts.arrived.items():
            for axes in arrived:
                at = [i for i, a in enumerate(axes) if a == batch]
                where.setdefault(ref, set()).add(at[0] if len(at) == 1 else None)
    found = {ref: next(iter(axes)) for ref, axes in where.items() if len(axes) == 1}
    return {o.name: axis for o in outputs if (axis := found.get(_ref(o.tensor))) is not None}


def _followed(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> list[tuple[TensorSpec, _Facts]]:
    """Each ranked input of ``specs`` in ``graph_def`` with what following its axes found."""
    if graph_def is None:
        return []
    nodes = {n.name: n for n in graph_def.node}
    consumers: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for ref in node.input:
            if not ref.startswith("^"):
                consumers.setdefault(tensor_node(ref), []).append(node)
    output_refs = {_ref(o.tensor) for o in outputs}
    return [(spec, _follow(_ref(spec.tensor), tuple(range(len(spec.shape))), nodes, consumers, output_refs))
            for spec in specs if spec.shape and spec.node in nodes]


def with_batch_axes(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()) -> list[TensorSpec]:
    """``specs`` with :attr:`TensorSpec.batch_axis` set where :func:`structural_batch_axes` says one."""
    found = structural_batch_axes(graph_def, specs, outputs)
    return [dataclasses.replace(s, batch_axis=found[s.name]) if s.name in found else s for s in specs]


def _decide(spec: TensorSpec, facts: _Facts) -> int | None:
    shape = spec.shape or ()
    if len(facts.iterated) == 1:
        (time,) = facts.iterated
        batch = sorted(a for a in facts.reads if a != time)
        if batch and shape[batch[0]] is None:
            return batch[0]
    reached = {a for a in facts.at_outputs if a is not None}
    if len(reached) == 1 and None not in facts.at_outputs:
        return reached.pop()
    return None


def _ref(ref: str) -> str:
    return ref if ":" in ref else f"{ref}:0"


def _follow(start: str, axes: Axes, nodes: Mapping[str, Any], consumers: Mapping[str, list[Any]],
            output_refs: set[str]) -> _Facts:
    facts = _Facts()
    todo: list[tuple[str, Axes]] = [(start, axes)]
    seen: set[str] = set()
    while todo:
        ref, axes = todo.pop()
        if ref in seen or len(seen) > 20000:
            continue
        seen.add(ref)
        if ref in output_refs:
            facts.at_outputs.add(axes[0] if axes else None)
            facts.arrived.setdefault(ref, set()).add(axes)
        for node in consumers.get(tensor_node(ref), ()):
            slots = [i for i, r in enumerate(node.input) if _ref(r) == ref]
            for slot in slots:
                if node.op in _TIE:
                    facts.met.setdefault(node.name, set()).add((slot, axes))
                todo.extend(_step(node, slot, axes, nodes, consumers, facts))
    return facts


def _step(node: Any, slot: int, axes: Axes, nodes: Mapping[str, Any], consumers: Mapping[str, list[Any]],
          facts: _Facts) -> list[tuple[str, Axes]]:
    """What ``node`` makes of a followed tensor at its input ``slot``: the followed outputs, and facts."""
    op, name = node.op, node.name
    if _ITERATE_AXIS0.get(op) == slot:
        _note(facts.iterated, axes[:1])
        # a v1 TensorArray's flow carries the steps ``axes[1:]`` to the loop's TensorArrayReadV3
        return [(f"{name}:0", axes[1:])] if op == "TensorArrayScatterV3" else []
    if op == "TensorArrayReadV3" and slot == 2:
        return [(f"{name}:0", axes)]
    if op == "Switch" and slot == 0:
        return [(f"{name}:0", axes), (f"{name}:1", axes)]
    if op == "StridedSlice" and slot == 0:
        return _strided(node, axes, nodes)
    if op == "Unpack" and slot == 0:
        a = int(node.attr["axis"].i) % len(axes) if axes else 0
        _note(facts.iterated, axes[a:a + 1])
        rest = axes[:a] + axes[a + 1:]
        return [(f"{name}:{i}", rest) for i in range(int(node.attr["num"].i))]
    if op == "Shape" and slot == 0:
        facts.reads.update(_shape_reads(consumers.get(name, ()), axes, nodes))
        return []
    if op in _SAME:
        return [(f"{name}:{slot}" if op == "IdentityN" else f"{name}:0", axes)]
    if op == "Transpose" and slot == 0:
        perm = constant_behind(nodes, node.input[1])
        if perm is None or len(perm) != len(axes):
            return []
        return [(f"{name}:0", tuple(axes[int(p)] for p in perm))]
    if op in _REDUCE and slot == 0:
        drop = constant_behind(nodes, node.input[1])
        if drop is None:
            return []
        if node.attr["keep_dims"].b:
            return [(f"{name}:0", axes)]
        gone = {int(d) % len(axes) for d in drop.ravel()} if axes else set()
        return [(f"{name}:0", tuple(a for i, a in enumerate(axes) if i not in gone))]
    if op == "ExpandDims" and slot == 0:
        dim = constant_behind(nodes, node.input[1])
        if dim is None:
            return []
        at = int(dim.ravel()[0]) % (len(axes) + 1)
        return [(f"{name}:0", (*axes[:at], None, *axes[at:]))]
    if op == "Squeeze" and slot == 0 and node.attr["squeeze_dims"].list.i:
        gone = {int(d) % len(axes) for d in node.attr["squeeze_dims"].list.i}
        return [(f"{name}:0", tuple(a for i, a in enumerate(axes) if i not in gone))]
    if op == "MatMul" and slot == 0 and not node.attr["transpose_a"].b and len(axes) == 2:
        return [(f"{name}:0", (axes[0], None))]
    if op in _KEEP_FIRST and slot == 0 and axes:
        return [(f"{name}:0", (axes[0],) + (None,) * (len(axes) - 1))]
    return []


def _strided(node: Any, axes: Axes, nodes: Mapping[str, Any]) -> list[tuple[str, Axes]]:
    """A ``StridedSlice`` of constant bounds without ellipsis or new axes (``state[0]``): the shrunk axes
    leave, an axis taken whole (both masks set) stays, a part of one is no longer that axis."""
    begin, strides = constant_behind(nodes, node.input[1]), constant_behind(nodes, node.input[3])
    attr = {k: int(node.attr[k].i) for k in ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
    if begin is None or strides is None or attr["ellipsis_mask"] or attr["new_axis_mask"] or begin.size > len(axes):
        return []
    whole = attr["begin_mask"] & attr["end_mask"] & sum(1 << i for i, k in enumerate(strides.ravel()) if k == 1)
    out = tuple(a if i >= begin.size or whole >> i & 1 else None for i, a in enumerate(axes)
                if not attr["shrink_axis_mask"] >> i & 1)
    return [(f"{node.name}:0", out)]


def _shape_reads(users: Sequence[Any], axes: Axes, nodes: Mapping[str, Any]) -> set[int]:
    """The input axes whose size a ``StridedSlice(shape, [k], ...)`` among a ``Shape``'s ``users`` reads."""
    reads: set[int] = set()
    for node in users:
        if node.op != "StridedSlice":
            continue
        begin = constant_behind(nodes, node.input[1])
        if begin is None or begin.size != 1:
            continue
        k = int(begin.ravel()[0])
        if -len(axes) <= k < len(axes) and axes[k] is not None:
            reads.add(int(axes[k]))  # type: ignore[arg-type]
    return reads


def _note(into: set[int], axes: Axes) -> None:
    into.update(int(a) for a in axes if a is not None)
