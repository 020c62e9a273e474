"""Which of a graph's output candidates tfopt converts, and which it lists as alternatives.

:func:`tfopt.loaders.training_nodes.explain_outputs` finds the candidates (sinks of the forward graph,
tensors that feed only the loss or only a metric). They are grouped into *heads* by structure:

- a float candidate's head is its *root*, reached backwards through ops that only reshape, transpose
  or squash one float tensor (Identity, Softmax, Sigmoid, Reshape, Transpose, ...): ``Softmax(logits)``,
  ``Identity(logits)`` and the loss's ``Reshape(logits)`` are one head, rooted at ``logits``;
- an int/bool candidate is a *decision* when it is computed from one float tensor ``F`` through
  decision ops (``ArgMax``, a comparison with a constant or a shape-only threshold, ``Cast``, ...):
  it joins ``F``'s head, and when no float tensor of that head is a candidate, ``F`` itself is
  chosen (``prob`` read only by ``pred = prob > 0.5``: the float head carries the decision).

In each head the float tensors that are sinks or feed a metric are chosen; the decisions derived
from them and the tensors that feed only the loss become alternatives (a float head carries the
decision and more: ``argmax(prob) == pred``). A head without such a tensor keeps what it has. Every
head is chosen, so a multi-head graph converts all its heads. The choice is *certain* when the
graph had exactly one candidate; otherwise the alternatives are listed for ``--outputs``.
Candidates that need labels (:mod:`tfopt.loaders.evaluation_heads`: a CTC loss, an edit distance, a
cross-entropy) are alternatives; with no inference head left, the predictions they compare are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfopt.graph import (
    VARIABLE_OPS,
    ancestors,
    node_map,
    tensor_node,
    tensor_port,
)
from tfopt.loaders.head_kinds import (
    decision_source,
    head_root,
    is_float,
    is_source,
    node_dtype,
    reaches,
)

LOSS_REASON = "feeds only the loss"
MAX_HEADS = 8


# Ops that select part of one tensor with constant positions: ``logits[..., k]`` for a per-class metric,
# a summary or a dice loss.
SLICE_OPS = frozenset({"StridedSlice", "Slice", "Gather", "GatherV2"})
# HEAD_OPS that keep every value where it was, only the shape changes: ``Reshape(logits, [-1, classes])``.
SHAPE_ONLY_OPS = frozenset({"Identity", "Reshape", "Squeeze", "ExpandDims", "StopGradient", "Snapshot"})


def slice_base(name: str, nodes: dict[str, Any]) -> str | None:
    """The head root (:func:`head_root`) that ``name``, a constant slice, selects from, back through
    further slices and plain forms; None when ``name`` is no such slice."""
    cur, found = nodes[name], None
    while cur.op in SLICE_OPS:
        refs = [r for r in cur.input if not r.startswith("^")]
        if not refs or any(tensor_node(r) not in nodes for r in refs) or tensor_port(refs[0]) != 0 \
                or any(nodes[tensor_node(r)].op != "Const" for r in refs[1:]) or not is_float(nodes[tensor_node(refs[0])]):
            break
        found = head_root(nodes[tensor_node(refs[0])], nodes)
        cur = nodes[found]
    return found


def _merge_slices(groups: dict[str, list[str]], reasons: dict[str, str], nodes: dict[str, Any]) -> dict[str, str]:
    """Fold into the head of the tensor it selects from every head rooted at a constant slice of a tensor
    that is a head's root itself, or whose forms all feed only metrics or the loss (in place); returns
    slice root -> that tensor. ``logits[..., k]`` read by a per-class metric is no head of its own: the
    logits carry it."""
    merged: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for root in [r for r in groups if r not in merged]:
            base = slice_base(root, nodes)
            if base is None or base == root:
                continue
            if base in groups or all(_rank(reasons.get(m, "")) > 0 for m in groups[root] if is_float(nodes[m])):
                merged[root] = base
                groups.setdefault(base, []).extend(groups.pop(root))
                changed = True
    return merged


@dataclass
class OutputChoice:
    """The outputs chosen from ``reasons``' candidates, and why each other candidate was not."""

    chosen: list[str]
    reasons: dict[str, str]
    alternatives: dict[str, str] = field(default_factory=dict)

    @property
    def certain(self) -> bool:
        return len(self.reasons) == 1

    def provenance(self) -> dict[str, Any]:
        """What a loader records when the choice was not certain (empty when it was)."""
        if self.certain:
            return {}
        return {"outputs_chosen_from": dict(self.reasons), "output_alternatives": dict(self.alternatives)}

    def message(self, path: str) -> str:
        """One line a user can act on: what was chosen, what else there is, how to choose."""
        heads = "several heads: " if len(self.chosen) > 1 else ""
        others = "; ".join(f"{n} ({why})" for n, why in self.alternatives.items())
        return (f"{path}: outputs chosen automatically ({heads}{', '.join(self.chosen)})"
                + (f"; alternatives: {others}" if others else "") + ". Choose others with --outputs NODE [NODE ...]")


