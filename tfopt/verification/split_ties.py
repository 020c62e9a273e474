"""What cutting an input's dimension into parts requires of its size: the ties of a multi-tower graph.

Multi-GPU TF1 training code cuts the batch into one slice per tower, and concatenates the towers'
results back::

    parts = Split(x, axis=0, num_split=N)             # N equal parts:       batch % N == 0
    parts = SplitV(x, size_splits=[s1..sN], axis=0)   # constant part sizes: batch == s1 + ... + sN
    parts = Unpack(x, axis=0, num=N)                  # one sample a tower:  batch == N

TensorFlow refuses any other size, at run time or in shape inference, naming the node and the size it
got on the cut axis ("... (size = 11) and num_split 3", "Dimension must be 3 but is 11"). The node's
op and attributes, read from the graph, say what the size must be; the size in the message says which
input dimension it is (:func:`tfopt.verification.shapes.find_ties` feeds each its own prime).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SPLIT_OPS = frozenset({"Split", "SplitV", "Unpack"})
_NODE = re.compile(r"Detected at node '([^']+)'|\{\{node ([^}]+)\}\}")
_SIZE = re.compile(r"(?:but is|size =|axis of size) (\d+)")  # runtime Split; shape inference of all three


@dataclass(frozen=True)
class SplitTie:
    """The split ``node`` saw ``size`` on its axis; that size must be a ``multiple`` of N, or ``exactly`` S."""

    node: str
    op: str
    size: int
    multiple: int = 1
    exactly: int | None = None

    def describe(self) -> str:
        need = f"exactly {self.exactly}" if self.exactly is not None else f"a multiple of {self.multiple}"
        return f"{self.op} '{self.node}' needs {need} on its axis"


def split_tie(message: str, graph_def: Any) -> SplitTie | None:
    """The tie a refusal of a ``Split``/``SplitV``/``Unpack`` names (None for any other message).

    ``SplitV`` with constant sizes that are all given ties the axis to their sum; with a ``-1``
    (the rest) it only bounds it from below, which is no tie; with sizes computed in the graph
    (``batch // N`` each) its ``num_split`` parts must be equal, as for ``Split``."""
    named = _NODE.search(message)
    size = _SIZE.search(message)
    if graph_def is None or named is None or size is None:
        return None
    name = named.group(1) or named.group(2)
    nodes = {n.name: n for n in graph_def.node}
    node = nodes.get(name)
    if node is None or node.op not in SPLIT_OPS:
        return None
    seen = int(size.group(1))
    if node.op == "Unpack":
        return SplitTie(name, node.op, seen, exactly=int(node.attr["num"].i))
    parts = int(node.attr["num_split"].i)
    if node.op == "SplitV":
        sizes = _constant(nodes, node.input[1])
        if sizes is not None:
            return SplitTie(name, node.op, seen, exactly=int(sum(sizes))) if min(sizes) >= 0 else None
    return SplitTie(name, node.op, seen, multiple=parts)


def count_splits(graph_def: Any) -> int:
    """How many ``Split``/``SplitV``/``Unpack`` nodes the graph holds (each can tie one dimension)."""
    return 0 if graph_def is None else sum(1 for n in graph_def.node if n.op in SPLIT_OPS)


def _constant(nodes: dict[str, Any], ref: str) -> list[int] | None:
    """The integers of the ``Const`` behind ``ref`` (through ``Identity``), or None."""
    from tfopt._tf import const_value
    from tfopt.graph import tensor_node

    node = nodes.get(tensor_node(ref))
    while node is not None and node.op == "Identity" and node.input:
        node = nodes.get(tensor_node(node.input[0]))
    if node is None or node.op != "Const":
        return None
    return [int(v) for v in const_value(node).ravel()]
