"""Shape vectors made constant where the open batch does not decide them, for the TFLite converter.

A graph computes sizes from its tensors' shapes: Keras 3 ``ops.rot90`` reshapes by
``concat([Shape(t)[:-2], [w, h]])``, ``tf.reshape(x, tf.shape(x) * [1, 2, 1, 1] // [1, 1, 2, 1])`` scales
one. TensorFlow's shape inference reads such a vector back only for a few forms (``Shape``, ``Pack``,
some ``StridedSlice``); past anything else (arithmetic, a negative slice end, ``Range``) the result's
dimensions, or its rank, are unknown, although every one but the batch follows from the input's static
shape. TFLite's converter then refuses what needs them static: a ``Conv2D`` of unknown channels is
"neither a custom op nor a flex op".

:func:`materialize_shapes` finds the *shape region* of the main graph: the nodes whose value reads the
graph's inputs only through their shapes (``Shape``/``ShapeN``/``Size``/``Rank``, then pure ops on those
and on constants: no state, no loop frame, no call). Each tensor where the region meets the rest of the
graph (its *frontier*) is evaluated by TensorFlow's own shape inference and constant evaluation with
every open input dimension set to n, for each n in :data:`SIZES`, and, when some element is the same at all
of them, once more at a larger n (:func:`~tfopt.emitters.static_values.probe_size`: 61, or 11 or 5 where an
input would exceed its element budget): ``maximum(batch, 3)`` or ``batch // 4`` is the same at 1, 2 and 3
only; and once more far past it (:func:`far_size`: 65521, less where a tensor's ``Size`` would pass int32),
where every tensor of the region stays small there (evaluating one then computes only shape vectors:
``maximum(batch, 100)``, ``batch // 100``, a padding to a multiple of 128 are the same up to 61 only). A tensor
not evaluated at some n is left as it is (at the far n: that probe has no say). Then, where the values agree in length:

* every element the same at every n: the tensor becomes that constant (exact for those n, and a value
  that follows from the static dimensions alone; the artifact is verified by value afterwards);
* some elements differ and the tensor is only a ``Reshape``'s target, with exactly one element differing and
  no constant ``-1``: the constant with ``-1`` there. ``Reshape`` infers that element from the element count,
  so it is the value the original computes whenever the original's reshape is valid;
* otherwise ``Pack`` of the agreeing elements as constants and the others sliced from the original
  vector: TensorFlow's shape inference reads a ``Pack`` element by element, so those dimensions are known.

Main graph only; a ``While``/``If`` body keeps its shape vectors (the converter infers a body from the
shapes the main graph gives it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tfopt.emitters.static_values import (
    LOOP_FRAMES,
    PROBE_SIZES,
    SHAPE_READERS,
    may_loop,
    probe_size,
    static_value,
)
from tfopt.graph import (
    CONTROL_FLOW_V1_OPS,
    Model,
    canonical_tensor,
    is_control,
    node_map,
    tensor_node,
    tensor_port,
    unique_name,
    with_input_shapes,
)
from tfopt.graphdef.primes import prime_at_most

SIZES = (1, 2, 3)  # each open dimension at each size, then at probe_size where some element is the same at all three
_V1_FLOW = CONTROL_FLOW_V1_OPS | set(LOOP_FRAMES)
_MAX_ELEMENTS = 64  # a shape vector, never a tensor of data
# The far probe (module docstring): an element that changes only past the larger probe (``batch // 100``, a padding
# to a multiple of 128) changes by then; it is made only where none of the region's tensors is larger than this.
FAR_SIZE = 65521  # the largest prime under 2**16
_FAR_ELEMENTS = 1 << 16


def materialize_shapes(model: Model) -> Model | None:
    """``model`` with its shape region's frontier made constant, or packed from constants, where the open
    dimensions do not decide it (module docstring); ``None`` when nothing changes."""
    from tfopt._tf import GraphFacts

    nodes = node_map(model.graph_def)
    region = shape_region(model.graph_def)
    readers = _readers(model.graph_def, region)  # the frontier: region tensors read outside the region
    frontier = sorted(readers)
    if not frontier:
        return None
    facts = [GraphFacts(_pinned(model.graph_def, n)) for n in SIZES]
    values = {ref: [static_value(f.graph.get_tensor_by_name(ref)) for f in facts] for ref in frontier}
    if any(_agrees(found) for found in values.values()):  # one larger probe, only where it can change an answer
        larger = probe_size(_open_shapes(model.graph_def).values())
        facts.append(GraphFacts(_pinned(model.graph_def, larger)))
        for ref in frontier:
            values[ref].append(static_value(facts[-1].graph.get_tensor_by_name(ref)))
        far = _far_facts(model.graph_def, region, _most_elements(facts[-1]) // larger)  # where it allocates little
        for ref in frontier if far is not None else ():
            value = static_value(far.graph.get_tensor_by_name(ref))
            values[ref] += [value] if value is not None else []  # not evaluated there: no say
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    taken = {n.name for n in graph_def.node}
    changed = False
    by_name = node_map(graph_def)
    for ref in frontier:
        found = [v for v in values[ref] if v is not None]
        if (len(found) < len(values[ref]) or any(v.shape != found[0].shape or v.size > _MAX_ELEMENTS for v in found)
                or found[0].ndim > 1):
            continue  # not evaluated at some size, or of a length the open sizes decide
        dtype = facts[0].dtypes(tensor_node(ref))[tensor_port(ref)]
        if not (dtype.is_integer or dtype.is_floating or dtype.is_bool):
            continue  # a list, a resource: a handle, not a size
        new = _replacement(graph_def, taken, ref, found, dtype, reshape_only=all(
            nodes[name].op == "Reshape" and index == 1 for name, index in readers[ref]))
        if new is None:
            continue
        for name, index in readers[ref]:
            by_name[name].input[index] = new
        changed = True
    return model.replace(graph_def=graph_def) if changed else None


def shape_region(graph_def: Any) -> set[str]:
    """The main-graph nodes whose value reads the inputs only through their shapes (module docstring);
    constants are not in it (they need nothing), but a node of the region may read them."""
    from tfopt._tf import GraphFacts
    from tfopt.graphdef.order import canonical_names

    nodes = node_map(graph_def)
    region: set[str] = set()
    for name in canonical_names(graph_def):  # producers first
        node = nodes[name]
        if node.op in SHAPE_READERS:
            region.add(name)
            continue
        if (node.op in ("Const", "Placeholder", "PlaceholderWithDefault") or node.op in _V1_FLOW
                or GraphFacts.is_stateful(node.op) or may_loop(node)):
            continue
        data = [tensor_node(r) for r in node.input if not is_control(r)]
        if data and all(p in region or (p in nodes and nodes[p].op == "Const") for p in data):
            region.add(name)
    return region


def _readers(graph_def: Any, region: set[str]) -> dict[str, list[tuple[str, int]]]:
    """Each region tensor a node outside the region reads (data edges) -> [(that reader, input index)]."""
    out: dict[str, list[tuple[str, int]]] = {}
    for node in graph_def.node:
        if node.name in region:
            continue
        for i, ref in enumerate(node.input):
            if not is_control(ref) and tensor_node(ref) in region:
                out.setdefault(canonical_tensor(ref), []).append((node.name, i))
    return out


def _replacement(graph_def: Any, taken: set[str], ref: str, found: list[np.ndarray], dtype: Any, *,
                 reshape_only: bool) -> str | None:
    """The tensor that replaces ``ref`` (nodes added to ``graph_def``), or ``None`` when no element is static."""
    from tfopt._tf import add_vector_slice, make_const

    base = f"{tensor_node(ref)}/static_{tensor_port(ref)}"
    stacked = np.stack(found)
    same = np.all(stacked == stacked[0], axis=0)  # per element (one, for a scalar)
    if np.all(same):
        graph_def.node.append(make_const(unique_name(graph_def, base, taken), found[0], dtype))
        return graph_def.node[-1].name
    if found[0].ndim == 0 or not np.any(same):
        return None
    if reshape_only and int(np.sum(~same)) == 1 and not np.any(found[0][same] == -1):
        value = np.where(same, found[0], -1).astype(found[0].dtype)
        graph_def.node.append(make_const(unique_name(graph_def, base, taken), value, dtype))
        return graph_def.node[-1].name
    parts = []
    for i, static in enumerate(same):
        if static:
            graph_def.node.append(make_const(unique_name(graph_def, f"{base}/{i}", taken), found[0][i], dtype))
            parts.append(graph_def.node[-1].name)
        else:  # ref[i]
            parts.append(add_vector_slice(graph_def, ref, i, i + 1, dtype, f"{base}/{i}", shrink=True,
                                          unique=lambda name: unique_name(graph_def, name, taken)))
    pack = graph_def.node.add(name=unique_name(graph_def, base, taken), op="Pack", input=parts)
    pack.attr["T"].type = dtype.as_datatype_enum
    pack.attr["N"].i = len(parts)
    pack.attr["axis"].i = 0
    return pack.name


def _agrees(found: list[np.ndarray | None]) -> bool:
    """Whether the values of one tensor at the small sizes have an element the same at each (a constant candidate)."""
    if any(v is None for v in found) or len({v.shape for v in found}) != 1:  # type: ignore[union-attr]
        return False
    stacked = np.stack(found)  # type: ignore[arg-type]
    return bool(stacked.size and np.any(np.all(stacked == stacked[0], axis=0)))


def _far_facts(graph_def: Any, region: set[str], per_row: int) -> Any:
    """The graph's facts with every open dimension at a far size (:func:`far_size`: no tensor of the graph past
    2**31 - 1 elements there, at ``per_row`` elements a row, as the larger probe found), when that is past the
    probes and every node of the shape region then holds at most :data:`_FAR_ELEMENTS` elements (evaluating a
    frontier tensor computes only region nodes: shape inference and small vectors, never a run on data); else
    ``None``."""
    from tfopt._tf import GraphFacts

    size = far_size(_open_shapes(graph_def).values(), per_row)
    if size <= PROBE_SIZES[0]:
        return None
    facts = GraphFacts(_pinned(graph_def, size))
    if _most_elements(facts) >= 1 << 31 or any(  # a tensor growing faster than the batch: an int32 Size overflows
            not out.shape.is_fully_defined() or out.shape.num_elements() > _FAR_ELEMENTS
            for name in region for out in facts.graph.get_operation_by_name(name).outputs):
        return None
    return facts


def _most_elements(facts: Any) -> int:
    """The most elements a tensor of ``facts``' graph holds, among those of a static shape."""
    return max((out.shape.num_elements() for op in facts.graph.get_operations() for out in op.outputs
                if out.shape.is_fully_defined()), default=1)


