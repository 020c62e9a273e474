"""What in a graph exists only for training, which placeholders are training flags, and which
nodes are the forward graph's outputs.

A node is *training-only* when its op mutates state, saves/restores, summarises or applies an
optimizer, or when it lives under a scope TF and Keras reserve for that (``gradients/``,
``save/``, an optimizer's scope, ``loss``...). Output candidates are the sinks of what remains.
"""

from __future__ import annotations

import re
from typing import Any

from tfopt.graph import (
    CONTROL_FLOW_V1_OPS,
    DT_BOOL,
    PLACEHOLDER_OPS,
    VARIABLE_OPS,
    ancestors,
    consumers,
    node_map,
    tensor_node,
)
from tfopt.loaders.head_kinds import DECISION_OPS, decision_source
from tfopt.loaders.metric_state import accumulator_metrics
from tfopt.loaders.pipeline_inputs import is_pipeline_op

TRAINING_OPS = frozenset({
    "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
    "AssignSubVariableOp", "ScatterAdd", "ScatterSub", "ScatterUpdate", "ResourceScatterAdd",
    "ResourceScatterUpdate", "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice",
    "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec", "StringJoin",
    "ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummary", "TensorSummary",
    "TensorSummaryV2", "MergeSummary", "WriteSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "SummaryWriter", "CreateSummaryFileWriter",
    "VarIsInitializedOp", "IsVariableInitialized", "Assert", "CheckNumerics", "CheckNumericsV2",
    "PreventGradient", "BroadcastGradientArgs", "ReluGrad", "Relu6Grad", "BiasAddGrad",
    "Conv2DBackpropFilter", "FusedBatchNormGrad", "FusedBatchNormGradV2", "FusedBatchNormGradV3",
    "SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "TruncatedNormal",
})
TRAINING_OP_PREFIXES = ("Apply", "ResourceApply", "SparseApply", "ResourceSparseApply")
TRAINING_SCOPES = re.compile(
    r"(^|/)(gradients(_\d+)?|save(_\d+)?|train(ing_op)?|optimizer|Adam(_\d+)?|SGD|GradientDescent|"
    r"Momentum|RMSProp|Adagrad|Adadelta|Ftrl|Nadam|Adamax|loss(es)?|metrics?|summar(y|ies)|init(_\d+)?|"
    r"report_uninitialized_\w+|beta[12]_power|global_step|Initializer)(/|$)|_grad(/|$)|AssignMovingAvg"
)
TRAINING_FLAG_NAMES = re.compile(r"(^|/)(is_training|training|phase_train|train_phase|keras_learning_phase|learning_phase)(_\d+)?$")
LABEL_NAMES = re.compile(r"(^|/)(labels?|targets?|y_true|ground_truth|gt)(_\d+)?$", re.IGNORECASE)
_NOT_OUTPUTS = PLACEHOLDER_OPS | VARIABLE_OPS | CONTROL_FLOW_V1_OPS | {"Const", "NoOp", "ReadVariableOp"}
LOSS_SCOPES = re.compile(r"(^|/)(loss(es)?|metrics?|accuracy)(_\d+)?(/|$)")
LOSS_OPS = frozenset({"SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits"})


def is_training_node(node: Any) -> bool:
    return (node.op in TRAINING_OPS or node.op.startswith(TRAINING_OP_PREFIXES)
            or bool(TRAINING_SCOPES.search(node.name)))


def is_training_flag(node: Any, graph_def: Any | None = None) -> bool:
    """A scalar bool placeholder named like a training flag or selecting a cond branch."""
    if node.op not in PLACEHOLDER_OPS or node.attr["dtype"].type != DT_BOOL:
        return False
    if "shape" in node.attr and len(node.attr["shape"].shape.dim) > 0:
        return False
    if TRAINING_FLAG_NAMES.search(node.name):
        return True
    return graph_def is not None and _selects_branch(graph_def, node.name)


