"""Ops this TensorFlow does not have: a custom op registered by a library the model's writer imported
(``tensorflow_text``, ``tensorflow_decision_forests``, ``tensorflow_addons``, a ``tf.load_op_library``).

Whichever way a model is loaded, such an op stops the load with one :class:`~tfopt.errors.UnregisteredOpError`
naming the file, the node that uses the op, the op and the fix (``--custom-objects``): :func:`check_ops_registered`
for every loaded graph (``loaders.load``), :func:`unregistered_op_error` where TensorFlow itself refused the op
first (a TF2 SavedModel's MetaGraph: :mod:`tfopt.loaders.tf2_metagraph`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tfopt.errors import UnregisteredOpError


def _first_node(graph_defs: Iterable[Any], uses: Callable[[str, set[str]], bool]) -> tuple[Any, str] | None:
    """The first node of ``graph_defs`` (main graphs, then their functions) whose op ``uses(op, functions)``
    says, with where it is (``""`` or `` in function 'f'``)."""
    for graph_def in graph_defs:
        functions = {f.signature.name for f in graph_def.library.function}
        for node in graph_def.node:
            if uses(node.op, functions):
                return node, ""
        for f in graph_def.library.function:
            for node in f.node_def:
                if uses(node.op, functions):
                    return node, f" in function '{f.signature.name}'"
    return None


def unregistered_op_error(path: str, op: str, graph_defs: Iterable[Any] = ()) -> UnregisteredOpError:
    """The error for ``op``, which this TensorFlow does not have, in the model at ``path``: the node that uses it
    is the first of ``graph_defs`` (the model's graphs) that does (unnamed when none of them is given)."""
    found = _first_node(graph_defs, lambda node_op, _: node_op == op)
    node, where = found if found is not None else (None, "")
    user = f"node '{node.name}'{where} uses" if node is not None else "the graph uses"
    return UnregisteredOpError(
        f"{path}: {user} op '{op}', which this TensorFlow does not have (a custom op registered by a library the "
        "model's writer imported: tensorflow_text, tensorflow_decision_forests, tensorflow_addons, ...). Install that "
        "library and name a module that imports it (or calls tf.load_op_library) with --custom-objects MODULE: tfopt "
        "imports it before the model loads", op=op, node=node.name if node is not None else "")


def check_ops_registered(graph_def: Any, path: str) -> None:
    """Every op of the graph and of its functions is one this TensorFlow knows (a custom op's library loaded).

    Raises:
        UnregisteredOpError: naming the file, the first unknown op, its node and ``--custom-objects``.
    """
    from tensorflow.python.framework import op_def_registry

    found = _first_node([graph_def], lambda op, functions: op not in functions and op_def_registry.get(op) is None)
    if found is not None:
        raise unregistered_op_error(path, found[0].op, [graph_def])
