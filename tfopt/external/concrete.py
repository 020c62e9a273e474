"""Freeze a TF2 ``ConcreteFunction`` with its largest variables kept outside the GraphDef.

TensorFlow's ``convert_variables_to_constants_v2`` turns every captured variable into a ``Const``;
past 2 GB that fails ("Cannot create a tensor proto whose content is larger than 2GB") after
holding every value in memory at once. Here the variables :func:`~tfopt.external.choose_external`
picks are put on the converter's deny list (it never reads them), each is streamed to its file,
and its capture placeholder becomes the ``ImmutableConst`` that maps that file, its readers
rewritten to read a value (:mod:`tfopt.external.resources`). The rest is TensorFlow's converter,
unchanged. When nothing is large and nothing writes state, this is exactly
``convert_variables_to_constants_v2``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from tfopt.errors import GraphError
from tfopt.external.resources import read_as_value
from tfopt.external.tensors import ExternalTensors, choose_external, storable_bytes
from tfopt.graph import consumers, node_map, rename_node, unique_name
from tfopt.graphdef.state_updates import DroppedUpdate, drop_unread_state_updates

_INIT_COLLECTIONS = ("table_initializer", "saved_model_main_op", "legacy_init_op", "init_op")


class Frozen(NamedTuple):
    """A frozen function, the tensors kept outside the GraphDef (or None), and the state updates dropped."""

    function: Any
    external: ExternalTensors | None
    dropped_updates: list[DroppedUpdate]


def freeze_function(fn: Any, *, threshold: int | None, lower_control_flow: bool,
                    aggressive_inlining: bool) -> Frozen:
    """Freeze ``fn``'s variables; state updates no output reads are dropped first
    (:mod:`tfopt.graphdef.state_updates`), since TensorFlow cannot import an assign to a constant.

    Raises:
        GraphError: a large variable is read by an op with no value form (e.g. inside a loop body
            the converter did not inline); the message names it and the threshold to raise.
        StatefulModelError: an output reads a variable the function writes (names it and the op).
    """
    from tensorflow.python.framework import convert_to_constants as c2c

    large = _large_captures(fn, threshold)
    with _without_init_ops(fn.graph):
        data = c2c._FunctionConverterDataInEager(  # the converter, told to leave the large ones alone
            func=fn, lower_control_flow=lower_control_flow, aggressive_inlining=aggressive_inlining,
            variable_names_denylist=set(large))
    graph_def, converted = c2c._replace_variables_by_constants(converter_data=data)
    dropped = drop_unread_state_updates(graph_def, [t.name for t in fn.outputs],
                                        variable_names=_variable_names(fn))
    external = _keep_outside(graph_def, large, converted) if large else None
    return Frozen(c2c._construct_concrete_function(fn, graph_def, converted), external, dropped)


@contextlib.contextmanager
def _without_init_ops(graph: Any) -> Iterator[None]:
    """``graph`` without its init-op collections while Grappler inlines it.

    A TF1 SavedModel's signature keeps the MetaGraph's ``table_initializer`` and ``saved_model_main_op``
    collections, whose ops were pruned away with everything the signature does not read; Grappler then
    refuses the graph ("Init node .../LookupTableImportV2 doesn't exist in graph"). The init ops already
    ran when the SavedModel was loaded; the tables they filled are made constant afterwards
    (:mod:`tfopt.graphdef.tables`).
    """
    saved = {key: list(graph.get_collection(key)) for key in _INIT_COLLECTIONS}
    for key in saved:
        graph.clear_collection(key)
    try:
        yield
    finally:
        for key, values in saved.items():
            for value in values:
                graph.add_to_collection(key, value)


def _keep_outside(graph_def: Any, large: dict[str, tuple[int, Any]], converted: set[int]) -> ExternalTensors:
    """Stream each large variable to its file and make its capture placeholder the ``ImmutableConst``
    that maps it (``converted`` gains its capture index)."""
    external = ExternalTensors()
    nodes, users = node_map(graph_def), consumers(graph_def)
    for placeholder, (index, variable) in sorted(large.items()):
        dtype = variable.dtype.as_datatype_enum
        blocker = read_as_value(graph_def, placeholder, dtype, users)
        if blocker is not None:
            raise GraphError(f"variable '{variable.name}' ({_mb(variable)} MB) is read by {blocker.op} "
                             f"'{blocker.name}', which has no form that reads a value outside the graph; "
                             f"raise --external-threshold above {_mb(variable)} MB to freeze it as a constant")
        name = unique_name(graph_def, variable.name.split(":")[0])
        external.add(name, variable.value())  # one variable at a time, streamed to its file
        nodes[placeholder].CopyFrom(external.node(name))
        nodes[placeholder].name = placeholder
        if placeholder != name:
            rename_node(graph_def, placeholder, name)
        converted.add(index)
    return external


def _variable_names(fn: Any) -> dict[str, str]:
    """Capture placeholder name -> the variable's name (Keras 3: its path, e.g. ``lstm/.../seed_generator_state``)."""
    by_handle = {id(v.handle): v for v in fn.graph.variables}
    return {placeholder.name.split(":")[0]: str(getattr(by_handle[id(value)], "path", None)
                                                or by_handle[id(value)].name.split(":")[0])
            for value, placeholder in fn.graph.captures if id(value) in by_handle}


def _large_captures(fn: Any, threshold: int | None) -> dict[str, tuple[int, Any]]:
    """Capture placeholder name -> (capture index, variable), for the variables to keep outside."""
    by_handle = {id(v.handle): v for v in fn.graph.variables}
    found = {placeholder.name.split(":")[0]: (index, by_handle[id(value)])
             for index, (value, placeholder) in enumerate(fn.graph.captures) if id(value) in by_handle}
    sizes = {name: storable_bytes(v.shape.as_list() if v.shape.rank is not None else None, v.dtype)
             for name, (_, v) in found.items()}
    chosen = choose_external(sizes, threshold)
    return {name: found[name] for name in chosen}


def _mb(variable: Any) -> str:
    return f"{int(np.prod(variable.shape)) * variable.dtype.size / 1e6:.1f}"