def _selects_branch(graph_def: Any, name: str) -> bool:
    """Does ``name`` reach a Switch predicate or an If condition through Identity-like ops (or Enter)?"""
    users = consumers(graph_def)
    frontier, seen = [name], set()
    while frontier:
        cur = frontier.pop()
        if cur in seen:
            continue
        seen.add(cur)
        for node, idx in users.get(cur, []):
            if node.op in ("Switch", "RefSwitch") and idx == 1:
                return True
            if node.op in ("If", "StatelessIf") and idx == 0:
                return True
            # A flag captured by a TF1 while_loop reaches the body's Switch through an Enter.
            if node.op in ("Identity", "LogicalNot", "Cast", "Enter") and not node.input[idx].startswith("^"):
                frontier.append(node.name)
    return False


def is_training_graph(graph_def: Any) -> bool:
    """A graph built in training mode: it holds its own optimizer (an ``Apply*`` update op)."""
    return any(n.op.startswith(TRAINING_OP_PREFIXES) for n in graph_def.node)


def training_flags(graph_def: Any) -> list[str]:
    return [n.name for n in graph_def.node if is_training_flag(n, graph_def)]


def output_candidates(graph_def: Any) -> list[str]:
    """Names of :func:`explain_outputs`' candidates."""
    return list(explain_outputs(graph_def))


# ``tf.gradients`` under a scope (a tower's ``tower_1/gradients/tower_1/mul_grad/...``) names it the same way.
GRAD_SCOPE = re.compile(r"^(.*?/)?gradients(_\d+)?/(?P<fwd>.+?)_grad/")
GRAD_YS = re.compile(r"^(.*?/)?gradients(_\d+)?/(grad_ys_\d+|Fill)$")
_SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})


def loss_nodes(graph_def: Any) -> tuple[set[str], str]:
    """The loss(es): what the gradient subgraph differentiates, and how that was found.

    ``tf.gradients``/``minimize`` name each backward op ``gradients/<forward op>_grad/...``; the
    forward ops so referenced are the differentiated path, and its ends (no consumer on the path)
    are the losses. Without a gradient subgraph, loss ops and ``loss``-named scopes stand in.
    """
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    differentiated = {m["fwd"] for n in graph_def.node if (m := GRAD_SCOPE.match(n.name)) and m["fwd"] in nodes}
    # The backward pass starts at grad_ys = ones_like(loss): its consumers are the loss's own gradient.
    seeds = {m["fwd"] for n in graph_def.node if GRAD_YS.match(n.name)
             for u, _ in users.get(n.name, []) if (m := GRAD_SCOPE.match(u.name)) and m["fwd"] in nodes}
    if seeds:
        return seeds, "the gradient subgraph starts there"
    if differentiated:
        # The ends of the differentiated path that nothing forward consumes.
        ends = {d for d in differentiated
                if not any(not is_training_node(u) for u, i in users.get(d, []) if not u.input[i].startswith("^"))}
        if ends:
            return ends, "differentiated by the gradient subgraph"
    named = {n.name for n in graph_def.node if n.op in LOSS_OPS or LOSS_SCOPES.search(n.name)}
    return named, "named like a loss"


