"""Remove dropout whose rate is bound to 0 (keep probability 1): it is then exactly the identity.

Patterns (``U = RandomUniform(shape)`` in [0, 1), possibly as ``U * 1 + 0``):

* TF >= 1.13 / TF2 ``tf.nn.dropout(x, rate=r)`` and ``tf.compat.v1.nn.dropout(x, keep_prob=k)``
  (``r = 1 - k``): ``SelectV2(U >= r, x / (1 - r), 0)`` or ``(x * 1/(1-r)) * Cast(U >= r)``.
  With r = 0, ``U >= 0`` holds for every U and ``x / 1 = x``.
* TF <= 1.12 ``tf.nn.dropout(x, keep_prob=k)``: ``(x / k) * Floor(k + U)``. With k = 1,
  ``floor(1 + U) = 1`` for every U in [0, 1) and ``x / 1 = x``.

Rewrite: the node that applies the mask becomes ``Identity(x)`` under its own name; the random
ops then fall to dead pruning. The mask is then all ones, so whatever it is applied to passes unchanged
even when that is not a rescaled ``x`` (a custom layer's mask on its weights, ``W * Cast(U >= 0)``,
DropConnect as odachi's graph convolutions draw it): the applier becomes ``Identity`` of that operand. A dropout whose rate is not a constant 0 (an input, a
``PlaceholderWithDefault`` defaulting to a training rate) is kept and reported as a skip.

:func:`dropout_knobs` finds the float scalar placeholders named like a keep probability or rate
that feed such a mask, with the value that turns dropout off; freezing binds them as it binds
training flags.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.graph import (
    FLOAT_TYPES,
    PLACEHOLDER_OPS,
    Model,
    consumers,
    control_inputs,
    is_control,
    node_map,
    rewrite_node,
    tensor_node,
)
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

KNOB_NAMES = re.compile(r"(^|/)\w*(keep_?prob\w*|dropout\w*|drop_?rate|rate)(_\d+)?$", re.IGNORECASE)
_PASS_THROUGH = ("Identity", "Snapshot")


def _passes_through(node: Any) -> bool:
    """Identity-like: forwards input 0 unchanged. A loop-invariant ``Enter`` (``is_constant``) is
    one too: every iteration of a TF1 ``while_loop`` body reads the value it captured outside."""
    if node.op in _PASS_THROUGH:
        return True
    return node.op in ("Enter", "RefEnter") and node.attr["is_constant"].b


def _source(nodes: dict[str, Any], ref: str) -> str:
    """The node behind Identity chains (and loop-invariant ``Enter``)."""
    name = tensor_node(ref)
    while name in nodes and _passes_through(nodes[name]) and nodes[name].input:
        name = tensor_node(nodes[name].input[0])
    return name


def const_scalar(nodes: dict[str, Any], ref: str) -> float | None:
    """The value of a scalar computed from constants by Identity/Sub/Add/Mul/RealDiv, else None."""
    from tfopt._tf import const_value

    node = nodes.get(_source(nodes, ref))
    if node is None:
        return None
    if node.op == "Const":
        value = np.asarray(const_value(node))
        return float(value.flat[0]) if value.size >= 1 and np.all(value == value.flat[0]) else None
    ops = {"Sub": np.subtract, "AddV2": np.add, "Add": np.add, "Mul": np.multiply, "RealDiv": np.divide}
    if node.op in ops:
        a, b = (const_scalar(nodes, r) for r in node.input[:2])
        return None if a is None or b is None else float(ops[node.op](np.float32(a), np.float32(b)))
    return None


def _data_users(users: dict[str, list[tuple[Any, int]]], name: str) -> list[tuple[Any, int]]:
    out = []
    for user, idx in users.get(name, []):
        if is_control(user.input[idx]):
            continue
        if _passes_through(user):
            out += _data_users(users, user.name)
        else:
            out.append((user, idx))
    return out


def _uniforms(nodes: dict[str, Any], users: dict[str, list[tuple[Any, int]]]) -> list[str]:
    """Nodes carrying U in [0, 1): each RandomUniform and its ``* 1`` / ``+ 0`` rescaling."""
    out = []
    for node in nodes.values():
        if node.op != "RandomUniform":
            continue
        cur = node.name
        while True:
            out.append(cur)
            nxt = [u for u, i in _data_users(users, cur)
                   if (u.op == "Mul" and const_scalar(nodes, u.input[1 - i]) == 1.0)
                   or (u.op in ("Add", "AddV2") and const_scalar(nodes, u.input[1 - i]) == 0.0)]
            if len(nxt) != 1:
                break
            cur = nxt[0].name
    return out


def find_dropouts(graph_def: Any) -> list[dict[str, Any]]:
    """Each dropout mask application: ``{"node", "x", "knob_ref", "kind", "value", "reason"}``.

    ``kind`` is ``rate`` (identity when the knob is 0) or ``keep`` (identity when it is 1);
    ``reason`` is None when the dropout is exactly the identity.
    """
    nodes = node_map(graph_def)
    users = consumers(graph_def)
    found = []
    for u_name in _uniforms(nodes, users):
        for mask, idx in _data_users(users, u_name):
            if mask.op == "GreaterEqual" and idx == 0:
                kind, knob = "rate", mask.input[1]
                appliers = [(m, i) for m, i in _data_users(users, mask.name)]
                casts = [m for m, _ in appliers if m.op == "Cast"]
                for cast in casts:
                    appliers += _data_users(users, cast.name)
            elif mask.op in ("Add", "AddV2"):
                kind, knob = "keep", mask.input[1 - idx]
                appliers = [a for f, _ in _data_users(users, mask.name) if f.op == "Floor"
                            for a in _data_users(users, f.name)]
            else:
                continue
            for applier, i in appliers:
                if applier.op in ("SelectV2", "Select") and i == 0:
                    scaled = applier.input[1]
                elif applier.op == "Mul":
                    scaled = applier.input[1 - i]
                else:
                    continue
                found.append(_describe(nodes, applier.name, scaled, knob, kind))
    return found


def _describe(nodes: dict[str, Any], name: str, scaled: str, knob: str, kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"node": name, "knob_ref": knob, "kind": kind, "x": None, "reason": None, "scaled": scaled}
    value = const_scalar(nodes, knob)
    entry["value"] = value
    identity = 0.0 if kind == "rate" else 1.0
    knob_name = _source(nodes, knob)
    if value is None:
        behind = _knob_placeholder(nodes, knob, kind)
        hint = (f"turn it off with --set {behind[0]}={behind[1]}" if behind else
                f"it is computed by {nodes[knob_name].op if knob_name in nodes else 'a node'} '{knob_name}', "
                "not from a placeholder tfopt can bind")
        entry["reason"] = (f"{'rate' if kind == 'rate' else 'keep probability'} '{knob_name}' is not a constant; "
                           f"dropout kept ({hint})")
        return entry
    if value != identity:
        entry["reason"] = f"{'rate' if kind == 'rate' else 'keep probability'} is {value:g}, not {identity:g}: dropout kept"
        return entry
    node = nodes[_source(nodes, scaled)]
    if node.op in ("RealDiv", "Mul") and const_scalar(nodes, node.input[1]) == 1.0:
        entry["x"] = node.input[0]
    elif node.op == "Mul" and const_scalar(nodes, node.input[0]) == 1.0:
        entry["x"] = node.input[1]
    else:  # the mask is all ones: what it is applied to passes unchanged (a mask on weights, DropConnect)
        entry["x"] = scaled
    return entry


def _placeholder_behind(nodes: dict[str, Any], ref: str) -> str | None:
    """The placeholder a knob is computed from (``1 - keep_prob``), if exactly one."""
    stack, seen, found = [tensor_node(ref)], set(), []
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        if nodes[name].op in PLACEHOLDER_OPS:
            found.append(name)
        stack += [tensor_node(r) for r in nodes[name].input if not is_control(r)]
    return found[0] if len(found) == 1 else None


def dropout_knobs(graph_def: Any, *, outputs: Sequence[str] | None = None, any_placeholder: bool = False) -> dict[str, float]:
    """Placeholders to bind so every dropout becomes the identity: name -> value.

    A knob is a float placeholder of scalar or unknown rank from which a dropout mask's threshold
    is computed (directly, through ``1 - v`` steps, or through a loop's ``Enter``). The value is 1
    when the mask is ``U >= 1 - knob`` or ``floor(knob + U)`` (a keep probability), 0 when it is
    ``U >= knob`` (a rate). A ``Placeholder`` qualifies when it is named like one (``keep_prob``,
    ``dropout_rate``, ``rate``) or when it reaches ``outputs`` only through dropout masks (a
    ``Placeholder_3`` that only sets dropout); a ``PlaceholderWithDefault`` qualifies unless its
    default already turns dropout off. ``any_placeholder=True`` accepts any name (for error hints).
    """
    nodes = node_map(graph_def)
    found = find_dropouts(graph_def)
    appliers = {d["node"] for d in found}
    users = consumers(graph_def)
    out: dict[str, float] = {}
    for d in found:
        name = _placeholder_behind(nodes, d["knob_ref"])
        node = nodes.get(name or "")
        if node is None or node.op not in PLACEHOLDER_OPS:
            continue
        if node.attr["dtype"].type not in FLOAT_TYPES or len(node.attr["shape"].shape.dim) > 0:
            continue
        behind = _knob_placeholder(nodes, d["knob_ref"], d["kind"])
        if behind is None:
            continue
        if node.op == "PlaceholderWithDefault":
            if const_scalar(nodes, node.input[0]) == behind[1]:
                continue  # its default already turns dropout off
        elif not (any_placeholder or KNOB_NAMES.search(node.name)
                  or (outputs is not None and _only_through(users, node.name, appliers, outputs))):
            continue
        out[node.name] = behind[1]
    return out


def _only_through(users: dict[str, list[tuple[Any, int]]], name: str, appliers: set[str],
                  outputs: Sequence[str]) -> bool:
    """Does ``name`` reach ``outputs`` only through the mask appliers (forward walk stopped there)?"""
    targets = {tensor_node(o) for o in outputs}
    stack, seen = [name], set()
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur in targets:
            return False
        stack += [u.name for u, i in users.get(cur, []) if not is_control(u.input[i]) and u.name not in appliers]
    return True


def _knob_placeholder(nodes: dict[str, Any], ref: str, kind: str) -> tuple[str, float] | None:
    """The placeholder behind a mask threshold and the value that turns the dropout off."""
    name = _placeholder_behind(nodes, ref)
    flips = None if name is None else _sign_flips(nodes, ref, name)
    if name is None or flips is None:
        return None
    is_keep = (kind == "keep") != (flips % 2 == 1)
    return name, 1.0 if is_keep else 0.0


def _sign_flips(nodes: dict[str, Any], ref: str, target: str) -> int | None:
    """How many ``1 - v`` steps lead from ``target`` to ``ref`` (None: some other computation)."""
    name = _source(nodes, ref)
    flips = 0
    while name != target:
        node = nodes[name]
        if node.op != "Sub" or const_scalar(nodes, node.input[0]) != 1.0:
            return None
        name = _source(nodes, node.input[1])
        flips += 1
    return flips


def training_mode_off(graph_def: Any) -> list[str]:
    """Set each dropout's *constant* keep probability (rate) to the value that turns it off, in place
    (and its scale ``1 / keep`` to 1 when that is a constant of its own), and return the constants changed: for a graph built in training mode (it holds its own optimizer),
    whose dropout has no switch to bind (an Estimator's ``mode == TRAIN`` graph: ``floor(0.8 + U)``
    inside a ``dynamic_rnn`` loop). Inverted dropout's expectation is the identity
    (``E[x / k * floor(k + U)] = x``), which is what inference computes; :class:`RemoveDropout` then
    removes it. A constant that anything besides its dropouts reads is left alone.
    """
    from tfopt._tf import const_value, make_const

    nodes = node_map(graph_def)
    users = consumers(graph_def)
    found = [d for d in find_dropouts(graph_def) if d["value"] is not None and d["reason"] is not None
             and d["value"] != (0.0 if d["kind"] == "rate" else 1.0)]
    changed = []
    for d in found:
        const = _constant_behind(nodes, d["knob_ref"])
        if const is None or const in changed:
            continue
        mine = _dropout_side(nodes, d["node"])
        if not all(u.name in mine for u, _ in _data_users(users, const)):
            continue  # the constant also feeds something else: not only a dropout's
        keep = d["value"] if d["kind"] == "keep" else 1.0 - d["value"]
        # x * (1 / keep) with its own constant (TF 2's dropout computes the scale in Python): 1 as well
        scaling = nodes.get(_source(nodes, d["scaled"]))
        factor = _constant_behind(nodes, scaling.input[1]) if scaling is not None and scaling.op == "Mul" else None
        for name, value in ((const, 1.0 if d["kind"] == "keep" else 0.0), (factor, 1.0)):
            if name is None or (name == factor and (name == const or not np.isclose(
                    const_scalar(nodes, name) or 0.0, 1.0 / keep, rtol=1e-5) or not all(
                    u.name in mine for u, _ in _data_users(users, name)))):
                continue
            old = np.asarray(const_value(nodes[name]))
            nodes[name].attr["value"].CopyFrom(make_const(name, np.full(old.shape, value, dtype=old.dtype)).attr["value"])
            changed.append(name)
    return changed


def _constant_behind(nodes: dict[str, Any], ref: str) -> str | None:
    """The one ``Const`` a knob is read from (through Identity and loop-invariant ``Enter``)."""
    name = _source(nodes, ref)
    return name if name in nodes and nodes[name].op == "Const" else None


def _dropout_side(nodes: dict[str, Any], applier: str) -> set[str]:
    """The dropout's own nodes: its applier and the nodes up to four data steps behind it, which hold
    its mask (``floor(k + U)``, ``U >= rate``) and its scaling (``x / k``, ``x * 1 / (1 - rate)``)."""
    out, frontier = {applier}, [applier]
    for _ in range(4):
        frontier = [tensor_node(r) for n in frontier if n in nodes for r in nodes[n].input if not is_control(r)]
        out.update(frontier)
    return out


class RemoveDropout(Pass):
    name = "remove_dropout"

    def run(self, model: Model) -> PassResult:
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        skips, changed = [], False
        for d in find_dropouts(graph_def):
            if d["reason"] is not None:
                skips.append(Skip(d["node"], d["reason"]))
                continue
            node = nodes[d["node"]]
            rewrite_node(node, "Identity", inputs=[d["x"], *control_inputs(node)], types={"T": node.attr["T"].type})
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)
