"""Turn a TF2 ``ConcreteFunction`` into a :class:`~tfopt.graph.Model` (shared by TF2 loaders).

TF2 variables are resource handles captured by the function; only TensorFlow's own converter can
resolve them inside nested function bodies (If/While/PartitionedCall), so it is used here, with
control flow kept functional (``lower_control_flow=False``) so portable exporters can read it.
Placeholders are renamed to the signature's input keys and each output gets an ``Identity`` node
named after its output key, so the frozen graph speaks the same names as the signature. Outputs are
paired with their keys through the function's structured outputs (each key's own tensor), never by
zipping two lists: ``tf.function`` flattens a dict by sorted key, which is not the model's order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import tf
from tfopt.errors import GraphError
from tfopt.graph import Model, TensorSpec, rename_node, tensor_node, unique_name

log = logging.getLogger(__name__)


def model_from_concrete(
    fn: Any,
    *,
    input_names: Sequence[str],
    call: Callable[[Mapping[str, Any]], dict[str, Any]],
    provenance: dict[str, Any],
    keepalive: Any = None,
    external_threshold: int | None = None,
) -> Model:
    """Freeze ``fn``'s variables and wrap the result.

    Args:
        fn: a ConcreteFunction whose first ``len(input_names)`` inputs are the model inputs.
        input_names: logical names, in ``fn.inputs`` order.
        call: runs the original model on a dict of inputs (the verification reference).
        provenance: source facts; variable count and bytes are added here.
        keepalive: object that owns the variables (a loaded SavedModel must stay referenced).
        external_threshold: variables of at least this many bytes stay outside the GraphDef
            (:mod:`tfopt.external`); ``None``: only what a GraphDef could not hold.
    """
    from tfopt.external.concrete import freeze_function

    named = structured_output_indices(fn)
    variables = list(fn.variables)
    provenance = dict(provenance)
    provenance["variables"] = len(variables)
    provenance["variable_bytes"] = int(sum(np.prod(v.shape) * v.dtype.size for v in variables))

    try:
        frozen, external, dropped = freeze_function(fn, threshold=external_threshold, lower_control_flow=False,
                                                    aggressive_inlining=True)
    except GraphError:
        raise
    except Exception as exc:  # TF raises a zoo of types here; report the op it names
        raise GraphError(f"TensorFlow could not convert the variables of this function to constants: {exc}") from exc
    if dropped:  # e.g. Keras 3 RNN dropout masks drawn at inference, each advancing a seed variable
        provenance["state_updates_dropped"] = [d.as_dict() for d in dropped]
        variables = sorted({d.variable for d in dropped})
        log.info("dropped %d state update(s) no output reads, of %s", len(dropped), ", ".join(variables[:3]))
    graph_def = frozen.graph.as_graph_def()
    fed = _inline_tables(graph_def, fn, frozen.inputs, provenance)

    placeholders = [t.name for t in fed]
    if len(placeholders) != len(input_names):
        raise GraphError(_extra_inputs_message(graph_def, input_names, fed))
    inputs = [
        _rename_placeholder(graph_def, tensor_node(ph), name, t)
        for ph, name, t in zip(placeholders, input_names, fed)
    ]
    outputs = [_name_output(graph_def, frozen.outputs[i].name, name, frozen.outputs[i]) for name, i in named]
    provenance["source_nodes"] = len(graph_def.node)
    return Model(graph_def=graph_def, inputs=inputs, outputs=outputs, provenance=provenance,
                 reference=call, keepalive=keepalive, external=external)


def _inline_tables(graph_def: Any, fn: Any, fed: Sequence[Any], provenance: dict[str, Any]) -> list[Any]:
    """Make the lookup tables ``graph_def`` reads constant (:mod:`tfopt.graphdef.tables`, contents from
    ``fn``'s live tables); the function inputs left: those whose placeholder is still in the graph
    (a TF2 table's captured handle is gone with the table)."""
    from tfopt.graphdef.tables import FIND_OPS, SIZE_OPS, inline_tables
    from tfopt.loaders._tables import live_tables

    ops = FIND_OPS | SIZE_OPS
    if not any(n.op in ops for n in graph_def.node) and \
            not any(n.op in ops for f in graph_def.library.function for n in f.node_def):
        return list(fed)
    tables = inline_tables(graph_def, live_tables(fn))
    provenance["constant_tables"] = tables
    log.info("made %d lookup table(s) constant: %s", len(tables), ", ".join(tables[:3]))
    present = {n.name for n in graph_def.node}
    return [t for t in fed if tensor_node(t.name) in present]


def named_leaves(structure: Any, leaf: Callable[[Any], bool] | None = None) -> list[tuple[str, Any]]:
    """The leaves of a function's output ``structure`` (tensors, or where ``leaf(x)``), each named.

    A dict's keys name its leaves (nested keys joined with ``/``), in the dict's own key order
    (the model's order, not the sorted order ``tf.nest`` flattens by); a list, tuple or single
    tensor is named ``output_<i>``. The same rule names a ConcreteFunction's outputs and the eager
    result of calling it, so both sides pair by name.
    """
    t = tf()
    keep = leaf or (lambda x: isinstance(x, t.Tensor))
    flat = [(path, x) for path, x in _paths(structure, "") if keep(x)]
    if not isinstance(structure, Mapping):
        return [(f"output_{i}", x) for i, (_, x) in enumerate(flat)]
    return flat


def _paths(structure: Any, prefix: str) -> list[tuple[str, Any]]:
    """Leaves with ``/``-joined keys, dicts in their own key order (``tf.nest`` would sort them)."""
    if isinstance(structure, Mapping):
        items: Any = structure.items()
    elif isinstance(structure, (list, tuple)):
        items = enumerate(structure)
    else:
        return [(prefix, structure)]
    return [leaf for k, v in items for leaf in _paths(v, f"{prefix}/{k}" if prefix else str(k))]


def structured_output_indices(fn: Any) -> list[tuple[str, int]]:
    """``(output name, index into fn.outputs)`` per output, named by :func:`named_leaves`.

    ``fn.outputs`` is ``tf.nest.flatten(fn.structured_outputs)`` without its ``None`` leaves (the
    leaves are tensors, or TensorSpecs in a loaded signature): packing the indices back into that
    structure, as TensorFlow does with a call's results, gives each name its own tensor.
    """
    t = tf()
    structure = fn.structured_outputs
    present = [x is not None for x in t.nest.flatten(structure, expand_composites=True)]
    if sum(present) != len(fn.outputs):
        raise GraphError(f"the function's {len(fn.outputs)} outputs do not match its {sum(present)} structured "
                         "outputs; return a flat dict of tensors from the function")
    indices = iter(range(len(fn.outputs)))
    try:
        packed = t.nest.pack_sequence_as(structure, [next(indices) if p else None for p in present],
                                         expand_composites=True)
    except (TypeError, ValueError) as exc:  # a composite (ragged/sparse) output cannot hold indices
        raise GraphError(f"the function returns a composite tensor ({type(exc).__name__}: {str(exc)[:120]}); "
                         "tfopt converts dense outputs: return tensors (e.g. ragged.to_tensor())") from exc
    return named_leaves(packed, leaf=lambda x: isinstance(x, int))


def _extra_inputs_message(graph_def: Any, input_names: Sequence[str], tensors: Sequence[Any]) -> str:
    """Why the frozen function has more inputs than the signature: captured non-variable
    resources (a lookup table, a dataset iterator), named with the ops that read them."""
    extra = list(tensors)[len(input_names):]
    names = {tensor_node(t.name) for t in extra}
    readers: set[str] = set()
    while names:  # through Identity chains to the ops that use the resource
        found = [n for n in graph_def.node if any(tensor_node(i.lstrip("^")) in names for i in n.input)]
        readers |= {n.op for n in found if n.op != "Identity"}
        names = {n.name for n in found if n.op == "Identity"}
    if extra and all(t.dtype == tf().resource for t in extra):
        what = "a lookup table (tf.lookup.StaticHashTable / StringLookup)" if any("Lookup" in op for op in readers) \
            else "a resource that is not a variable"
        return (f"the model captures {what}, read by {', '.join(sorted(readers)) or 'no op'}: tfopt freezes variables, "
                "not tables or other resources. Do the lookup outside the model (feed it the ids), or export a "
                "signature that takes the ids")
    return f"expected {len(input_names)} inputs {list(input_names)}, the frozen function has {[t.name for t in tensors]}"


def _spec(name: str, tensor: str, t: Any) -> TensorSpec:
    shape = None if t.shape.rank is None else tuple(t.shape.as_list())
    return TensorSpec(name, tensor, t.dtype.name if t.dtype != tf().string else "string", shape)


def _rename_placeholder(graph_def: Any, node_name: str, new_name: str, t: Any) -> TensorSpec:
    if node_name != new_name:
        new_name = unique_name(graph_def, new_name)
        rename_node(graph_def, node_name, new_name)
    return _spec(new_name, f"{new_name}:0", t)


def _name_output(graph_def: Any, tensor: str, key: str, t: Any) -> TensorSpec:
    node = graph_def.node.add()
    node.name = unique_name(graph_def, key)
    node.op = "Identity"
    node.input.append(tensor)
    node.attr["T"].type = t.dtype.as_datatype_enum
    return _spec(key, f"{node.name}:0", t)
