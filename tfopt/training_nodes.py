"""What in a graph exists only for training, which placeholders are training flags, and which
nodes are the forward graph's outputs.

A node is *training-only* when its op mutates state, saves/restores, summarises or applies an
optimizer, or when it lives under a scope TF and Keras reserve for that (``gradients/``,
``save/``, an optimizer's scope, ``loss``...). Output candidates are the sinks of what remains.
"""

from __future__ import annotations

import re
from typing import Any

from tfopt.graph import CONTROL_FLOW_V1_OPS, PLACEHOLDER_OPS, VARIABLE_OPS, ancestors, consumers, node_map, tensor_node

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
    if node.op not in PLACEHOLDER_OPS or node.attr["dtype"].type != 10:  # DT_BOOL
        return False
    if "shape" in node.attr and len(node.attr["shape"].shape.dim) > 0:
        return False
    if TRAINING_FLAG_NAMES.search(node.name):
        return True
    return graph_def is not None and _selects_branch(graph_def, node.name)


def _selects_branch(graph_def: Any, name: str) -> bool:
    """Does ``name`` reach a Switch predicate or an If condition through Identity-like ops?"""
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
            if node.op in ("Identity", "LogicalNot", "Cast") and not node.input[idx].startswith("^"):
                frontier.append(node.name)
    return False


def training_flags(graph_def: Any) -> list[str]:
    return [n.name for n in graph_def.node if is_training_flag(n, graph_def)]


def output_candidates(graph_def: Any) -> list[str]:
    """Sinks of the forward graph: nodes with no consumer at all, or consumed only by training
    nodes of which at least one is a loss or metric (``logits`` feeding only the loss).

    Excluded: training-only nodes, constants/variables/placeholders/control flow, values that only
    feed state updates (moving averages), nodes that depend on a label-like placeholder, and nodes
    whose only placeholders are training flags.
    """
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    training = {n.name for n in graph_def.node if is_training_node(n)}
    labels = {n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS and LABEL_NAMES.search(n.name)}
    placeholders = {n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS}
    flags = {name for name in placeholders if is_training_flag(nodes[name], graph_def)}
    out = []
    for node in graph_def.node:
        if node.name in training or node.op in _NOT_OUTPUTS or node.op.startswith("Placeholder"):
            continue
        if node.op == "Identity" and any(nodes[tensor_node(r)].op in CONTROL_FLOW_V1_OPS
                                         for r in node.input if tensor_node(r) in nodes):
            continue  # a cond pivot (switch_t/switch_f): control-flow plumbing
        all_users = [u for u, _ in users.get(node.name, [])]
        if any(u.name not in training for u in all_users):
            continue  # something in the forward graph consumes it (data or control)
        if all_users and not any(u.op in LOSS_OPS or LOSS_SCOPES.search(u.name) for u in all_users):
            continue  # feeds only state updates / optimizer / saver: not a prediction
        feeds = placeholders & ancestors(graph_def, [node.name], follow_control=False)
        if feeds & labels:
            continue
        if feeds and feeds <= flags:
            # computed from the training flag alone: a tf.cond's pred_id whose branches are constants
            # (tf.layers BatchNorm's momentum cond), not a prediction
            continue
        out.append(node.name)
    return out