def explain_outputs(graph_def: Any) -> dict[str, str]:
    """Output candidates, each with why it is one: the forward graph's sinks.

    The loss is found structurally (:func:`loss_nodes`); a *label* placeholder is one that reaches
    the rest of the graph only through the loss (or is named like labels); update ops are the
    training-only nodes (assigns, moving averages, ``UPDATE_OPS`` the train op waits on). A node is
    a candidate when nothing but the loss, labels' computations and training nodes consumes it,
    it is not computed from the labels or the loss, and it depends on more than constants and
    training flags (nor, among placeholders, on training flags alone: a ``tf.cond``'s ``pred_id``
    with constant branches, which tf.layers BatchNorm leaves behind, reads variables too).
    """
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    training = {n.name for n in graph_def.node if is_training_node(n)}
    flags = {n.name for n in graph_def.node if is_training_flag(n, graph_def)}
    metric_side, metric_labels, metric_why = metric_nodes(graph_def, training, flags)
    losses, loss_why = loss_nodes(graph_def)
    losses -= metric_side  # an accuracy found by its scope's name is a metric, not the loss
    loss_side = _descendants(graph_def, losses, users) - training
    labels = metric_labels | {n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS and (
        LABEL_NAMES.search(n.name) or _is_label(graph_def, n.name, losses, loss_side, users, training))}
    loss_side |= _descendants(graph_def, labels, users) - training
    loss_side |= metric_side
    out: dict[str, str] = {}
    placeholders = {n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS}
    for node in graph_def.node:
        name = node.name
        if name in training or name in loss_side or node.op in _NOT_OUTPUTS or node.op.startswith("Placeholder"):
            continue
        if is_pipeline_op(node.op):
            continue  # the tf.data pipeline's plumbing (an iterator's string handle)
        if node.op == "Identity" and any(nodes[tensor_node(r)].op in CONTROL_FLOW_V1_OPS
                                         for r in node.input if tensor_node(r) in nodes):
            continue  # a cond pivot (switch_t/switch_f): control-flow plumbing
        all_users = [u for u, _ in users.get(name, [])]
        if any(u.name not in training and u.name not in loss_side for u in all_users):
            continue  # something in the forward graph consumes it (data or control)
        to_loss = [u.name for u in all_users if u.name in loss_side]
        if all_users and not to_loss and not any(u.op in LOSS_OPS or LOSS_SCOPES.search(u.name) for u in all_users):
            continue  # feeds only state updates / optimizer / saver: not a prediction
        if not all_users and node.op == "Identity" and _copy_for_gradient(node, users, training):
            continue  # a cond_v2 intermediate the gradient reads; nothing forward needs it
        sources = _sources(graph_def, name)
        if sources <= flags | {n for n in sources if nodes[n].op == "Const"}:
            continue  # computed from constants and training flags only
        feeds = placeholders & ancestors(graph_def, [name], follow_control=False)
        if feeds and feeds <= flags:
            continue  # among placeholders, computed from training flags alone: not a prediction
        if feeds and not (_value_ancestors(nodes, name) & placeholders) - flags:
            continue  # reads the inputs' shapes only (the loss's reshape plumbing): not a prediction
        if _reads_update(nodes, name):
            continue  # a metric's or counter's update (Select(count > 0, total / count, 0)): state, not a head
        metrics = sorted({metric_why[u] for u in to_loss if u in metric_why})
        if to_loss and metrics:
            out[name] = f"feeds only a metric ({'; '.join(metrics[:2])})"
        elif to_loss or all_users:  # read by the loss ops (or the loss's scope) only
            out[name] = f"feeds only the loss ({', '.join(sorted(losses)[:2])}, {loss_why})"
        else:
            out[name] = "consumed by nothing (a sink of the forward graph)"
    return out


METRIC_OPS = frozenset({"Equal", "NotEqual", "InTopK", "InTopKV2"})
# What lies between a label placeholder and the comparison: reformatting, never weights.
LABEL_SIDE_OPS = PLACEHOLDER_OPS | DECISION_OPS | {"Const", "OneHot", "Shape", "StridedSlice", "Pack", "Slice",
                                                   "ConcatV2", "Squeeze", "ExpandDims"}
REDUCTION_OPS = frozenset({"Mean", "Sum", "Count", "CountNonZero"})


