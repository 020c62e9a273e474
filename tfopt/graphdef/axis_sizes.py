"""Sizes as values: which input axis (or which constant) each element of a shape vector holds, and
where a ``Reshape`` keeps an axis.

A graph computes with its inputs' sizes: ``tf.zeros(tf.stack([tf.shape(x)[1], units]))`` (an RNN's zero
state), ``reshape(y, [tf.shape(x)[0], -1])`` (Keras ``Flatten``), ``assert_equal(shape(seq_len),
stack([shape(x)[1]]))`` (``dynamic_rnn``'s length check). :func:`sizes_of` reads such a vector back to
the tensors it was read from, given the axes the walk found on them (``axes_of``: tensor -> the input
axis at each position, :mod:`tfopt.graphdef.axis_walk`):

    Shape(t)                          (axis of t's position 0, axis of its position 1, ...)
    StridedSlice(v, b, e, s)          v's elements picked by the constant slice; shrunk: one element
    Pack(s_0, ..., s_n) / ConcatV2    the parts' elements, in order
    GatherV2(v, indices, 0)           v's elements at the constant indices (``tf.tensordot``'s free sizes)
    Const c                           the constants; Identity / Cast: their input's
Any other element is unknown (``None``); a vector of unknown length is ``None`` as a whole.

:func:`reshape_axes` is where ``Reshape(x, target)`` keeps ``x``'s axes. Reshape keeps the row-major
order of the elements, so an output dimension equal in size to the input's at the same place, counted
from the front (all before it equal too) or from the back, holds the same axis; and when exactly one
dimension is left in between on each side, the two hold the same number of elements and so the same
axis (``reshape(x [b, 4], [-1, 4])``: both axes kept; ``[t, b, 4] -> [-1, 4]``: only the 4 is). So
does a dimension with as many elements before and after it on both sides, all of known size
(``[b, 297, 21] -> [-1, 6237]``: the -1 is b).
A target element equals an input dimension when it is the same constant as its static size, or when it
reads that very axis (``tf.shape(x)[0]``). Dimensions of size 1 are set aside first (``[1, b, h] ->
[-1, h]`` keeps b), and an output dimension that reads an input axis's size (``reshape(y, [shape(x)[0],
shape(x)[1], h])``, splitting a merged ``[t*b, h]`` back) has that axis's size, so holds that axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import constant_behind
from tfopt.graph import tensor_node

Size = tuple[str, int] | None  # ("axis", input axis) or ("const", value); None: unknown
_PASS = frozenset({"Identity", "Cast", "StopGradient", "Snapshot"})


def sizes_of(ref: str, nodes: Mapping[str, Any], axes_of: Mapping[str, tuple[int | None, ...]],
             depth: int = 0) -> list[Size] | None:
    """The elements of the size vector (or scalar, one element) ``ref``; None when its length is unknown."""
    node = nodes.get(tensor_node(ref))
    if node is None or depth > 32:
        return None
    if node.op in _PASS and node.input:
        return sizes_of(node.input[0], nodes, axes_of, depth + 1)
    if node.op == "Const":
        value = constant_behind(nodes, ref)
        return None if value is None else [("const", int(v)) for v in value.ravel()]
    if node.op == "Shape":
        axes = axes_of.get(port_ref(node.input[0]))
        return None if axes is None else [None if a is None else ("axis", a) for a in axes]
    if node.op == "StridedSlice":
        return _sliced(node, nodes, axes_of, depth)
    if node.op == "Pack" and int(node.attr["axis"].i) == 0:
        parts = [sizes_of(r, nodes, axes_of, depth + 1) for r in node.input if not r.startswith("^")]
        return [p[0] if p is not None and len(p) == 1 else None for p in parts]
    if node.op == "ConcatV2":
        parts = [sizes_of(r, nodes, axes_of, depth + 1) for r in node.input[:-1] if not r.startswith("^")]
        return None if any(p is None for p in parts) else [e for p in parts if p for e in p]
    if node.op == "GatherV2":  # tf.tensordot's gather(shape(x), free): the elements at constant indices
        picks, axis = constant_behind(nodes, node.input[1]), constant_behind(nodes, node.input[2])
        vector = sizes_of(node.input[0], nodes, axes_of, depth + 1)
        if picks is None or axis is None or int(axis.ravel()[0]) != 0 or vector is None:
            return None
        if any(not -len(vector) <= int(i) < len(vector) for i in picks.ravel()):
            return None
        return [vector[int(i)] for i in picks.ravel()]
    return None


def _sliced(node: Any, nodes: Mapping[str, Any], axes_of: Mapping[str, tuple[int | None, ...]], depth: int) -> list[Size] | None:
    """A 1-D ``StridedSlice`` of constant bounds of a size vector (``shape(x)[1]``, ``shape(x)[1:2]``)."""
    bounds = [constant_behind(nodes, node.input[i]) for i in (1, 2, 3)]
    attr = {k: int(node.attr[k].i) for k in ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
    if any(b is None or b.size != 1 for b in bounds) or attr["ellipsis_mask"] or attr["new_axis_mask"]:
        return None
    begin, end, stride = (int(b.ravel()[0]) for b in bounds)
    vector = sizes_of(node.input[0], nodes, axes_of, depth + 1)
    if attr["shrink_axis_mask"] & 1:
        if vector is None:
            return [None]
        return [vector[begin]] if -len(vector) <= begin < len(vector) else None
    if vector is None or stride == 0:
        return None
    return vector[slice(None if attr["begin_mask"] & 1 else begin, None if attr["end_mask"] & 1 else end, stride)]


def reshape_axes(target: Sequence[Size], axes: Sequence[int | None], shape: Sequence[int | None]) -> tuple[int | None, ...]:
    """The input axis at each position of ``Reshape``'s output (module docstring): ``target`` the new
    shape's elements, ``axes`` the input axis at each position of the tensor reshaped, ``shape`` the
    input's static shape (sizes of its axes). Dimensions of size 1 on either side lay out nothing and
    are set aside first; a position the rule leaves open that reads an axis's size holds that axis."""
    ones_in = {i for i, a in enumerate(axes) if a is not None and shape[a] == 1}
    ones_out = {i for i, e in enumerate(target) if e == ("const", 1)}
    keep_in = [i for i in range(len(axes)) if i not in ones_in]
    keep_out = [i for i in range(len(target)) if i not in ones_out]

    def same(out: int, at: int) -> bool:
        a, e = axes[keep_in[at]], target[keep_out[out]]
        return a is not None and (e == ("axis", a) or (e is not None and e[0] == "const" and e[1] >= 0 and shape[a] == e[1]))

    q, r = len(keep_out), len(keep_in)
    lead = 0
    while lead < min(q, r) and same(lead, lead):
        lead += 1
    trail = 0
    while lead + trail < min(q, r) and same(q - 1 - trail, r - 1 - trail):
        trail += 1
    pairs = [(i, i) for i in range(lead)] + [(q - 1 - i, r - 1 - i) for i in range(trail)]
    if q - lead - trail == 1 and r - lead - trail == 1:  # one dimension left on each side: the same elements
        pairs.append((lead, lead))
    pairs += _same_strides([shape[axes[i]] if axes[i] is not None else None for i in keep_in],  # type: ignore[index]
                           [e[1] if e is not None and e[0] == "const" and e[1] >= 0 else None for e in
                            (target[j] for j in keep_out)])
    out: list[int | None] = [None if e is None or e[0] != "axis" else e[1] for e in target]
    for o, i in pairs:
        out[keep_out[o]] = axes[keep_in[i]]
    return tuple(None if i in ones_out else a for i, a in enumerate(out))


