"""Which ``Shape``s carry values: the size of a tensor whose length the data chooses.

Walks that ask "is this computed from the inputs' values, or from a variable's?" stop at a
``Shape``/``ShapeN``/``Size``: it usually reads sizes fixed by the inputs' shapes (a batch size, the
loss's reshape plumbing). Not when an op upstream of the measured tensor chooses its length from
values: the boxes non-max suppression keeps, ``tf.where``/``boolean_mask`` hits, unique elements,
a set difference, a dynamic partition. The size of such a tensor is a value — an SSD's
``num_detections`` is ``Cast(Shape(kept boxes))`` — and a walk goes on through that ``Shape``.

Conservative: an op of :data:`DATA_SIZED_OPS` anywhere upstream counts, even when a later op
(a scatter into a fixed shape) makes the size static again; the cost is a plumbing sink listed as a
candidate, never a head dropped.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import tensor_node

DATA_SIZED_OPS = frozenset({
    "Where", "Unique", "UniqueV2", "UniqueWithCounts", "UniqueWithCountsV2", "ListDiff", "DynamicPartition",
    "NonMaxSuppression", "NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4",
    "NonMaxSuppressionV5", "NonMaxSuppressionWithOverlaps",
})
SIZE_OPS = frozenset({"Shape", "ShapeN", "Size"})


class SizedByValues:
    """``sized(node)``: is ``node`` a :data:`SIZE_OPS` op measuring a tensor whose size values chose?

    One instance per graph (``nodes``: name -> NodeDef); each ancestor search is remembered."""

    def __init__(self, nodes: dict[str, Any]):
        self._nodes = nodes
        self._memo: dict[str, bool] = {}

    def __call__(self, node: Any) -> bool:
        if node.op not in SIZE_OPS:
            return False
        return any(self._upstream(tensor_node(r)) for r in node.input if not r.startswith("^"))

    def _upstream(self, name: str) -> bool:
        """Is an op of :data:`DATA_SIZED_OPS` among ``name`` and its data ancestors?"""
        if name in self._memo:
            return self._memo[name]
        seen: set[str] = set()
        stack, found = [name], False
        while stack and not found:
            cur = stack.pop()
            if cur in seen or cur not in self._nodes:
                continue
            seen.add(cur)
            node = self._nodes[cur]
            found = node.op in DATA_SIZED_OPS or self._memo.get(cur, False)
            stack += [tensor_node(r) for r in node.input if not r.startswith("^")]
        self._memo[name] = found
        return found
