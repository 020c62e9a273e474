"""Check Grappler's oneDNN LayerNorm fusion against the subgraph it replaced.

With oneDNN, Grappler's remapper rewrites the unfused layer norm

    y = x·s + (β − μ·s),   s = γ·rsqrt(mean((x − μ)²) + ε),   μ = mean(x)   (last axis)

into ``_MklLayerNorm(x, γ, β, epsilon=…)``. For the Mean/SquaredDifference form (tf-keras's
``LayerNormalization`` when ε < 1.001e-5, Hugging Face's TF models) TensorFlow 2.x writes the op's
*default* ``epsilon=0.001`` instead of the graph's ε. With ε = 1e-12 and a row of variance σ² the
fused result is scaled by √(σ²/(σ²+0.001)): 0.09 off on a random-weight ViT. The graph's ε is the
scalar added to the variance just before the ``Rsqrt`` (or the ``FusedBatchNormV3``'s own
``epsilon``), and it is in the graph before the fusion; :func:`restore_epsilons` writes it onto the
fused op, and names the fusions whose ε it cannot find so the caller can refuse them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from tfopt._tf import const_value
from tfopt.graphdef.calls import ref_node

LAYER_NORM = "_MklLayerNorm"
# What a session's Grappler runs up to its remapper, in its order: they clear the way for its
# fusions (the remapper alone misses layer norms a session then fuses).
SESSION_ORDER = ("pruning", "function", "common_subgraph_elimination", "debug_stripper", "constfold", "shape",
                 "arithmetic", "layout", "remap")


def fused_nodes(before: dict[str, Any], output: str, removed: set[str]) -> list[str]:
    """The nodes of the unfused graph ``before`` that the fusion named ``output`` replaced: ``output``
    and the removed nodes it reaches through removed nodes (so no neighbouring layer is read)."""
    seen, queue, order = {output}, deque([output]), []
    while queue:
        name = queue.popleft()
        if name not in before:
            continue
        order.append(name)
        for ref in before[name].input:
            if ref_node(ref) in removed and ref_node(ref) not in seen:
                seen.add(ref_node(ref))
                queue.append(ref_node(ref))
    return order


def graph_epsilon(before: dict[str, Any], nodes: list[str]) -> float | None:
    """The ε of a layer norm made of ``nodes`` of the unfused graph ``before``: the
    ``FusedBatchNormV3``'s attribute, or the one scalar constant added to the variance before
    ``Rsqrt``. ``None`` when there is no such scalar."""
    for node in (before[n] for n in nodes):
        if node.op == "FusedBatchNormV3" and "epsilon" in node.attr:
            return float(node.attr["epsilon"].f)
        if node.op == "Rsqrt":
            add = before.get(ref_node(node.input[0]))
            if add is None or add.op not in ("Add", "AddV2"):
                return None
            consts = [before.get(ref_node(i)) for i in add.input]
            values = [np.asarray(const_value(c)) for c in consts if c is not None and c.op == "Const"]
            scalars = [float(v.reshape(-1)[0]) for v in values if v.size == 1]
            return scalars[0] if len(scalars) == 1 else None
    return None


def restore_epsilons(before: Any, after: Any) -> list[str]:
    """Give each ``_MklLayerNorm`` of ``after`` the ε of the subgraph it replaced in ``before``, and
    put back the subgraphs whose ε is not one scalar (in place). Returns the names put back."""
    old = {n.name: n for n in before.node}
    removed = set(old) - {n.name for n in after.node}
    refused = []
    for node in [n for n in after.node if n.op == LAYER_NORM and old.get(n.name, n).op != LAYER_NORM]:
        nodes = fused_nodes(old, node.name, removed)
        epsilon = graph_epsilon(old, nodes)
        if epsilon is not None:
            node.attr["epsilon"].f = epsilon
            continue
        refused.append(node.name)
        node.CopyFrom(old[node.name])
        after.node.extend(old[n] for n in nodes[1:])
    return refused


def layer_norms_fused(graph_def: Any, keep: list[str]) -> Any:
    """``graph_def`` with every layer norm that a TensorFlow session with oneDNN would fuse already
    fused, with the graph's ε: a session leaves a fused one alone and would give the others
    ε = 0.001. Unchanged without oneDNN, or when no more layer norms fuse."""
    from tensorflow.python.util import _pywrap_util_port

    from tfopt.graphdef.grappler import run_grappler

    if not _pywrap_util_port.IsMklEnabled() or not any(n.op == "Rsqrt" for n in graph_def.node):
        return graph_def
    fused = run_grappler(graph_def, keep, list(SESSION_ORDER))
    restore_epsilons(graph_def, fused)

    def count(g: Any) -> int:
        return sum(n.op == LAYER_NORM for n in g.node)

    return fused if count(fused) > count(graph_def) else graph_def