METRIC_REASON = "feeds only a metric"
PREDICTION_REASON = "the prediction "  # (tfopt.loaders.evaluation_heads)


def _rank(reason: str) -> int:
    """A head's forms by preference: a sink (or what decisions read), a metric's input, an evaluation
    head's prediction, the loss's input."""
    prefixes = (METRIC_REASON, PREDICTION_REASON, LOSS_REASON)
    return next((i + 1 for i, p in enumerate(prefixes) if reason.startswith(p)), 0)


BOOKKEEPING = "computed from the inputs alone, no float computation of the model (e.g. a RNN's min/max length)"
INPUT_FREE = "computed from no input, only variables and constants (e.g. a learning rate's read)"
WEIGHT_FREE = ("reads no variable: a function of the inputs' sizes, lengths or labels only (e.g. a RNN's zero "
               "state or min length, the labels' reshape)")
REPLICA = "a replica of {}: the same computation over the same variables (another device's tower)"


def reads_no_variable(node: Any, nodes: dict[str, Any]) -> bool:
    """Computed without the value of any variable (shapes of things aside): no weight of the model."""
    return not reaches(node, nodes, lambda n: n.op in VARIABLE_OPS)


def _set_aside(graph_def: Any, nodes: dict[str, Any], reasons: dict[str, str]) -> dict[str, str]:
    """Candidates that are no head of their own, each with why (see :func:`choose_outputs`)."""
    from tfopt.loaders.loop_outputs import carried_loop_variables
    from tfopt.loaders.replicas import find_replicas

    sources = {n.name for n in graph_def.node if is_source(n)}
    out = {n: BOOKKEEPING for n in reasons if not is_float(nodes[n]) and is_bookkeeping(nodes[n], nodes)}
    out |= {n: INPUT_FREE for n in reasons if n not in out
            and not ancestors(graph_def, [n], follow_control=False) & sources}
    if any(n.op in VARIABLE_OPS for n in graph_def.node):  # a graph with weights: a head reads some
        out |= {n: WEIGHT_FREE for n in reasons if n not in out and reads_no_variable(nodes[n], nodes)}
    out |= {n: why for n, why in carried_loop_variables(graph_def, nodes, [n for n in reasons if n not in out]).items()}
    replicas = find_replicas(graph_def, [n for n in reasons if n not in out])
    return out | {n: REPLICA.format(of) for n, of in replicas.items()}


def is_bookkeeping(node: Any, nodes: dict[str, Any]) -> bool:
    """An int/bool tensor no float op of the model feeds: only sources, constants and int ops
    (``reduce_min(seq_len)`` that TF1's ``dynamic_rnn`` leaves unused, ``shape(x)[0]``)."""
    return not reaches(node, nodes, lambda n: not is_source(n) and is_float(n))


def _loss_of_another_head(graph_def: Any, head: list[str], heads: list[list[str]], reasons: dict[str, str],
                          alternatives: dict[str, str]) -> bool:
    """A head whose forms all feed only the loss and are computed from another head (the loss of the
    prediction, averaged over a training graph's towers) is that head's loss, not a head: listed in
    ``alternatives``, True. Losses need labels; the head they are computed from is the prediction."""
    if not all(reasons[m].startswith(LOSS_REASON) for m in head):
        return False
    above = ancestors(graph_def, head, follow_control=False)
    source = next((c for other in heads if other is not head for c in other if c in above), None)
    if source is None:
        return False
    alternatives.update({m: f"{reasons[m]}: computed from the head {source} (a loss needs labels)" for m in head})
    return True


def _network_form(head: list[str], nodes: dict[str, Any], reasons: dict[str, str],
                  alternatives: dict[str, str]) -> list[str]:
    """A head whose forms all feed only the loss (the loss's ``Reshape(logits, [-1, classes])``) is
    the network's own tensor they are a plain form of, its root (:func:`head_root`): the logits at
    their own shape ([?, 40, 40, 5], not the loss's [?, 5]). Other heads as they are."""
    roots = {head_root(nodes[m], nodes) for m in head}
    # a metric's flat Reshape(logits, [-1, classes]) too: only the shape changed, the logits keep theirs
    flat = all(_rank(reasons[m]) > 0 and head_root(nodes[m], nodes, SHAPE_ONLY_OPS) in roots for m in head)
    if not (flat or all(reasons[m].startswith(LOSS_REASON) for m in head)) or len(roots) != 1:
        return head
    root = nodes[roots.pop()]
    if root.name in head or not is_float(root) or is_source(root) or root.op in VARIABLE_OPS | {"Const"}:
        return head
    stale = f"the float head {', '.join(head)} is chosen"
    alternatives.update({m: why.replace(stale, f"the float head {root.name} is chosen")
                         for m, why in alternatives.items() if why.endswith(stale)})
    reasons.setdefault(root.name, f"the network's tensor {', '.join(head)} (a plain form of it for the loss or a "
                                  "metric) reads")
    alternatives.update({m: f"{reasons[m]}: the network's own form {root.name} is chosen" for m in head})
    return [root.name]


