"""Which axis of an input holds its samples, read from what the graph does with the input.

A lone time-major input ``x [time, batch, n]`` ties no dimension to another input, so the dimension
ties (:mod:`tfopt.verification.shapes`) cannot tell its batch from its time, and axis 0 would be cut
into samples. The graph says which is which. Each input's axes are followed forward through ops whose
output axes are a known function of their input axes (:mod:`tfopt.graphdef.axis_walk`: elementwise ops,
transposes, reductions, slices, reshapes that keep an axis, v1 loops and TensorArrays, TF2 ``While``
bodies, ``If`` branches and TensorLists, tensors filled to sizes read from the input).

Two facts are collected, both in terms of the input's own axes:

1. **Time** ``t``: the axis a loop iterates over. ``TensorArrayScatterV3`` (TF1 ``dynamic_rnn``'s
   ``TensorArray.unstack``), ``TensorListFromTensor`` (TF2 / Keras 2 RNNs) take axis 0 of their value
   apart step by step; ``Unpack`` (``tf.unstack``, a ``static_rnn``) takes axis ``a`` apart.
   **Reads** ``R``: the axes whose size the graph reads, ``StridedSlice(Shape(x), [k])`` of a followed
   tensor. An RNN reads the batch size to build its zero state (``zeros([shape(x)[1], units])``);
   ``tf.map_fn`` over a batch reads only the axis it iterates.
   The batch is the smallest read axis other than ``t`` that the loop's steps hold, when exactly one
   axis is iterated and that axis is unknown (``None``) in the input's shape: a loop over a batch
   (``map_fn``, towers cut by ``Unpack``) reads no other axis and is no evidence, and neither is an
   axis the steps do not hold (Keras 2's ``TimeDistributed(GRU(...))`` over ``x [batch, time, steps,
   n]`` folds batch and time into the GRU's rows, ``[batch * time, steps, n]``, and reads ``time``
   only to unfold its output: the walk loses the folded axes, and ``time`` is not the batch).
2. Else, **the axis that reaches the outputs' batch axis**: the input axis that arrives, followed as
   above, at axis 0 of a model output (``tf.transpose(x, [1, 0, 2])`` at the start of a batch-major
   network, then reductions and dense layers), when every output reached says the same one. An
   output whose axis 0 is the axis a loop iterates (the stacked steps of a time-major RNN, ``[time,
   batch, h]``) says nothing here.

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
from tfopt.graph import TensorSpec
from tfopt.graphdef.axis_sizes import port_ref
from tfopt.graphdef.axis_walk import Axes, Facts, Walk
from tfopt.graphdef.call_view import flat_nodes


def structural_batch_axes(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()) -> dict[str, int]:
    """Input name -> the axis of its samples that the graph's structure says (see the module
    docstring); inputs about which nothing is said are absent."""
    out: dict[str, int] = {}
    nodes, followed = _followed(graph_def, specs, outputs)
    for spec, facts in followed:
        axis = _decide(spec, facts)
        if axis is not None:
            out[spec.name] = axis
    if out and followed:
        out.update(_tied(followed, nodes, out))
    return out


def _tied(followed: Sequence[tuple[TensorSpec, Facts]], nodes: Mapping[str, Any], found: Mapping[str, int]) -> dict[str, int]:
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
    for spec, facts in _followed(graph_def, inputs, outputs)[1]:
        batch = spec.batch_axis if spec.batch_axis is not None else 0
        for ref, arrived in facts.arrived.items():
            for axes in arrived:
                at = [i for i, a in enumerate(axes) if a == batch]
                where.setdefault(ref, set()).add(at[0] if len(at) == 1 else None)
    found = {ref: next(iter(axes)) for ref, axes in where.items() if len(axes) == 1}
    return {o.name: axis for o in outputs if (axis := found.get(port_ref(o.tensor))) is not None}


def _followed(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
              ) -> tuple[Mapping[str, Any], list[tuple[TensorSpec, Facts]]]:
    """The nodes walked (the flat view of ``graph_def``), and each ranked input of ``specs`` in them with
    what following its axes found."""
    if graph_def is None:
        return {}, []
    nodes = flat_nodes(graph_def)
    walk = Walk.of(nodes, {port_ref(o.tensor) for o in outputs}, graph_def)
    return nodes, [(spec, walk.follow(port_ref(spec.tensor), spec.shape)) for spec in specs if spec.shape and spec.node in nodes]


def with_batch_axes(graph_def: Any, specs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()) -> list[TensorSpec]:
    """``specs`` with :attr:`TensorSpec.batch_axis` set where :func:`structural_batch_axes` says one."""
    found = structural_batch_axes(graph_def, specs, outputs)
    return [dataclasses.replace(s, batch_axis=found[s.name]) if s.name in found else s for s in specs]


def _decide(spec: TensorSpec, facts: Facts) -> int | None:
    shape = spec.shape or ()
    if len(facts.iterated) == 1:
        (time,) = facts.iterated
        batch = sorted(a for a in facts.reads if a != time and a in facts.stepped)
        if batch and shape[batch[0]] is None:
            return batch[0]
    reached = {a for a in facts.at_outputs if a is not None} - facts.iterated  # a time-major output: no say
    if len(reached) == 1 and None not in facts.at_outputs:
        return reached.pop()
    return None