def far_size(shapes: Iterable[Sequence[int]], per_row: int = 1) -> int:
    """The largest prime up to :data:`FAR_SIZE` at which no input of ``shapes`` (an open dimension: -1), nor a
    tensor of ``per_row`` elements a row, holds 2**31 elements or more (its ``Size``, an int32 by default, does not
    overflow); 1 when none fits."""
    limit = min(FAR_SIZE, ((1 << 31) - 1) // max(per_row, 1))
    for shape in shapes:
        opened, static = sum(d < 0 for d in shape), math.prod(max(d, 1) for d in shape if d >= 0)
        while opened and limit > 1 and static * limit ** opened >= 1 << 31:
            limit = min(limit - 1, int(((1 << 31) / static) ** (1 / opened)))
    return prime_at_most(limit) or 1


def _open_shapes(graph_def: Any) -> dict[str, list[int]]:
    """Each placeholder of known rank -> its shape (an open dimension: -1): what :func:`_pinned` pins."""
    return {n.name: [d.size for d in n.attr["shape"].shape.dim] for n in graph_def.node
            if n.op == "Placeholder" and "shape" in n.attr and not n.attr["shape"].shape.unknown_rank}


def _pinned(graph_def: Any, size: int) -> Any:
    """A copy of ``graph_def`` whose placeholders have every unknown dimension set to ``size``."""
    return with_input_shapes(graph_def, {name: [size if d < 0 else d for d in shape]
                                         for name, shape in _open_shapes(graph_def).items()}, ops=("Placeholder",))