def metric_nodes(graph_def: Any, training: set[str], flags: set[str]) -> tuple[set[str], set[str], dict[str, str]]:
    """An evaluation metric's nodes, its label placeholders, and per node what it measures.

    A metric compares a prediction with labels: an ``Equal``/``NotEqual``/``InTopK`` whose two
    data operands are computed from disjoint, non-empty sets of placeholders (training flags
    aside), one of them plainly labels (named like labels, or reformatting ops only: ``ArgMax`` of
    a one-hot, ``Cast``, no weights) and the comparison reduced to a score (``Mean``) or under a
    metric scope. Everything computed from the comparison (the accuracy) is the metric, and so are the
    decision ops (``ArgMax``, ``Cast``) between the prediction and the comparison that nothing
    else reads, so the float prediction they decide on is what feeds the metric.
    """
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    placeholders = {n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS} - flags
    side: set[str] = set()
    labels: set[str] = set()
    why: dict[str, str] = {}
    for node in graph_def.node:
        if node.op not in METRIC_OPS or node.name in training:
            continue
        operands = [tensor_node(r) for r in node.input if not r.startswith("^") and tensor_node(r) in nodes]
        if len(operands) < 2:
            continue
        above = [ancestors(graph_def, [o], follow_control=False) for o in operands[:2]]
        feeds = [a & placeholders for a in above]
        if not feeds[0] or not feeds[1] or feeds[0] & feeds[1]:
            continue
        named = [any(LABEL_NAMES.search(p) for p in f) for f in feeds]
        plain = [all(nodes[a].op in LABEL_SIDE_OPS for a in above_side if a in nodes) for above_side in above]
        if any(named) != all(named):
            label_at = named.index(True)
        elif plain[0] != plain[1]:
            label_at = plain.index(True)
        else:
            continue  # neither side is plainly labels: two computed tensors compared, a forward op
        metric = _descendants(graph_def, {node.name}, users) - training
        if not LOSS_SCOPES.search(node.name) and not any(nodes[m].op in REDUCTION_OPS for m in metric):
            continue  # never reduced to a score: a per-example comparison the model may return
        labels |= feeds[label_at]
        chain, _ = decision_source(nodes[operands[1 - label_at]], nodes)
        for link in chain:  # from the comparison back: keep only links nothing else reads
            readers = {u.name for u, i in users.get(link, []) if not u.input[i].startswith("^")}
            if not readers <= metric:
                break
            metric.add(link)
        side |= metric
        described = f"{node.op} against labels {', '.join(sorted(feeds[label_at]))}"
        why.update(dict.fromkeys(metric, described))
    accumulated = accumulator_metrics(graph_def, training)  # by structure: mean_iou's confusion matrix, any scope
    side |= set(accumulated)
    why.update(accumulated)
    for scope in _streaming_metric_scopes(graph_def, placeholders):
        members = {n.name for n in graph_def.node if n.name.startswith(scope + "/")}
        side |= members
        why.update(dict.fromkeys(members, f"streaming metric {scope}"))
    grown = True
    while grown:  # back from a metric: what only it reads and combines the labels with a prediction
        grown = False
        for node in graph_def.node:
            readers = {u.name for u, i in users.get(node.name, []) if not u.input[i].startswith("^")}
            if node.name in side or node.name in training or not readers or not readers <= side:
                continue
            above = [ancestors(graph_def, [tensor_node(r)], follow_control=False) for r in node.input
                     if not r.startswith("^") and tensor_node(r) in nodes and nodes[tensor_node(r)].op != "Const"]
            plain = [bool(a & placeholders) and all(nodes[x].op in LABEL_SIDE_OPS for x in a if x in nodes)
                     for a in above]
            if any(plain) and not all(plain):
                side.add(node.name)
                labels.update(*(a & placeholders for a, p in zip(above, plain) if p))
                why[node.name] = why[next(iter(readers))]
                grown = True
    for name in placeholders - labels:  # what reaches nothing but metrics is labels
        reach = _descendants(graph_def, {name}, users) - training - {name}
        if reach and reach <= side:
            labels.add(name)
    return side, labels, why