def _same_strides(sizes: Sequence[int | None], target: Sequence[int | None]) -> list[tuple[int, int]]:
    """(output, input) positions with as many elements before and after them, all known: the one unknown
    dimension of each side (``[b, 297, 21] -> [-1, 6237]``: the -1 is b) holds the same rows."""
    pairs = []
    for i in range(len(sizes)):
        for j in range(len(target)):
            known = [*sizes[:i], *sizes[i + 1:]], [*target[:j], *target[j + 1:]]
            if any(v is None for side in known for v in side):
                continue
            if (math.prod(sizes[:i]) == math.prod(target[:j])  # type: ignore[arg-type]
                    and math.prod(sizes[i + 1:]) == math.prod(target[j + 1:])):  # type: ignore[arg-type]
                pairs.append((j, i))
    return pairs


def axes_in(sizes: Sequence[Size]) -> tuple[int | None, ...]:
    """The input axis each element of a size vector holds (None for a constant or an unknown)."""
    return tuple(e[1] if e is not None and e[0] == "axis" else None for e in sizes)


def port_ref(ref: str) -> str:
    """A node input or output tensor named with its port: ``a`` -> ``a:0``, ``a:1`` and ``f:out:0`` unchanged. A
    control input (``^a``) keeps its mark and so never names a tensor (unlike :func:`tfopt.graph.canonical_tensor`,
    which strips it): the axis walks match data inputs only."""
    return ref if ":" in ref else f"{ref}:0"
