"""Calls into bodies that lost their writes: drop the args no callee reads any more.

Once :mod:`tfopt.graphdef.state_updates` removed a write from a body, the arg that held the variable may be
read by nothing in it. For the edited bodies and the bodies that call them:

    If/Case(pred, a_0..a_n) / PartitionedCall(a_0..a_n), arg a_k read by no callee (no consumer, not returned)
      -> the call without a_k (``Tin`` and ``_read_only_resource_inputs`` re-indexed), each callee without
         that arg; only when the node is its callees' only caller (a shared body keeps its signature)

which is the call TensorFlow would have traced without the write (a branch captures only what it reads).
Why: tf2onnx's Grappler run specializes an ``If`` with an unread arg in a loop body into a loop whose
counter has no shape, which ONNX Runtime refuses to run. A ``While`` keeps its loop variables: an unread
one is an input passed through unchanged, which every converter reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tfopt.graphdef.calls import call_sites as calls
from tfopt.graphdef.calls import library_of
from tfopt.graphdef.scopes import Scope

_ARG_CALLS = frozenset({"If", "StatelessIf", "Case", "StatelessCase", "PartitionedCall", "StatefulPartitionedCall"})


def tidy_calls(graph_def: Any, edited: set[str]) -> None:
    """Drop unread args (module docstring), in place, around the functions named in ``edited``."""
    library = library_of(graph_def)
    touched = set(edited)
    while True:  # the edited bodies and every body that calls one
        more = {name for name, f in library.items() if name not in touched
                and any(c in touched for n in f.node_def for c, _ in calls(n, library))}
        if not more:
            break
        touched |= more
    if touched:
        _drop_unread_args(graph_def, library, touched)


def _all_nodes(graph_def: Any, library: dict[str, Any]) -> list[Any]:
    return [*graph_def.node, *(n for f in library.values() for n in f.node_def)]


def _drop_unread_args(graph_def: Any, library: dict[str, Any], touched: set[str]) -> None:
    nodes = _all_nodes(graph_def, library)
    callers = Counter(c for node in nodes for c, _ in calls(node, library))
    for node in nodes:
        called = list(calls(node, library))
        names = [c for c, _ in called]
        if node.op not in _ARG_CALLS or not set(names) & touched or any(callers[c] != 1 for c in names):
            continue
        offset = called[0][1]
        scopes = [Scope(graph_def, library[c]) for c in names]
        read = [set(s.consumers()) | s.returned() for s in scopes]
        unread = {i for i in range(len(scopes[0].args)) if all(s.args[i] not in r for s, r in zip(scopes, read))}
        if not unread:
            continue
        for scope in scopes:
            _remove_args(scope.function, unread)
        data = [r for r in node.input if not r.startswith("^")]
        kept = [r for i, r in enumerate(data) if i - offset not in unread]
        controls = [r for r in node.input if r.startswith("^")]
        del node.input[:]
        node.input.extend(kept + controls)
        types = [t for i, t in enumerate(node.attr["Tin"].list.type) if i not in unread]
        node.attr["Tin"].list.type[:] = types
        if "_read_only_resource_inputs" in node.attr:  # indices into the inputs, after the removal
            shifted = [i - sum(u + offset < i for u in unread)
                       for i in node.attr["_read_only_resource_inputs"].list.i if i - offset not in unread]
            node.attr["_read_only_resource_inputs"].list.i[:] = shifted


def _remove_args(function: Any, indices: set[int]) -> None:
    """Remove the args at ``indices`` from ``function``'s signature, re-indexing what is keyed by position."""
    signature = function.signature
    kept = [a for i, a in enumerate(signature.input_arg) if i not in indices]
    del signature.input_arg[:]
    signature.input_arg.extend(kept)
    new_index = {old: old - sum(i < old for i in indices) for old in range(len(kept) + len(indices))
                 if old not in indices}
    attrs = {new_index[k]: v.SerializeToString() for k, v in function.arg_attr.items() if k in new_index}
    function.arg_attr.clear()
    for k, blob in attrs.items():
        function.arg_attr[k].ParseFromString(blob)
    ids = {new_index[k]: v for k, v in function.resource_arg_unique_id.items() if k in new_index}
    function.resource_arg_unique_id.clear()
    function.resource_arg_unique_id.update(ids)
