"""Follow one input's axes forward through a graph: what each op makes of them, and what the graph does
with them (the facts :mod:`tfopt.graphdef.batch_axis` decides from).

A followed tensor carries ``axes``: at each of its positions, the input axis there (``None``: none).
Ops whose output axes are a known function of their input axes (``out[i] = x[axes[i]]``):

    elementwise ops, BiasAdd, Pad, ConcatV2        every axis stays where it is
    Transpose(x, perm)  (constant perm)            out axis i is x axis perm[i]
    Sum/Mean/Max/... (constant axes, no keep_dims) the reduced axes leave
    ExpandDims / Squeeze (constant axes)           an axis enters / the squeezed ones leave
    MatMul, BatchMatMul, Einsum                    the axes not contracted (:mod:`tfopt.graphdef.axis_products`)
    Conv/Pool/FusedBatchNorm                       out axis 0 is x axis 0
    Unpack(x, axis=a)                              every part holds x's axes without a
    Split/SplitV (constant axis)                   every part holds x's axes, but the one cut
    StridedSlice (constant, no ellipsis/new axis)  a shrunk axis leaves, one taken whole stays
    Reshape(x, target)                             the axes it keeps (:func:`axis_sizes.reshape_axes`)
    Enter/Exit/Merge/Switch/NextIteration          v1 control flow: every axis stays where it is
    TensorArrayScatterV3 -> TensorArrayReadV3      a v1 TensorArray's step holds the value's axes after 0
    TensorListFromTensor -> TensorListGetItem      a TF2 list carries the whole tensor's axes: an element
    TensorListSetItem -> TensorListStack           the axes after 0; an item set, the list's length
                                                   (``TensorListReserve``'s size read back) before its own
    Fill(dims) / BroadcastTo(x, dims)              out axis i has the size of the input axis dims[i] reads

TF2 ``While``/``If``/calls are walked into through :func:`tfopt.graphdef.call_view.flat_nodes`.

A ``Shape`` of a followed tensor starts a walk of its *values* (sizes, :mod:`tfopt.graphdef.axis_sizes`)
through ``StridedSlice``/``GatherV2``/``Pack``/``ConcatV2``/``Identity``/``Cast`` to where sizes are used: a
``Fill``/``BroadcastTo`` (a tensor with those sizes, followed on), a ``Reshape`` target, a comparison
(``dynamic_rnn``'s ``Equal(shape(seq_len), stack([shape(x)[1]]))``). Their vectors are read back once
the tensors' walk is done, so every tensor they read the shape of has its axes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import constant_behind
from tfopt.graph import tensor_node, tensor_port
from tfopt.graphdef.axis_products import PRODUCTS, StaticShapes, kept_by_sizes, product_axes
from tfopt.graphdef.axis_sizes import axes_in, port_ref, reshape_axes, sizes_of

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
TIE = _SAME - {"IdentityN", "Enter", "Exit", "Merge", "NextIteration", "Pad", "PadV2", "MirrorPad"}  # operands' sizes agree
_COMPARE = frozenset({"Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual"})
_KEEP_FIRST = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D",
                         "FusedBatchNorm", "FusedBatchNormV3", "Conv1D"})
_REDUCE = frozenset({"Sum", "Mean", "Max", "Min", "Prod", "All", "Any"})
_ITERATE_AXIS0 = {"TensorArrayScatterV3": 2, "TensorListFromTensor": 0}  # op -> the input it takes apart on axis 0
_LIST_ITEM = {"TensorListSetItem": 2, "TensorListPushBack": 1}  # op -> the input it puts into the list
_SIZES_ON = frozenset({"Identity", "Cast", "StridedSlice", "Pack", "ConcatV2", "GatherV2"})  # size values pass on
_SIZES_USED = {"Fill": 0, "BroadcastTo": 1, "Reshape": 1}  # op -> its input read as a shape


@dataclasses.dataclass
class Facts:
    """What following one input found, in terms of the input's own axes."""

    iterated: set[int] = dataclasses.field(default_factory=set)  # the axes a loop takes apart
    stepped: set[int] = dataclasses.field(default_factory=set)  # the axes its steps hold (the others)
    reads: set[int] = dataclasses.field(default_factory=set)  # the axes whose size a StridedSlice(Shape) reads
    at_outputs: set[int | None] = dataclasses.field(default_factory=set)  # the axis at a model output's axis 0
    arrived: dict[str, set[Axes]] = dataclasses.field(default_factory=dict)  # output ref -> the axes there
    met: dict[str, set[tuple[int, Axes]]] = dataclasses.field(default_factory=dict)  # tie node -> (slot, axes) there
    axes_of: dict[str, Axes] = dataclasses.field(default_factory=dict)  # followed tensor -> its axes (first found)
    shape: tuple[int | None, ...] = ()  # the input's static shape


