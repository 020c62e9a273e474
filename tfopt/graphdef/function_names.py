"""Library function names that follow what the functions compute, so two graphs can meet in one process.

TensorFlow keeps each function a ``wrap_function`` imports in the process-wide eager context, keyed by
name. It refuses a second, different definition under a name it already holds: "Attempting to add a
duplicate function with name: while_body_5 where the previous and current definitions differ". A
GraphDef's function names are its writer's (``while_body_5``, ``cond_true_42``, a uid from a per-process
counter). So two files written by the same code in two processes share them, with other constants in the
bodies: two checkpoints of one architecture, or a ``.pb`` and the checkpoint it was frozen from. tfopt's
own edited copies of a model (a pinned batch, lowered bodies) share them with the model too. The second
such graph converted in one Python process failed.

:func:`content_named` renames function ``f`` to ``<f>_<h>``. ``h`` is the first 12 hex digits of the
SHA-256 of ``f``'s definition, serialized deterministically with its own name cleared, after the names
of the functions it calls have been replaced. Callees are renamed first, so a change in a nested body
renames every caller above it. Equal definitions get equal names, and TensorFlow accepts a definition
it already holds. Different definitions get different names (up to a 2⁻⁴⁸ collision). The names, and
so the artifacts, do not depend on the process or on which graphs it converted before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tfopt.graphdef.calls import callees, library_of


def rename_functions(graph_def: Any, names: Mapping[str, str]) -> None:
    """Rename library functions in place (``names``: old -> new) and every use of them: calls by op
    name, ``func`` attributes and lists of them, in the main graph and in every body, and the
    library's gradient entries."""
    if not names:
        return
    for function in graph_def.library.function:
        function.signature.name = names.get(function.signature.name, function.signature.name)
    for grad in graph_def.library.gradient:
        grad.function_name = names.get(grad.function_name, grad.function_name)
        grad.gradient_func = names.get(grad.gradient_func, grad.gradient_func)
    for nodes in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        for node in nodes:
            _rename_uses(node, names)


def content_named(graph_def: Any) -> Any:
    """A copy of ``graph_def`` whose library functions are named after their content (module
    docstring); ``graph_def`` itself when it has no library."""
    library = library_of(graph_def)
    if not library:
        return graph_def
    names: dict[str, str] = {}
    for name in _callees_first(library):
        body = type(library[name])()
        body.CopyFrom(library[name])
        body.signature.name = ""
        for node in body.node_def:
            _rename_uses(node, names)
        digest = hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()[:12]
        names[name] = f"{name}_{digest}"
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    rename_functions(out, names)
    return out


def _rename_uses(node: Any, names: Mapping[str, str]) -> None:
    node.op = names.get(node.op, node.op)
    for value in node.attr.values():
        if value.HasField("func"):
            value.func.name = names.get(value.func.name, value.func.name)
        for func in value.list.func:
            func.name = names.get(func.name, func.name)


def _callees_first(library: Mapping[str, Any]) -> list[str]:
    """Every function of ``library``, each after the functions it calls (a post-order walk; TensorFlow
    libraries have no recursion)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in sorted(library):
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            called = {c for n in library[name].node_def for c in callees(n, library)}
            stack.extend((c, False) for c in sorted(called - seen))
    return order
