"""``tfopt inspect``: what a model holds, without changing it (an artifact's sizes and weights:
:mod:`tfopt.report.inspect`, which chooses between the two).

Frozen ``.pb`` files are read with tfopt's light protobuf schema (no TensorFlow import); TF1
checkpoints are read from the meta graph and the checkpoint index; other formats are loaded.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tfopt.graph import PLACEHOLDER_OPS, VARIABLE_OPS, TensorSpec, ancestors, op_histogram, placeholder_spec
from tfopt.loaders.output_choice import choose_outputs
from tfopt.loaders.training_nodes import explain_outputs, is_training_flag, is_training_node, training_flags


def inspect_model(path: Any, **options: Any) -> dict[str, Any]:
    """Describe the model at ``path`` (load options as for :func:`tfopt.load`)."""
    from tfopt.loaders import unreadable, why_missing

    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index") and not os.path.exists(path + ".meta"):
        from tfopt.errors import ModelNotFoundError

        raise ModelNotFoundError(f"{path}: {why_missing(path)}")
    try:
        return _inspect(path, options)
    except PermissionError as exc:  # a file of the model this user may not read
        raise unreadable(exc, path) from exc


def _inspect(path: str, options: dict[str, Any]) -> dict[str, Any]:
    from tfopt.loaders import import_user_module, load, registry

    fmt = options.pop("format", None) or registry.detect(path)
    import_user_module(options.get("custom_objects"), fmt)  # the formats read here without load() too
    if fmt == "graphdef":
        return _inspect_graphdef(path, options.get("outputs") or [])
    if fmt == "tf1-checkpoint":
        return _inspect_tf1(path, options.get("outputs") or [], options.get("external_threshold"))
    model = load(path, format=fmt, **options)
    prov = model.provenance
    record = dict(prov.get("pipeline_cut") or {"inputs": {}})  # the cut load made (tf.data elements read directly)
    record["inputs"] = {**record["inputs"], **_fed_defaults(model.graph_def, [s.name for s in model.inputs])}
    return {
        **_storage(model),
        "format": fmt, "path": path, **_with_pipeline(_specs(model.inputs), record), "outputs": _specs(model.outputs),
        # TF2 graphs hide their body behind (Stateful)PartitionedCall: describe the inlined graph.
        "nodes": len(model.graph_def.node), "ops": op_histogram(model.graph_def),
        "variables": prov.get("variables", 0), "variable_bytes": prov.get("variable_bytes", 0),
        "training_nodes": sum(1 for n in model.graph_def.node if is_training_node(n)),
        "training_flags": [s.name for s in model.inputs if s.dtype == "bool" and s.shape == ()],
        "output_candidates": [s.name for s in model.outputs],
        **_library(model.graph_def),  # While/If bodies and calls that loading kept
        **({"signature": prov["signature"], "signatures": prov["signatures"]} if "signatures" in prov else {}),
    }


def _graph_summary(graph_def: Any, outputs: list[str]) -> dict[str, Any]:
    from tfopt.freezing.remove_dropout import dropout_knobs
    from tfopt.loaders._signature import adopt_recorded_shapes
    from tfopt.loaders.pipeline_inputs import cut_copy, describe_cut, needed_by, pipeline_fed, pipeline_handles

    adopt_recorded_shapes(graph_def)  # as the loaders read the inputs
    # the elements the outputs read straight from an iterator become inputs: the cut `load` makes
    cut, made = cut_copy(graph_def)
    reasons = explain_outputs(cut)  # as the loaders choose: the iterator's elements are inputs
    candidates = list(reasons)
    choice = choose_outputs(cut, reasons)
    chosen = outputs or choice.chosen
    # an alternative says why it was not chosen, where the candidates are listed
    reasons = {c: f"{r}; not chosen: {choice.alternatives[c]}" if c in choice.alternatives else r
               for c, r in reasons.items()}
    handles = set(pipeline_handles(cut))
    fed = pipeline_fed(cut)  # an iterator-fed PlaceholderWithDefault is the input, not the iterator's handle
    needed = needed_by(cut, chosen, fed) if chosen else {n.name for n in cut.node}
    inputs = [placeholder_spec(n) for n in cut.node
              if n.op in PLACEHOLDER_OPS and n.name in needed and n.name not in handles
              and not _behind(cut, n.name, fed) and not is_training_flag(n, cut) and not is_training_node(n)]
    record = describe_cut(cut, made)
    record["inputs"].update(_fed_defaults(cut, [s.name for s in inputs]))
    reach = ancestors(graph_def, chosen) if chosen else handles
    record["not_inputs"] = [h for h in sorted(handles) if h in reach]
    return {
        **_with_pipeline(_specs(inputs), record),
        "outputs": [{"name": o} for o in chosen],
        "nodes": len(graph_def.node),
        "ops": op_histogram(graph_def),
        "training_nodes": sum(1 for n in graph_def.node if is_training_node(n)),
        "training_flags": training_flags(graph_def),
        "output_candidates": candidates,
        "output_reasons": reasons,
        "output_alternatives": {} if outputs else choice.alternatives,
        "dropout_knobs": dropout_knobs(graph_def, outputs=chosen or None),
        **_library(graph_def),
    }


def _library(graph_def: Any) -> dict[str, Any]:
    """``{"library": ...}`` when ``graph_def`` holds functions (:mod:`tfopt.loaders.inspect_library`)."""
    from tfopt.loaders.inspect_library import library_summary

    found = library_summary(graph_def)
    return {"library": found} if found else {}


def _fed_defaults(graph_def: Any, inputs: list[str]) -> dict[str, Any]:
    """:func:`~tfopt.loaders.pipeline_inputs.describe_cut` of the ``PlaceholderWithDefault`` inputs
    whose default is an iterator's element (freezing cuts that edge)."""
    from tfopt.loaders.pipeline_inputs import describe_cut

    nodes = {n.name: n for n in graph_def.node}
    defaults = {i: nodes[i].input[0] for i in inputs
                if i in nodes and nodes[i].op == "PlaceholderWithDefault" and nodes[i].input}
    return describe_cut(graph_def, defaults)["inputs"] if defaults else {}