@dataclasses.dataclass
class Walk:
    """A graph to follow inputs in: its nodes (the flat view), their consumers, the model's output refs."""

    nodes: Mapping[str, Any]
    consumers: Mapping[str, list[Any]]
    output_refs: set[str]
    static: StaticShapes = dataclasses.field(default_factory=lambda: StaticShapes(None))  # sizes a Reshape may need

    @classmethod
    def of(cls, nodes: Mapping[str, Any], output_refs: set[str], graph_def: Any = None) -> Walk:
        consumers: dict[str, list[Any]] = {}
        for node in nodes.values():
            for ref in node.input:
                if not ref.startswith("^"):
                    consumers.setdefault(tensor_node(ref), []).append(node)
        return cls(nodes, consumers, output_refs, StaticShapes(graph_def))

    def follow(self, start: str, shape: Sequence[int | None]) -> Facts:
        """Follow ``start`` (an input of static ``shape``) and every tensor made of it; the facts found."""
        facts = Facts(shape=tuple(shape))
        todo: list[tuple[str, Axes, bool]] = [(start, tuple(range(len(shape))), False)]
        seen: set[tuple[str, bool]] = set()
        uses: set[tuple[str, int]] = set()  # (node, slot) where a size vector is used
        while todo:
            while todo:
                ref, axes, sizes = todo.pop()
                if (ref, sizes) in seen or len(seen) > 20000:
                    continue
                seen.add((ref, sizes))
                if sizes:
                    todo.extend(self._sizes_step(ref, uses))
                    continue
                facts.axes_of.setdefault(ref, axes)
                if ref in self.output_refs:
                    facts.at_outputs.add(axes[0] if axes else None)
                    facts.arrived.setdefault(ref, set()).add(axes)
                for node in self.consumers.get(tensor_node(ref), ()):
                    for slot in [i for i, r in enumerate(node.input) if port_ref(r) == ref]:
                        if node.op in TIE:
                            facts.met.setdefault(node.name, set()).add((slot, axes))
                        todo.extend(self._step(node, slot, axes, facts))
            for name, slot in sorted(uses):  # every tensor's axes known now: read the size vectors back
                todo.extend(self._used(self.nodes[name], slot, facts))
            uses.clear()
        return facts

    def _sizes_step(self, ref: str, uses: set[tuple[str, int]]) -> list[tuple[str, Axes, bool]]:
        """Where a tensor of sizes goes: on through the ops that pass sizes, noted where they are used."""
        out: list[tuple[str, Axes, bool]] = []
        for node in self.consumers.get(tensor_node(ref), ()):
            for slot in [i for i, r in enumerate(node.input) if port_ref(r) == ref]:
                if node.op in _SIZES_ON and (slot == 0 or node.op in {"Pack", "ConcatV2"}):
                    out.append((f"{node.name}:0", (), True))
                elif _SIZES_USED.get(node.op) == slot or node.op in _COMPARE:
                    uses.add((node.name, slot))
        return out

    def _used(self, node: Any, slot: int, facts: Facts) -> list[tuple[str, Axes, bool]]:
        """A size vector used at ``node``'s input ``slot``: a tensor of those sizes to follow, or a tie."""
        sizes = sizes_of(node.input[slot], self.nodes, facts.axes_of)
        axes = axes_in(sizes or ())
        if all(a is None for a in axes):
            return []
        if node.op != "Reshape" and node.op in _SIZES_USED:
            return [(f"{node.name}:0", axes, False)]
        facts.met.setdefault(node.name, set()).add((slot, axes))  # a Reshape's output / a comparison's operands
        return [(f"{node.name}:0", axes, False)] if node.op == "Reshape" else []  # a tensor not followed yet

    def _length(self, ref: str, facts: Facts) -> int | None:
        """The input axis a TF2 list's length is, read back from where the list was made (through the
        joins of loops and calls): ``TensorListReserve(num_elements=shape(x)[k])``, or the axis 0 of
        the tensor ``TensorListFromTensor`` took apart."""
        for _ in range(64):
            node = self.nodes.get(tensor_node(ref))
            if node is None:
                return None
            if node.op == "TensorListReserve":
                length = axes_in(sizes_of(node.input[1], self.nodes, facts.axes_of) or ())
                return length[0] if len(length) == 1 else None
            if node.op == "TensorListFromTensor":
                return (facts.axes_of.get(port_ref(node.input[0])) or (None,))[0]
            if node.op == "IdentityN":
                ref = node.input[tensor_port(ref)]
            elif node.op in {"Merge", "Identity", "TensorListSetItem", "Enter", "Switch"} and node.input:
                ref = node.input[0]  # a loop's join: the list it was given
            else:
                return None
        return None

    def _step(self, node: Any, slot: int, axes: Axes, facts: Facts) -> list[tuple[str, Axes, bool]]:
        """What ``node`` makes of a followed tensor at its input ``slot``: the followed outputs, and facts."""
        op, name, nodes = node.op, node.name, self.nodes
        if op == "Shape" and slot == 0:
            facts.reads.update(_shape_reads(self.consumers.get(name, ()), axes, nodes))
            return [(f"{name}:0", (), True)]
        if _ITERATE_AXIS0.get(op) == slot:
            _note(facts.iterated, axes[:1])
            _note(facts.stepped, axes[1:])
            # a v1 TensorArray's flow carries its steps' axes; a TF2 list the whole tensor's, its length first
            return [(f"{name}:0", axes[1:] if op == "TensorArrayScatterV3" else axes, False)]
        if op == "TensorArrayReadV3" and slot == 2:
            return [(f"{name}:0", axes, False)]
        if op in {"TensorListGetItem", "TensorListPopBack"} and slot == 0:
            return [(f"{name}:{int(op == 'TensorListPopBack')}", axes[1:], False)] + (
                [(f"{name}:0", (None, *axes[1:]), False)] if op == "TensorListPopBack" else [])
        if op in _LIST_ITEM and slot == 0:  # the list handed on (one longer after a PushBack)
            return [(f"{name}:0", axes if op == "TensorListSetItem" else (None, *axes[1:]), False)]
        if _LIST_ITEM.get(op) == slot:  # an item put into a list: the list's length, then the item's axes
            length = self._length(node.input[0], facts) if op == "TensorListSetItem" else None
            return [(f"{name}:0", (length, *axes), False)]
        if op in {"TensorListStack", "TensorListGather"} and slot == 0:
            return [(f"{name}:0", axes if op == "TensorListStack" else (None, *axes[1:]), False)]
        if op == "Reshape" and slot == 0:
            target = sizes_of(node.input[1], nodes, facts.axes_of)
            if target is None:
                return []
            out = reshape_axes(target, axes, facts.shape)
            if all(a is None for a in out) and None in axes:  # sizes the walk does not know: the graph's own
                dims = self.static.dims(node.input[0])
                out = kept_by_sizes(target, axes, dims, facts.shape) if dims and len(dims) == len(axes) else out
            if all(a is None for a in out):  # no axis placed: the trail is lost
                return []
            facts.met.setdefault(name, set()).add((0, out))  # its output's sizes: tied to a target read from another input
            return [(f"{name}:0", out, False)]
        if op == "Switch" and slot == 0:
            return [(f"{name}:0", axes, False), (f"{name}:1", axes, False)]
        if op == "StridedSlice" and slot == 0:
            return _strided(node, axes, nodes)
        if op == "Unpack" and slot == 0:
            a = int(node.attr["axis"].i) % len(axes) if axes else 0
            _note(facts.iterated, axes[a:a + 1])
            rest = axes[:a] + axes[a + 1:]
            _note(facts.stepped, rest)
            return [(f"{name}:{i}", rest, False) for i in range(int(node.attr["num"].i))]
        if op in _SAME:
            return [(f"{name}:{slot}" if op == "IdentityN" else f"{name}:0", axes, False)]
        if (op, slot) in {("Split", 1), ("SplitV", 0)}:  # each part: the split axis is a part of itself
            dim = constant_behind(nodes, node.input[0 if op == "Split" else 2])
            if dim is None or not axes:
                return []
            cut = int(dim.ravel()[0]) % len(axes)
            out = tuple(None if i == cut else a for i, a in enumerate(axes))
            return [(f"{name}:{i}", out, False) for i in range(int(node.attr["num_split"].i))]
        if op in PRODUCTS:
            return [(f"{name}:0", out, False) for out in product_axes(node, slot, axes, nodes, facts.axes_of)]
        return [(f"{name}:0", out, False) for out in _shaped(node, slot, axes, nodes)]


