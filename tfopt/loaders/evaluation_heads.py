"""Evaluation heads: output candidates that need labels, which a deployed model is never given.

A TF1 training graph leaves its loss and metrics as sinks beside (or instead of) the prediction: a
CTC loss and an ``EditDistance`` against a sparse-label placeholder (a nanopore basecaller), a
cross-entropy or an accuracy against ``y``. Converting them makes the labels model inputs, and
made-up labels give nothing usable (issue 24: chiron). Found by structure, names play no part:

- a *label* placeholder reaches the candidates only through *evaluation ops*
  (:data:`EVAL_OPS`: ``CTCLoss``, ``EditDistance``, the softmax cross-entropies, ``InTopK``,
  ``Equal``, ``SquaredDifference``...) on their *plain* side, the operand computed from
  placeholders and reformatting ops only (no weights: ``OneHot``, ``Cast``, ``StopGradient``...),
  while another operand is computed by the model;
- an *evaluation head* is a candidate computed from a label placeholder (a loss, a metric, or the
  labels' own reformatting, ``Reshape(one_hot(y))``, which a cross-entropy leaves as a candidate);
- its *prediction* is the computed operand of the evaluation op where the labels meet the model
  (``CTCLoss``' logits, a cross-entropy's features; the op's :data:`EVAL_OPS` entry names which
  operands are predictions, ``None``: whichever side is not plain).

:func:`tfopt.loaders.output_choice.choose_outputs` then prefers the candidates that need no labels
(inference heads); when every candidate is an evaluation head, their predictions are the outputs.
Either way the evaluation heads are listed as alternatives and the labels are no inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfopt.graph import PLACEHOLDER_OPS, ancestors, consumers, node_map, tensor_node

# evaluation op -> the operand positions that are the model's prediction (None: the side not plain)
EVAL_OPS: dict[str, tuple[int, ...] | None] = {
    "CTCLoss": (0,), "CTCLossV2": (0,), "SoftmaxCrossEntropyWithLogits": (0,),
    "SparseSoftmaxCrossEntropyWithLogits": (0,), "InTopK": (0,), "InTopKV2": (0,),
    "EditDistance": (0, 1, 2),  # the hypothesis: decoded (sparse ints), the decoder's scores are the prediction
    "Equal": None, "NotEqual": None, "SquaredDifference": None,
}
# A decoder's input is the scores it decodes: EditDistance's hypothesis is found back through it.
DECODERS = frozenset({"CTCGreedyDecoder", "CTCBeamSearchDecoder"})
SHAPE_ONLY = frozenset({"Shape", "ShapeN", "Size", "Rank"})  # read their input's shape, not its values
# What may lie between a label placeholder and an evaluation op: reformatting, never weights.
PLAIN_OPS = PLACEHOLDER_OPS | {
    "Const", "Identity", "Cast", "OneHot", "Shape", "StridedSlice", "Pack", "Slice", "ConcatV2", "Squeeze",
    "ExpandDims", "Reshape", "ArgMax", "StopGradient", "SparseToDense", "Fill", "Range", "ToInt32", "ToInt64"}


@dataclass
class Evaluation:
    """Label placeholders, evaluation heads (name -> why) and their predictions (name -> why)."""

    labels: set[str] = field(default_factory=set)
    heads: dict[str, str] = field(default_factory=dict)
    predictions: dict[str, str] = field(default_factory=dict)


def find_evaluation(graph_def: Any, candidates: list[str]) -> Evaluation:
    """Split ``candidates`` (see the module docstring); an empty :class:`Evaluation` when no
    candidate needs labels."""
    nodes, users = node_map(graph_def), consumers(graph_def)
    plain: dict[str, bool] = {}

    def is_plain(ref: str) -> bool:  # every op between a placeholder's values and ``ref`` reformats
        name = tensor_node(ref)
        if name not in plain:
            above = ancestors(graph_def, [name], follow_control=False, skip_edge=lambda n, r: n.op in SHAPE_ONLY)
            stack = [a for a in above if a in nodes and nodes[a].op in PLACEHOLDER_OPS]
            valued = set(stack)  # what the placeholders' values reach (shape arithmetic aside)
            while stack:
                for user, index in users.get(stack.pop(), []):
                    if user.name in above and user.name not in valued and user.op not in SHAPE_ONLY \
                            and not user.input[index].startswith("^"):
                        valued.add(user.name)
                        stack.append(user.name)
            plain[name] = all(nodes[v].op in PLAIN_OPS for v in valued)
        return plain[name]

    def meets(user: Any, index: int) -> bool:  # the labels' plain side meets a computed operand
        refs = [r for r in user.input if not r.startswith("^")]
        return user.op in EVAL_OPS and is_plain(refs[index]) and not all(is_plain(r) for r in refs)

    wanted = {c for c in candidates if not is_plain(c)}  # a plain candidate is the labels' own reformatting
    meetings: dict[str, set[str]] = {}
    for node in graph_def.node:
        if node.op not in PLACEHOLDER_OPS:
            continue
        met, seen, stack, reached = set(), {node.name}, [node.name], False
        while stack and not reached:
            for user, index in users.get(stack.pop(), []):
                if user.input[index].startswith("^") or user.name in seen:
                    continue
                if meets(user, index):
                    met.add(user.name)
                    continue
                seen.add(user.name)
                reached = reached or user.name in wanted
                stack.append(user.name)
        if met and not reached:
            meetings[node.name] = met
    out = Evaluation(labels=set(meetings))
    seen_signatures: set[tuple[Any, ...]] = set()
    for name in candidates:
        needs = sorted(ancestors(graph_def, [name], follow_control=False) & out.labels)
        if not needs:
            continue
        at = sorted({m for label in needs for m in meetings[label]} & ancestors(graph_def, [name], follow_control=False))
        where = ", ".join(f"{nodes[m].op} '{m}'" for m in at[:3])
        out.heads[name] = f"an evaluation head: needs the labels {', '.join(needs)} (not model inputs), at {where}"
        for m in at:
            for ref in _prediction_operands(nodes[m], nodes, is_plain):
                if _signature(nodes[tensor_node(ref)], nodes) not in seen_signatures:  # each head its own transpose
                    seen_signatures.add(_signature(nodes[tensor_node(ref)], nodes))
                    out.predictions[tensor_node(ref)] = (f"the prediction {nodes[m].op} '{m}' compares with labels "
                                                         f"{', '.join(needs)}")
    return out


def _signature(node: Any, nodes: dict[str, Any]) -> tuple[Any, ...]:
    """What ``node`` computes: its op, attributes and inputs, constants by value (two
    ``Transpose(logits, [1, 0, 2])`` with their own ``perm`` constants are one computation)."""
    def operand(ref: str) -> Any:
        const = nodes.get(tensor_node(ref))
        return const.attr["value"].SerializeToString() if const is not None and const.op == "Const" else ref

    attrs = tuple(sorted((k, v.SerializeToString()) for k, v in node.attr.items() if not k.startswith("_")))
    return node.op, attrs, tuple(operand(r) for r in node.input if not r.startswith("^"))


def _prediction_operands(node: Any, nodes: dict[str, Any], is_plain: Any) -> list[str]:
    """The operands of evaluation op ``node`` that are the model's prediction, a decoded one
    replaced by the scores its decoder read (port 0 only: a tensor tfopt names by its node)."""
    refs = [r for r in node.input if not r.startswith("^")]
    positions = EVAL_OPS[node.op]
    picked = [refs[i] for i in positions if i < len(refs)] if positions is not None else refs
    out = []
    for ref in picked:
        source = nodes.get(tensor_node(ref))
        while source is not None and source.op in ("Cast", "Identity", "ToInt32", "ToInt64") and source.input:
            source = nodes.get(tensor_node(source.input[0]))
        ref = source.input[0] if source is not None and source.op in DECODERS else ref
        if not is_plain(ref) and (":" not in ref or ref.endswith(":0")) and ref not in out:
            out.append(ref)
    return out
