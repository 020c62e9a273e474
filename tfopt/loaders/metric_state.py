"""Streaming metrics found by their state: an accumulator variable, what adds to it and what reads it.

``tf.compat.v1.metrics.mean_iou`` keeps a ``total_confusion_matrix`` ([C, C], float64) that its update
adds each batch's confusion matrix to (``AssignAdd(total_cm, confusion_matrix(labels, predictions))``:
a ``SparseTensorDenseAdd`` in TF 1.x, a ``ScatterNd`` in TF 2.x), and computes the IoU from it;
``accuracy``, ``mean``... keep ``total``/``count`` the same way, and so do hand-written streaming
metrics, under a scope or not. Found by structure, names play no part:

- an *accumulator* is a variable that an ``AssignAdd``/``AssignAddVariableOp`` adds a value to that is
  computed from the model's inputs and not from the variable itself (``v += f(labels, predictions)``;
  a step counter adds a constant, a moving average ``v += (batch_mean - v) * m`` reads ``v``: neither is
  one);
- the metric's *value side* is what is computed from the accumulator (the IoU, ``total / count``, the
  ``update_op`` that reads the new value);
- its *update side* is the increment and, back from it, every node whose forward readers are all in the
  metric, down to the float tensors computed from the weights through float ops (the prediction it
  reads, which then feeds only a metric) and not past the inputs; labels' reformatting is in it, and
  what it waits on (``confusion_matrix``'s range assertions).
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import VARIABLE_OPS, ancestors, consumers, node_map, tensor_node

ACCUMULATE_OPS = frozenset({"AssignAdd", "AssignAddVariableOp"})


def accumulator_metrics(graph_def: Any, training: set[str]) -> dict[str, str]:
    """Metric node -> what it measures ("streaming metric accumulating into V"), see the module docstring.
    ``training``: the training-only nodes (the updates themselves), never members."""
    from tfopt.loaders.head_kinds import is_float, is_source

    nodes, users = node_map(graph_def), consumers(graph_def)
    # float tensors computed from the weights through float ops only (logits, prob; not a confusion
    # matrix counted from argmax(prob))
    weighted = _forward_where({n.name for n in graph_def.node if n.op in VARIABLE_OPS and is_float(n)}, users,
                              lambda user: is_float(user) and user.name not in training)
    out: dict[str, str] = {}
    for node in graph_def.node:
        if node.op not in ACCUMULATE_OPS or len(node.input) < 2:
            continue
        variable, increment = tensor_node(node.input[0]), tensor_node(node.input[1])
        above = ancestors(graph_def, [increment], follow_control=False)
        if variable not in nodes or nodes[variable].op not in VARIABLE_OPS or variable in above \
                or not any(is_source(nodes[a]) for a in above if a in nodes):
            continue
        why = f"streaming metric accumulating into {variable}"
        members = _forward(variable, users, training) - {variable}
        region, stack = [], [increment]  # the update side's possible members, nearest first
        while stack:
            name = stack.pop()
            cur = nodes.get(name)
            if cur is None or name in region or is_source(cur) or cur.op in VARIABLE_OPS | {"Const"}:
                continue
            if name in weighted:
                continue  # the model's float tensor: what the metric reads, not the metric
            region.append(name)
            stack += [tensor_node(r) for r in cur.input]  # control inputs too: the confusion matrix's asserts
        grown = True
        while grown:  # a member: every forward reader of it is one (something else reads the prediction's argmax)
            grown = False
            for name in region:
                readers = {u.name for u, _ in users.get(name, [])} - training
                if name not in members and readers <= members:
                    members.add(name)
                    grown = True
        out.update(dict.fromkeys(members, why))
    return out


def _forward(name: str, users: dict[str, list[tuple[Any, int]]], training: set[str]) -> set[str]:
    """``name`` and what its value reaches through data edges outside ``training``."""
    return _forward_where({name}, users, lambda user: user.name not in training)


def _forward_where(seeds: set[str], users: dict[str, list[tuple[Any, int]]], keep: Any) -> set[str]:
    """``seeds`` and what their values reach through data edges into nodes that ``keep(node)``."""
    seen, stack = set(seeds), list(seeds)
    while stack:
        for user, index in users.get(stack.pop(), []):
            if user.name not in seen and keep(user) and not user.input[index].startswith("^"):
                seen.add(user.name)
                stack.append(user.name)
    return seen
