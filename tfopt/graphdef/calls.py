"""Calls into a GraphDef's function library: which functions a node calls, and which argument each
of its inputs feeds.

A node calls a library function when its op is the function's name (a direct call) or one of its
attrs names it (``func`` or ``list.func``): ``While``'s ``cond``/``body``, ``If``'s
``then_branch``/``else_branch``, ``Case``'s ``branches``, ``PartitionedCall``'s ``f``. For the
control-flow and call ops, data input ``i`` is argument ``i`` (``signature.input_arg[i]``) of every
function called, except ``If``/``Case``, whose input 0 is the predicate / branch index and whose input
``i`` is the branches' argument ``i - 1``. Inside a FunctionDef a node's input names a node output
``node:output_arg:index`` or an argument ``arg``; both start with the name (:func:`ref_node`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_BY_POSITION = {"While", "StatelessWhile", "PartitionedCall", "StatefulPartitionedCall"}
_AFTER_SELECTOR = {"If", "StatelessIf", "Case", "StatelessCase"}  # input 0 picks the branch


def library_of(graph_def: Any) -> dict[str, Any]:
    """Function name -> FunctionDef."""
    return {f.signature.name: f for f in graph_def.library.function}


def callees(node: Any, library: Mapping[str, Any]) -> list[str]:
    """Names of the library functions ``node`` calls (its op, or a function its attrs name)."""
    names = [node.op] if node.op in library else []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return [name for name in names if name in library]


def arguments(node: Any, index: int, library: Mapping[str, Any]) -> list[tuple[Any, str]]:
    """``(FunctionDef, argument name)`` for each function that data input ``index`` of ``node`` feeds
    (empty for a predicate / branch index and for ops whose inputs do not map to arguments)."""
    offset = first_argument(node, library)
    if offset is None:
        return []
    out = []
    for name in callees(node, library):
        args = library[name].signature.input_arg
        if 0 <= index - offset < len(args):
            out.append((library[name], args[index - offset].name))
    return out


def argument_inputs(node: Any, fdef: Any, library: Mapping[str, Any]) -> dict[str, str]:
    """Argument name of ``fdef`` (called by ``node``) -> the input of ``node`` that feeds it."""
    offset = first_argument(node, library)
    if offset is None:
        return {}
    data = [ref for ref in node.input if not ref.startswith("^")][offset:]
    return {arg.name: ref for arg, ref in zip(fdef.signature.input_arg, data, strict=False)}


def call_sites(node: Any, library: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(function name, input index of its first argument)`` for each function ``node`` calls as a
    control-flow or call op (a direct call, While, If, Case, PartitionedCall); empty for other ops,
    such as a dataset's map function, whose inputs do not map to arguments."""
    offset = first_argument(node, library)
    return [] if offset is None else [(name, offset) for name in callees(node, library)]


def first_argument(node: Any, library: Mapping[str, Any]) -> int | None:
    """The index of ``node``'s first data input that feeds a function argument (1 after an ``If``/``Case``
    selector, else 0), or ``None`` for ops whose inputs do not map to arguments."""
    if node.op in _AFTER_SELECTOR:
        return 1
    return 0 if node.op in _BY_POSITION or node.op in library else None


def ref_node(ref: str) -> str:
    """The node (or argument) a GraphDef or FunctionDef input names: ``^a``, ``a:1``, ``a:z:0`` -> ``a``."""
    return ref.lstrip("^").split(":")[0]


def function_consumers(fdef: Any) -> dict[str, list[tuple[Any, int]]]:
    """Node or argument name -> [(consumer NodeDef, input index)] inside ``fdef``."""
    out: dict[str, list[tuple[Any, int]]] = {}
    for node in fdef.node_def:
        for i, ref in enumerate(node.input):
            out.setdefault(ref_node(ref), []).append((node, i))
    return out