def choose_outputs(graph_def: Any, reasons: dict[str, str]) -> OutputChoice:
    """Group ``reasons``' candidates (from ``explain_outputs``) into heads and pick in each.
    Candidates that are :func:`is_bookkeeping`, read no input at all (a second model copy's
    learning-rate variable), read no variable in a graph that has some (:func:`reads_no_variable`: a
    RNN's zero state, the labels' reshape), or replicate another candidate (:mod:`tfopt.loaders.replicas`:
    a training graph's towers) become alternatives when any other candidate is not;
    evaluation heads (:mod:`tfopt.loaders.evaluation_heads`: they need labels) become alternatives, replaced
    by their predictions when no candidate is an inference head."""
    from tfopt.loaders.evaluation_heads import find_evaluation
    from tfopt.loaders.towers import find_towers

    nodes = node_map(graph_def)
    set_aside = _set_aside(graph_def, nodes, reasons)
    if set_aside and len(set_aside) < len(reasons):
        kept = {n: why for n, why in reasons.items() if n not in set_aside}
        choice = choose_outputs(graph_def, kept)
        choice.reasons = dict(reasons) | choice.reasons
        choice.alternatives.update({n: set_aside[n] for n in sorted(set_aside)})
        return choice
    evaluation = find_evaluation(graph_def, list(reasons))
    pool = {n: why for n, why in reasons.items() if n not in evaluation.heads}
    if all(why.startswith(LOSS_REASON) for why in pool.values()):  # no inference head: the predictions
        pool |= {n: why for n, why in evaluation.predictions.items() if n not in pool}
    if evaluation.heads and pool:  # never the labels as inputs
        choice = choose_outputs(graph_def, pool)
        choice.reasons = dict(reasons) | choice.reasons
        choice.alternatives.update(evaluation.heads)
        return choice
    groups: dict[str, list[str]] = {}
    decided: dict[str, str] = {}
    decides_on: dict[str, str] = {}  # decision -> the float tensor it decides on
    for name in reasons:
        node = nodes[name]
        if is_float(node):
            root = head_root(node, nodes)
        else:
            _, source = decision_source(node, nodes)
            root = head_root(source, nodes) if source is not None else name
            if source is not None:
                decided[name] = f"{node_dtype(node)} {node.op} of {source.name}"
                decides_on[name] = source.name
        groups.setdefault(root, []).append(name)
    chosen: list[str] = []
    alternatives: dict[str, str] = {}
    reasons = dict(reasons)
    heads: list[list[str]] = []
    merged = _merge_slices(groups, reasons, nodes)
    for root, members in groups.items():
        floats = [m for m in members if is_float(nodes[m])]
        decisions = [m for m in members if m in decided]
        if decisions and all(reasons[m].startswith(LOSS_REASON) for m in floats):
            # only decisions, or besides them the loss's own copy: the float tensor they decide on is the
            # head (prob, not prob > 0.5; logits, not argmax(logits) nor the loss's Reshape(logits))
            fed = min((reasons[m] for m in decisions), key=_rank)  # decisions read by a metric: so is the tensor
            fed = f"{fed.split(' (')[0]}: " if _rank(fed) else ""
            for source in sorted({decides_on[m] for m in decisions}):
                reasons.setdefault(source, f"{fed}the float tensor {', '.join(decisions)} decides on")
                floats.append(source)
        sliced = {m: f"a constant slice of {root}: the head's whole tensor carries it" for m in floats
                  if head_root(nodes[m], nodes) in merged}
        if sliced and len(sliced) == len(floats):  # only slices of it feed metrics or the loss: the tensor itself
            sources = {tensor_node(nodes[head_root(nodes[m], nodes)].input[0]) for m in sliced}
            whole = sources.pop() if len(sources) == 1 else root  # prob, when prob[..., k] is what they read
            reasons.setdefault(whole, f"the tensor the slices {', '.join(sliced)} select from")
            floats = [whole]
        floats = [m for m in floats if m not in sliced]
        alternatives.update({m: f"{sliced[m]} ({reasons[m]})" for m in sliced})
        rank = {m: _rank(reasons[m]) for m in floats}  # the most final form of the head wins
        preferred = [m for m in floats if rank[m] == min(rank.values())] if floats else members
        heads.append(preferred)
        for m in members:
            if m in preferred or m in sliced:
                continue
            what = decided.get(m, f"{node_dtype(nodes[m])}, {reasons[m]}")
            alternatives[m] = f"{what}: the float head {', '.join(preferred)} is chosen"
    for head in heads:
        if not _loss_of_another_head(graph_def, head, heads, reasons, alternatives):
            chosen += _network_form(head, nodes, reasons, alternatives)
    towers = find_towers(graph_def, chosen)  # a training script's train and eval copies: the eval one
    alternatives.update(towers)
    chosen = [c for c in chosen if c not in towers]
    order = list(reasons)
    return OutputChoice(sorted(chosen, key=order.index), reasons, alternatives)
