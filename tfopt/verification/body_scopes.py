"""Walks that follow an input through the main graph and the library functions it is passed to.

The scopes are :class:`tfopt.graphdef.scopes.Scope`: the main graph, or one call of a library function
(``While``/``If``/``Case`` bodies, ``PartitionedCall``, a direct call: :mod:`tfopt.graphdef.calls`) that
knows what each of its arguments was fed. The walks of :mod:`tfopt.verification.input_domains` (the
values an input may hold) and :mod:`tfopt.verification.input_structure` (the structure its consumers
need) go through them (:func:`follow`), and :func:`constant` reads a value known before the graph runs
in any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tfopt.graphdef.scopes import Scope

MAX_DEPTH = 24  # ops followed from an input (a body's own Identity/_SwitchN count)


C = TypeVar("C")  # what a walk carries along with the value (a state, a chain of pull-backs)
# visit(scope, consumer, its input index, carried) -> ("stop" | "end" | "on", carried on to the consumer's value)
Visit = Callable[[Scope, Any, int, C], tuple[str, "C | None"]]


def follow(main: Scope, start: str, carried: C, visit: Visit[C]) -> None:
    """Breadth first from ``start`` (at most :data:`MAX_DEPTH` ops): for each consumer ``user`` of the
    value, at its data input ``index``, ``visit(scope, user, index, carried)`` says ``"stop"`` (the walk
    ends), ``"end"`` (this edge goes no further) or ``"on"``: the value goes into the library functions
    ``user`` passes it to, as their argument, and where the second item is not None on to ``user``'s own
    value carrying it. Each node (or argument) of each scope is reached once."""
    frontier: list[tuple[Scope, str, C]] = [(main, start, carried)]
    seen = {(main.where, start)}
    for _ in range(MAX_DEPTH):
        nxt = []
        for scope, name, here in frontier:
            for user, index in scope.users.get(name, []):
                if index >= len(user.input) or user.input[index].startswith("^"):
                    continue
                verdict, after = visit(scope, user, index, here)
                if verdict == "stop":
                    return
                if verdict == "end":
                    continue
                moves = [(inner, arg, here) for inner, arg in scope.enter(user, index)  # the body's argument
                         if inner.where.count(" in ") <= MAX_DEPTH]
                moves += [(scope, user.name, after)] if after is not None else []
                for move in moves:
                    if (move[0].where, move[1]) not in seen:
                        seen.add((move[0].where, move[1]))
                        nxt.append(move)
        frontier = nxt


# Ops folded when every input is known (a loop counter's first value through ``Cast`` and ``Pow``).
_FOLD: dict[str, Callable[..., np.ndarray]] = {
    "Neg": np.negative, "Square": np.square, "Pow": np.power, "Mul": np.multiply,
    "AddV2": np.add, "Add": np.add, "Sub": np.subtract, "RealDiv": np.divide, "Maximum": np.maximum,
    "Minimum": np.minimum}


def constant(scope: Scope, ref: str, depth: int = 0) -> np.ndarray | None:
    """The value of ``ref`` when it is known before the graph runs: a ``Const``, an argument fed one
    (a ``While`` argument: its initial value, the first iteration's), or a small op folded over them."""
    from tfopt._tf import const_value
    from tfopt.graph import dtype_name

    scope, node = scope.resolve(ref)
    if node is None or depth > MAX_DEPTH:
        return None
    if node.op == "Const":
        if len(node.attr["value"].tensor.tensor_content) > 1 << 16:
            return None
        value = np.asarray(const_value(node))
        return value.astype(np.float64) if value.dtype.kind in "fiub" else None
    data = [r for r in node.input if not r.startswith("^")]
    if node.op in ("Identity", "Switch", "_SwitchN", "Enter") and data:  # the value of input 0, passed on
        return constant(scope, data[0], depth + 1)
    if node.op == "Cast" and len(data) == 1:  # to an integer: toward zero, as TensorFlow casts
        source = constant(scope, data[0], depth + 1)
        to = dtype_name(node.attr["DstT"].type)
        return None if source is None or to == "bool" else np.trunc(source) if to.startswith(("int", "uint")) else source
    fold = _FOLD.get(node.op)
    if fold is None or len(data) != (1 if node.op in ("Neg", "Square") else 2):
        return None
    values = [constant(scope, r, depth + 1) for r in data]
    if any(v is None or v.size > 1 << 16 for v in values):
        return None
    with np.errstate(all="ignore"):
        return np.asarray(fold(*values), dtype=np.float64)
