"""Initialised lookup tables as constants: each lookup becomes plain tensor ops over the table's contents.

A ``HashTableV2`` (a TF1 SavedModel's table, filled by its init op ``tables_initializer``; an Estimator's
vocabulary and label tables) or a TF2 ``StaticHashTable`` captured by a function is a resource: freezing
turns variables into constants but leaves the table, which no target can read. Once the table's contents
``keys[0..n)``, ``values[0..n)`` are known (:func:`inline_tables` asks ``contents`` for them), a lookup

    LookupTableFindV2(table, x, default)  ->  found = any(x[..., None] == keys, -1)
                                               i = argmax(cast(x[..., None] == keys, int32), -1)
                                               SelectV2(found, gather(values, i), default)

is exact: keys are unique, so the single match's index is the argmax, and no match gives ``default``
(``n = 0``: every element is ``default``). ``LookupTableSizeV2(table)`` becomes the constant ``n``.
Equal, Any, ArgMax, Gather and SelectV2 are builtins in TFLite, ONNX and OpenVINO for numeric keys and
values (string tensors only where a target has strings). Memory: the comparison holds ``|x| * n``
booleans, so a 50 000-word vocabulary over 512 tokens is a 25 MB intermediate.

Lookups inside ``If``/``Case``/call bodies are rewritten in the body (the table is traced through the
call's arguments, :func:`~tfopt.graphdef.scopes.walk_scopes`); the argument that carried the table is
then dropped (:func:`~tfopt.graphdef.call_tidy.tidy_calls`) and the table node removed. A table still
read after that (a ``While`` loop variable, a table op with no constant form such as an insert) stops
with a :class:`~tfopt.errors.GraphError` naming the table and the op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfopt._tf import make_const
from tfopt.errors import GraphError
from tfopt.graph import remove_nodes, rewrite_node
from tfopt.graphdef.call_tidy import tidy_calls
from tfopt.graphdef.scopes import Scope, walk_scopes

FIND_OPS = frozenset({"LookupTableFindV2", "LookupTableFind"})
SIZE_OPS = frozenset({"LookupTableSizeV2", "LookupTableSize"})
TABLE_OPS = frozenset({"HashTableV2", "HashTable", "MutableHashTableV2", "MutableHashTable",
                       "MutableHashTableOfTensorsV2", "MutableDenseHashTableV2", "AnonymousHashTable"})

# (main-graph node of the table, key dtype enum, value dtype enum) -> (keys, values), as the table holds them
Contents = Callable[[str, int, int], tuple[np.ndarray, np.ndarray]]

_DT_BOOL, _DT_INT32, _DT_INT64 = 10, 3, 9
_OUTPUT_ARG = {"LookupTableFindV2": "values", "LookupTableFind": "values", "LookupTableSizeV2": "size",
               "LookupTableSize": "size"}


def inline_tables(graph_def: Any, contents: Contents) -> list[str]:
    """Replace every table lookup of ``graph_def`` by its constant form (module docstring), in place.

    Returns:
        the main-graph nodes of the tables replaced, sorted.

    Raises:
        GraphError: a lookup whose table is not a node of the main graph, a body shared by lookups of
            different tables, or a table still read after the rewrite; each names the table and the op.
    """
    found: dict[tuple[str | None, str], tuple[Scope, Any, str]] = {}
    for scope in walk_scopes(graph_def):
        for node in scope.nodes:
            if node.op not in FIND_OPS | SIZE_OPS:
                continue
            table = scope.origin(scope.data_inputs(node)[0])
            if table is None:
                raise GraphError(f"{node.op} '{node.name}' reads a lookup table tfopt cannot trace to a node of the "
                                 "graph (a table made inside a function body); create the table outside the function")
            key = (scope.name, node.name)
            if key in found and found[key][2] != table:
                raise GraphError(f"{node.op} '{node.name}' in function '{scope.name}' reads table '{found[key][2]}' "
                                 f"at one call and '{table}' at another; tfopt cannot make both constant")
            found[key] = (scope, node, table)
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    main = {n.name: n for n in graph_def.node}
    for scope, node, table in found.values():
        if node.op in SIZE_OPS:  # the dtypes come from the table op (a TF2 capture states none)
            made = main.get(table)
            if made is None or "key_dtype" not in made.attr:
                raise GraphError(f"{node.op} '{node.name}' reads table '{table}', whose key and value types the "
                                 "graph does not state; tfopt cannot read its size")
            size = len(contents(table, made.attr["key_dtype"].type, made.attr["value_dtype"].type)[0])
            _rename_output(scope, node, "output")
            node.CopyFrom(make_const(node.name, np.int64(size)))
            continue
        kd, vd = node.attr["Tin"].type, node.attr["Tout"].type
        if table not in tables:
            tables[table] = contents(table, kd, vd)
        keys, values = tables[table]
        if values.ndim != 1 or keys.ndim != 1:
            raise GraphError(f"lookup table '{table}' (read by {node.op} '{node.name}') holds values of shape "
                             f"{values.shape[1:]}; tfopt makes tables of scalar values constant")
        _lookup(scope, node, keys, values, kd, vd)
    tidy_calls(graph_def, {scope.name for scope, _, _ in found.values() if scope.name is not None})
    _remove_tables(graph_def, {t for _, _, t in found.values()})
    return sorted({t for _, _, t in found.values()})


def _lookup(scope: Scope, node: Any, keys: np.ndarray, values: np.ndarray, kd: int, vd: int) -> None:
    """Rewrite the find ``node`` into ``SelectV2(found, gather(values, argmax(eq)), default)`` in place."""
    name = node.name
    data = scope.data_inputs(node)
    controls = [r for r in node.input if r.startswith("^")]
    x, default = data[1], data[2]

    def add(suffix: str, op: str, inputs: list[str], output: str = "output", **attrs: Any) -> str:
        new = scope.function.node_def.add() if scope.function is not None else scope.graph_def.node.add()
        new.name, new.op = f"{name}/{suffix}", op
        new.input.extend(inputs)
        for key, value in attrs.items():
            if isinstance(value, bool):
                new.attr[key].b = value
            else:
                new.attr[key].type = value
        return scope.ref(new.name, output)

    def const(suffix: str, value: Any, dtype: int | None = None) -> str:
        made = make_const(f"{name}/{suffix}", value, dtype)
        target = scope.function.node_def if scope.function is not None else scope.graph_def.node
        target.add().CopyFrom(made)
        return scope.ref(made.name)

    _rename_output(scope, node, "output")
    if len(keys) == 0:  # an empty table: every element misses
        shape = add("shape", "Shape", [x], T=kd, out_type=_DT_INT32)
        rewrite_node(node, "BroadcastTo", inputs=[default, shape, *controls], types={"T": vd, "Tidx": _DT_INT32})
        return
    axis = const("last_axis", np.int32(-1))
    expanded = add("expanded", "ExpandDims", [x, axis], T=kd, Tdim=_DT_INT32)
    equal = add("equal", "Equal", [expanded, const("keys", keys, kd)], output="z", T=kd, incompatible_shape_error=True)
    hit = add("found", "Any", [equal, axis], keep_dims=False, Tidx=_DT_INT32)
    as_int = add("as_int", "Cast", [equal], output="y", SrcT=_DT_BOOL, DstT=_DT_INT32, Truncate=False)
    index = add("index", "ArgMax", [as_int, axis], T=_DT_INT32, Tidx=_DT_INT32, output_type=_DT_INT32)
    got = add("gathered", "GatherV2", [const("values", values, vd), index, const("axis0", np.int32(0))],
              Tparams=vd, Tindices=_DT_INT32, Taxis=_DT_INT32)
    rewrite_node(node, "SelectV2", inputs=[hit, got, default, *controls], types={"T": vd})


def _rename_output(scope: Scope, node: Any, output: str) -> None:
    """Inside a function, readers name the node's output arg (``values``); the new op's is ``output``."""
    if scope.function is None:
        return
    old = f"{node.name}:{_OUTPUT_ARG[node.op]}:"
    for reader in scope.function.node_def:
        for i, ref in enumerate(reader.input):
            if ref.startswith(old):
                reader.input[i] = f"{node.name}:{output}:" + ref[len(old):]
    for key, ref in list(scope.function.ret.items()):
        if ref.startswith(old):
            scope.function.ret[key] = f"{node.name}:{output}:" + ref[len(old):]


def _remove_tables(graph_def: Any, tables: set[str]) -> None:
    """Remove the tables no node reads any more, and the Identity nodes that only forwarded them."""
    removable = set(tables)
    grew = True
    while grew:  # Identity chains that forward a table
        more = {n.name for n in graph_def.node if n.op == "Identity" and n.input
                and n.input[0].split(":")[0] in removable}
        grew = not more <= removable
        removable |= more
    while True:
        readers: dict[str, list[Any]] = {}
        for node in [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]:
            for ref in node.input:
                readers.setdefault(ref.lstrip("^").split(":")[0], []).append(node)
        unread = {n.name for n in graph_def.node if n.name in removable and n.name not in readers}
        if not unread:
            break
        remove_nodes(graph_def, unread)
    left = {n.name for n in graph_def.node}
    for table in sorted(tables & left):
        by = {n.op + " '" + n.name + "'" for name in removable & left for n in readers.get(name, [])
              if n.name not in removable}
        raise GraphError(f"lookup table '{table}' is still read by {', '.join(sorted(by)[:3])} after its lookups "
                         "were made constant; tfopt makes a table constant only where every reader is a lookup "
                         "(not a While loop variable or a table update)")