def _shaped(node: Any, slot: int, axes: Axes, nodes: Mapping[str, Any]) -> list[Axes]:
    """The output axes of the ops that move, drop or add axes by constants (Transpose, reductions, ...)."""
    op = node.op
    if op == "Transpose" and slot == 0:
        perm = constant_behind(nodes, node.input[1])
        return [] if perm is None or len(perm) != len(axes) else [tuple(axes[int(p)] for p in perm)]
    if op in _REDUCE and slot == 0:
        drop = constant_behind(nodes, node.input[1])
        if drop is None:
            return []
        if node.attr["keep_dims"].b:
            return [axes]
        gone = {int(d) % len(axes) for d in drop.ravel()} if axes else set()
        return [tuple(a for i, a in enumerate(axes) if i not in gone)]
    if op == "ExpandDims" and slot == 0:
        dim = constant_behind(nodes, node.input[1])
        if dim is None:
            return []
        at = int(dim.ravel()[0]) % (len(axes) + 1)
        return [(*axes[:at], None, *axes[at:])]
    if op == "Squeeze" and slot == 0 and node.attr["squeeze_dims"].list.i:
        gone = {int(d) % len(axes) for d in node.attr["squeeze_dims"].list.i}
        return [tuple(a for i, a in enumerate(axes) if i not in gone)]
    if op in _KEEP_FIRST and slot == 0 and axes:
        return [(axes[0],) + (None,) * (len(axes) - 1)]
    return []


def _strided(node: Any, axes: Axes, nodes: Mapping[str, Any]) -> list[tuple[str, Axes, bool]]:
    """A ``StridedSlice`` of constant bounds without ellipsis or new axes (``state[0]``): the shrunk axes
    leave, an axis taken whole (both masks set) stays, a part of one is no longer that axis."""
    begin, strides = constant_behind(nodes, node.input[1]), constant_behind(nodes, node.input[3])
    attr = {k: int(node.attr[k].i) for k in ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
    if begin is None or strides is None or attr["ellipsis_mask"] or attr["new_axis_mask"] or begin.size > len(axes):
        return []
    whole = attr["begin_mask"] & attr["end_mask"] & sum(1 << i for i, k in enumerate(strides.ravel()) if k == 1)
    out = tuple(a if i >= begin.size or whole >> i & 1 else None for i, a in enumerate(axes)
                if not attr["shrink_axis_mask"] >> i & 1)
    return [(f"{node.name}:0", out, False)]


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
