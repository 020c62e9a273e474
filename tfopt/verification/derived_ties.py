"""An input dimension the graph *computes* from other inputs (not their product, a tie of
:mod:`tfopt.verification.shapes`), found by structure: ResMiCo's ``mask [batch, M]`` weights a
``GlobalAveragePooling1D`` over the feature map that convolutions made of ``input [batch, L, 14]``
(a VALID kernel crops it, strides halve it), so ``M = f(L)``. No class of equal sizes holds that:
every made-up ``M = L`` (or ``M`` = the batch) is refused.

The probe (:func:`tfopt.verification.shapes.find_ties`) feeds each unknown dimension its own prime;
TensorFlow's refusal of an elementwise op then reads ``Incompatible shapes: [11,5,1] vs. [11,3,4]``:
one axis disagrees, one side is a probe prime (the mask's ``M``) and the other a size no probe makes
(the feature map's). That makes ``M``'s class *derived* from the op's other operand. Its size at any
shapes of the other inputs is what TensorFlow's shape inference gives that operand there (the derived
dimension left unknown), so a search size ``L`` gets its ``M`` with no extra run of the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfopt.graph import TensorSpec
from tfopt.graphdef.primes import prime_above

Dim = tuple[str, int]  # (input name, axis)
_INCOMPATIBLE = re.compile(r"Incompatible shapes: \[([\d,\s]*)\] vs\. \[([\d,\s]*)\]")
_NODE = re.compile(r"node '([^']+)'|\{\{node ([^}]+)\}\}")


@dataclass(frozen=True)
class DerivedTie:
    """The dimension takes the size of axis ``-back`` (from the end, as broadcasting aligns) of
    whichever input of ``node`` shape inference sizes there."""

    node: str
    back: int


def derived_tie(message: str, graph_def: Any, symbols: Mapping[int, Dim]) -> tuple[Dim, DerivedTie] | None:
    """The probed dimension ``message`` compares with a size no probe makes, and where that size is
    computed; None when the refusal is no such broadcast (or its node is not in ``graph_def``)."""
    found = _broadcast(message, graph_def)
    if found is None:
        return None
    name, back, x, y = found
    if (x in symbols) == (y in symbols) or _of_probes(y if x in symbols else x, symbols):
        return None  # two probes are an equality tie, a product of probes a product tie; no probe, no tie
    return symbols[x if x in symbols else y], DerivedTie(name, back)


def _broadcast(message: str, graph_def: Any) -> tuple[str, int, int, int] | None:
    """``(node, back, x, y)`` of an elementwise refusal (``Incompatible shapes``) of a node of ``graph_def`` whose
    operands disagree on one axis (``-back``, from the end) only, with sizes ``x`` and ``y`` there; else None."""
    shapes, node = _INCOMPATIBLE.search(message), _NODE.search(message)
    name = None if shapes is None or node is None or graph_def is None else node.group(1) or node.group(2)
    if name is None or name not in {n.name for n in graph_def.node}:
        return None
    a, b = ([int(v) for v in s.split(",") if v.strip()] for s in shapes.groups())  # type: ignore[union-attr]
    rank = max(len(a), len(b))
    a, b = [1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b
    differ = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y and 1 not in (x, y)]
    return (name, rank - differ[0][0], differ[0][1], differ[0][2]) if len(differ) == 1 else None


def _by_chance(ties: Any, message: str, symbols: Mapping[int, Dim], graph_def: Any,
               shapes: Mapping[str, Sequence[int]]) -> tuple[Dim, DerivedTie] | None:
    """A refusal naming two probe primes that is no equality tie: one side is a size the graph computes from
    other inputs and only equals the other prime at these probe sizes (a VALID kernel of 3 turns a length of 13
    into 11, the batch's prime). Shape inference tells: with one side's dimension left unknown and the other
    prime's class at a size no probe has, the other operand still has the other prime's size at that axis (an
    input's own dimension would have followed its class). That side is then derived; None when neither is."""
    found = _broadcast(message, graph_def)
    if found is None or not (found[2] in symbols and found[3] in symbols):
        return None
    name, back, x, y = found
    graph = graph_def.SerializeToString()
    spare = prime_above(max(symbols))
    for mine, other in ((x, y), (y, x)):
        dim, tie, root = symbols[mine], DerivedTie(name, back), ties.find(symbols[other])
        moved = {n: [spare * ties.multiples.get(root, 1) if (n, a) in ties.parent and ties.find((n, a)) == root
                     else d for a, d in enumerate(shape)] for n, shape in shapes.items()}
        if derived_sizes(graph, ties.specs, moved, {dim: tie}).get(dim) == other:  # no input has that size now
            return dim, tie
    return None


def _of_probes(value: int, symbols: Mapping[int, Dim]) -> bool:
    """Whether ``value`` is a product of probe primes (``batch x words``: a product tie, not derived)."""
    for prime in symbols:
        while value % prime == 0:
            value //= prime
    return value == 1


def learn_derived(ties: Any, message: str, symbols: Mapping[int, Dim], graph_def: Any,
                  shapes: Mapping[str, Sequence[int]] | None = None) -> bool:
    """Record in ``ties`` (a :class:`tfopt.verification.shapes.DimTies`) the dimension ``message`` shows
    ``graph_def`` computes from others (and the graph, serialized, for its sizes); False when it shows none.
    ``shapes``: the probe's input shapes, where a computed size that equals another probe's prime is told from
    an equality tie (:func:`_by_chance`)."""
    found = derived_tie(message, graph_def, symbols)
    if found is None and shapes is not None:
        found = _by_chance(ties, message, symbols, graph_def, shapes)
    if found is None or not ties.free(ties.find(found[0])):
        return False
    ties.derived[ties.find(found[0])] = found[1]
    ties.graph = ties.graph or graph_def.SerializeToString()
    return True


def derived_sizes(graph: bytes, specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]],
                  derived: Mapping[Dim, DerivedTie]) -> dict[Dim, int]:
    """Each derived dimension's size when the other inputs have ``shapes`` (TensorFlow's shape
    inference on the serialized GraphDef ``graph``; a dimension it cannot size is left out)."""
    from tfopt._tf import GraphFacts, graph_def_class
    from tfopt.graph import with_input_shapes

    g = graph_def_class()()
    g.ParseFromString(graph)
    g = with_input_shapes(g, {s.name: [None if (s.name, a) in derived else d for a, d in enumerate(shapes[s.name])]
                              for s in specs if s.name in shapes}, ops=("Placeholder", "PlaceholderWithDefault"))
    try:
        inferred = GraphFacts(g).graph
    except Exception:  # shapes TensorFlow refuses statically: no size to derive
        return {}
    out: dict[Dim, int] = {}
    for dim, tie in derived.items():
        for tensor in inferred.get_operation_by_name(tie.node).inputs:
            known = tensor.shape.as_list() if tensor.shape.rank is not None else []
            if len(known) >= tie.back and known[-tie.back] not in (None, 1):
                out[dim] = int(known[-tie.back])
                break
    return out