def _streaming_metric_scopes(graph_def: Any, placeholders: set[str]) -> set[str]:
    """Scopes of ``tf.compat.v1.metrics.*`` (and Keras metrics in a TF1 graph): a variable that an
    ``AssignAdd`` accumulates from the inputs (``total``, ``count``) holds a metric's state, and its
    scope is that metric. A step counter accumulates a constant and is not one."""
    scopes = set()
    for node in graph_def.node:
        if node.op not in ("AssignAdd", "AssignAddVariableOp") or len(node.input) < 2 or "/" not in node.input[0]:
            continue
        if ancestors(graph_def, [tensor_node(node.input[1])], follow_control=False) & placeholders:
            scopes.add(tensor_node(node.input[0]).rsplit("/", 1)[0])
    return scopes


def _value_ancestors(nodes: dict[str, Any], name: str) -> set[str]:
    """Ancestors through data edges, not through the input of a ``Shape``-like op (which reads
    only the shape of its input, not its values) unless the values chose that shape (the count of
    boxes non-max suppression kept: :mod:`tfopt.graphdef.dynamic_size`)."""
    from tfopt.graphdef.dynamic_size import SizedByValues

    sized = SizedByValues(nodes)
    seen: set[str] = set()
    stack = [name]
    while stack:
        cur = stack.pop()
        if cur in seen or cur not in nodes:
            continue
        seen.add(cur)
        if nodes[cur].op not in _SHAPE_OPS or sized(nodes[cur]):
            stack += [tensor_node(r) for r in nodes[cur].input if not r.startswith("^")]
    return seen


STATE_UPDATE_OPS = frozenset({"Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
                              "AssignSubVariableOp", "ScatterAdd", "ScatterSub", "ScatterUpdate",
                              "ResourceScatterAdd", "ResourceScatterUpdate"})


def _reads_update(nodes: dict[str, Any], name: str) -> bool:
    """Is ``name``'s value computed from a variable's update: an ``Assign``/``AssignAdd`` result (a ref
    variable's new value), or a ``ReadVariableOp`` that waits on an ``Assign*VariableOp`` (a resource
    variable's ``assign_add(...)`` value)? A streaming metric's ``update_op`` and a step counter's
    increment are; a prediction never is (running it would change the model's state)."""
    for cur in _value_ancestors(nodes, name):
        node = nodes.get(cur)
        if node is None:
            continue
        if node.op in STATE_UPDATE_OPS:
            return True
        if node.op == "ReadVariableOp" and any(
                r.startswith("^") and nodes.get(r[1:]) is not None and nodes[r[1:]].op in STATE_UPDATE_OPS
                for r in node.input):
            return True
    return False


def _descendants(graph_def: Any, roots: set[str], users: dict[str, list[tuple[Any, int]]]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [u.name for u, i in users.get(name, []) if not u.input[i].startswith("^")]
    return seen


def _is_label(graph_def: Any, name: str, losses: set[str], loss_side: set[str],
              users: dict[str, list[tuple[Any, int]]], training: set[str]) -> bool:
    """Does placeholder ``name`` reach the loss, and every sink it reaches only through the loss?
    (A sink that only reads its shape, like a shape assertion's ``Shape``, does not count.)"""
    reach = _descendants(graph_def, {name}, users) - training
    if not reach & losses:
        return False
    nodes = node_map(graph_def)
    for n in reach - loss_side:
        forward = [u for u, i in users.get(n, []) if u.name not in training and not u.input[i].startswith("^")]
        if not forward and nodes[n].op not in _SHAPE_OPS and n != name:
            return False
    return True


def _copy_for_gradient(node: Any, users: dict[str, list[tuple[Any, int]]], training: set[str]) -> bool:
    """An Identity of a tensor that otherwise only training nodes read."""
    ref = node.input[0]
    others = [u for u, i in users.get(tensor_node(ref), [])
              if u.input[i] == ref and u.name != node.name]
    return bool(others) and all(u.name in training for u in others)


def _sources(graph_def: Any, name: str) -> set[str]:
    """Nodes without data inputs that ``name`` is computed from."""
    nodes = node_map(graph_def)
    return {n for n in ancestors(graph_def, [name], follow_control=False)
            if n in nodes and not any(not r.startswith("^") for r in nodes[n].input)}