def _with_pipeline(inputs: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """``{"inputs": ...}``, each input an iterator's element carrying ``from_pipeline`` (its
    :func:`~tfopt.loaders.pipeline_inputs.describe_cut` entry), and, when there was a cut,
    ``pipeline_cut``: ``iterators`` (the nodes cut) and ``not_inputs`` (the string handles that fed
    only the iterator)."""
    where = record.get("inputs") or {}
    for spec in inputs:
        if spec["name"] in where:
            spec["from_pipeline"] = where[spec["name"]]
    cut = {"iterators": sorted({w["iterator"] or w["element"] for w in where.values()}),
           "not_inputs": list(record.get("not_inputs") or [])}
    return {"inputs": inputs, **({"pipeline_cut": cut} if where or cut["not_inputs"] else {})}


def _behind(graph_def: Any, name: str, fed: set[str]) -> bool:
    """Is placeholder ``name`` the feed of an iterator-fed input's default (its string handle)?"""
    return name not in fed and any(name in ancestors(graph_def, [f]) for f in fed)


def _inspect_graphdef(path: str, outputs: list[str]) -> dict[str, Any]:
    from tfopt.loaders.graphdef import read_graph_def

    if path.lower().endswith(".pbtxt"):
        from tfopt._tf import graph_def_class
        graph_def = read_graph_def(path, graph_def_class())
    else:
        from tfopt.graphdef.lightproto import graph_def_class as light
        graph_def = read_graph_def(path, light())
    summary = _graph_summary(graph_def, outputs)
    variables = [n for n in graph_def.node if n.op in VARIABLE_OPS]
    const_bytes = sum(_const_bytes(n) for n in graph_def.node if n.op == "Const")
    return {"format": "graphdef", "path": path, **summary, "variables": len(variables),
            "variable_bytes": 0, "constant_bytes": const_bytes}


def _storage(model: Any) -> dict[str, Any]:
    """``{"storage": ...}`` when the loaded model keeps tensors outside its graph (:mod:`tfopt.external`)."""
    from tfopt.external.describe import storage

    external = model.external
    outside = {name: external[name].nbytes for name in external} if external is not None else {}
    found = storage(outside, int(model.provenance.get("variable_bytes", 0)))
    return {"storage": found} if found else {}


def _inspect_tf1(path: str, outputs: list[str], threshold: int | None = None) -> dict[str, Any]:
    from tfopt.loaders.tf1_checkpoint import check_checkpoint_files, locate, open_reader, read_meta_graph

    meta, prefix = locate(path)
    check_checkpoint_files(prefix)
    graph_def = read_meta_graph(meta).graph_def
    reader = open_reader(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    sizes = {k: int(np.prod(shapes[k])) * dtypes[k].size for k in shapes}
    var_bytes = sum(sizes.values())
    from tfopt.external import choose_external
    from tfopt.external.describe import storage
    from tfopt.external.tensors import storable_bytes

    chosen = choose_external({k: storable_bytes(shapes[k], dtypes[k]) for k in shapes}, threshold)  # as the load
    found = storage({n: sizes[n] for n in chosen}, var_bytes)
    return {**({"storage": found} if found else {}),
            "format": "tf1-checkpoint", "path": path, "meta": meta, "checkpoint": prefix,
            **_graph_summary(graph_def, outputs),
            "variables": sum(1 for n in graph_def.node if n.op in VARIABLE_OPS), "variable_bytes": var_bytes}


def _const_bytes(node: Any) -> int:
    t = node.attr["value"].tensor
    if t.tensor_content:
        return len(t.tensor_content)
    return 4 * max(len(t.float_val), len(t.int_val), len(t.half_val)) + 8 * max(len(t.int64_val), len(t.double_val))


def _specs(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    return [{"name": s.name, "dtype": s.dtype, "shape": None if s.shape is None else list(s.shape)} for s in specs]
