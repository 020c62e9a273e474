"""Towers: copies of one network over the same variables that differ only in training mode.

A TF1 training script often builds its network twice, the copies sharing their variables through
``reuse=True``: a *train tower* (batch statistics, dropout on, read by the loss and its gradient) and
an *eval tower* (moving statistics, dropout off) for validation metrics, each fed by its own input or
iterator. Both leave heads; a deployed model is the eval tower. Found by structure, names play no
part, as :mod:`tfopt.loaders.replicas` finds device replicas, but on a *mode-blind view* of the graph:

- a ``FusedBatchNorm*`` loses its ``is_training``/``exponential_avg_factor`` attributes and its mean
  and variance operands (batch statistics in training, the moving averages at inference);
- a dropout is passed through: an elementwise ``Mul``/``RealDiv``/``Select`` with a *noise* operand
  (computed from a random op and constants or shapes only: the keep mask) stands for its other
  operand, and so does a scaling by a constant that only such a masked op reads (TF1's
  ``x / keep * floor(keep + u)``, TF2's ``x * 1/(1 - rate) * cast(u >= rate)``); an ``Identity`` (the
  inference dropout of ``tf.layers``) is passed through;
- inputs are labelled by dtype and shape, not by name (the train and eval towers read two inputs).

Heads whose views are replicas form a cluster. A head is in *training mode* when a random op or a batch
norm in training mode is among its ancestors, or a gradient differentiates it (``gradients/<head>_grad``).
In a cluster with both kinds, the training-mode heads are towers of an inference-mode head, which is
kept; a cluster of one mode only (a siamese network's twin heads, each over its own input) is left alone.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import PLACEHOLDER_OPS, node_map, tensor_node

BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
MODE_ATTRS = ("is_training", "exponential_avg_factor")
MASKED_OPS = frozenset({"Mul", "RealDiv", "Select", "SelectV2"})
SCALING_OPS = frozenset({"Mul", "RealDiv", "Div", "Identity"})
CONSTANT_LIKE = frozenset({"Const", "ZerosLike", "OnesLike", "Fill"})  # a masked-out value: 0
_SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})
TOWER = ("the training-mode tower of {of} (the same network over the same variables, {why}): "
         "{of} is its inference tower")


def is_random(op: str) -> bool:
    """A stateful random draw (a dropout's uniform noise)."""
    return "Random" in op or op.startswith("Stateful") or op in ("TruncatedNormal", "Multinomial")


def _forward(graph_def: Any, seeds: set[str], *, through_shapes: bool) -> set[str]:
    """``seeds`` and what their values reach through data edges (into a ``Shape`` only with ``through_shapes``)."""
    users: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for ref in node.input:
            if not ref.startswith("^"):
                users.setdefault(tensor_node(ref), []).append(node)
    seen, stack = set(seeds), list(seeds)
    while stack:
        for user in users.get(stack.pop(), []):
            if user.name not in seen and (through_shapes or user.op not in _SHAPE_OPS):
                seen.add(user.name)
                stack.append(user.name)
    return seen


def mode_blind_view(graph_def: Any) -> Any:
    """A copy of ``graph_def`` rewritten as the module docstring says (for labelling, never for running)."""
    from tfopt.loaders.training_nodes import is_training_node

    view = type(graph_def)()
    view.CopyFrom(graph_def)
    nodes = node_map(view)
    valued = _forward(view, {n.name for n in view.node if n.op in PLACEHOLDER_OPS or (not n.input and n.op != "Const"
                             and not is_random(n.op))}, through_shapes=False)
    noise = _forward(view, {n.name for n in view.node if is_random(n.op)}, through_shapes=True) - valued
    data = {n.name: [r for r in n.input if not r.startswith("^")] for n in view.node}

    def through(node: Any) -> str | None:  # the operand a dropout op stands for
        refs = [r for r in data[node.name] if tensor_node(r) in nodes]
        if node.op == "Identity" and len(refs) == 1:
            return refs[0]
        if node.op in MASKED_OPS and node.name not in noise:
            kept = [r for r in refs if tensor_node(r) not in noise and nodes[tensor_node(r)].op not in CONSTANT_LIKE]
            if len(kept) == 1 and len(kept) < len(refs) and any(tensor_node(r) in noise for r in refs):
                return kept[0]
        return None

    masked = {n.name for n in view.node if n.op in MASKED_OPS and through(n) is not None}
    readers: dict[str, set[str]] = {}  # forward readers of values (a gradient's reads and shapes aside)
    for node in view.node:
        if node.op not in _SHAPE_OPS and not is_training_node(node):
            for ref in data[node.name]:
                readers.setdefault(tensor_node(ref), set()).add(node.name)
    passed: dict[str, str] = {}
    for node in view.node:
        ref = through(node)
        if ref is None and node.op in SCALING_OPS and readers.get(node.name) and readers[node.name] <= masked:
            refs = [r for r in data[node.name] if nodes.get(tensor_node(r)) is not None
                    and nodes[tensor_node(r)].op != "Const"]
            ref = refs[0] if len(refs) == 1 else None  # x / keep_prob, read only by the mask's multiply
        if ref is not None:
            passed[node.name] = ref

    def resolve(ref: str) -> str:
        for _ in range(len(passed) + 1):
            if tensor_node(ref) not in passed:
                break
            ref = passed[tensor_node(ref)]
        return ref

    for node in view.node:
        refs = [resolve(r) for r in data[node.name]]
        if node.op in BATCH_NORM_OPS:
            refs = refs[:3]
            for key in MODE_ATTRS:
                node.attr.pop(key, None)
        del node.input[:]
        node.input.extend(refs)
    return view


def training_mode(graph_def: Any, head: str) -> str:
    """Why ``head`` is computed in training mode ("" when it is not): see the module docstring."""
    from tfopt.graph import ancestors
    from tfopt.loaders.training_nodes import GRAD_SCOPE

    nodes = node_map(graph_def)
    above = ancestors(graph_def, [head], follow_control=False)
    why = []
    if any(nodes[a].op in BATCH_NORM_OPS and nodes[a].attr["is_training"].b for a in above if a in nodes):
        why.append("batch statistics")
    if any(is_random(nodes[a].op) for a in above if a in nodes):
        why.append("dropout on")
    if any((m := GRAD_SCOPE.match(n.name)) and m["fwd"] == head for n in graph_def.node):
        why.append("differentiated by the loss's gradient")
    return ", ".join(why)


def find_towers(graph_def: Any, heads: list[str]) -> dict[str, str]:
    """Head -> why it is the training-mode tower of another head (absent for the heads to keep)."""
    from tfopt.loaders.replicas import find_replicas

    if len(heads) < 2:
        return {}
    copies = find_replicas(mode_blind_view(graph_def), heads, inputs_by_name=False)
    clusters: dict[str, list[str]] = {}
    for head in heads:
        clusters.setdefault(copies.get(head, head), []).append(head)
    out: dict[str, str] = {}
    for members in clusters.values():
        modes = {m: training_mode(graph_def, m) for m in members}
        inference = [m for m in members if not modes[m]]
        if inference and len(inference) < len(members):
            out |= {m: TOWER.format(of=inference[0], why=modes[m]) for m in members if modes[m]}
    return out
