"""``tfopt inspect``: what a model holds, without changing it.

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
    from tfopt.loaders import load, registry

    if path.endswith((".tflite", ".onnx", ".xml")) or os.path.exists(os.path.join(path, "model.xml")):
        return inspect_artifact(path)
    fmt = options.pop("format", None) or registry.detect(path)
    if fmt == "graphdef":
        return _inspect_graphdef(path, options.get("outputs") or [])
    if fmt == "tf1-checkpoint":
        return _inspect_tf1(path, options.get("outputs") or [], options.get("external_threshold"))
    model = load(path, format=fmt, **options)
    prov = model.provenance
    return {
        **_storage(model),
        "format": fmt, "path": path, "inputs": _specs(model.inputs), "outputs": _specs(model.outputs),
        # TF2 graphs hide their body behind (Stateful)PartitionedCall: describe the inlined graph.
        "nodes": len(model.graph_def.node), "ops": op_histogram(model.graph_def),
        "variables": prov.get("variables", 0), "variable_bytes": prov.get("variable_bytes", 0),
        "training_nodes": sum(1 for n in model.graph_def.node if is_training_node(n)),
        "training_flags": [s.name for s in model.inputs if s.dtype == "bool" and s.shape == ()],
        "output_candidates": [s.name for s in model.outputs],
        **({"signature": prov["signature"], "signatures": prov["signatures"]} if "signatures" in prov else {}),
    }


def inspect_artifact(path: str) -> dict[str, Any]:
    """A deployment artifact (.tflite, .onnx, OpenVINO IR): its bytes, gzip bytes, and per weight
    tensor the unique values and sparsity (what clustering and pruning change)."""
    from tfopt.report.build import artifact_format, artifact_sizes
    from tfopt.report.weights import weight_stats

    fmt, run_path = artifact_format(path)
    size, gzipped = artifact_sizes(fmt, run_path)
    weights = weight_stats(fmt, run_path)
    total = sum(int(np.prod(w["shape"])) for w in weights)
    return {"format": fmt, "path": path, "bytes": size, "gzip_bytes": gzipped, "weight_tensors": len(weights),
            "weights": total, "zeros": round(sum(w["sparsity"] * int(np.prod(w["shape"])) for w in weights)
                                             / max(total, 1), 4),
            "weight_table": weights}


def _graph_summary(graph_def: Any, outputs: list[str]) -> dict[str, Any]:
    from tfopt.freezing.remove_dropout import dropout_knobs
    from tfopt.loaders._signature import adopt_recorded_shapes
    from tfopt.loaders.pipeline_inputs import needed_by, pipeline_fed

    adopt_recorded_shapes(graph_def)  # as the loaders read the inputs
    reasons = explain_outputs(graph_def)
    candidates = list(reasons)
    choice = choose_outputs(graph_def, reasons)
    chosen = outputs or choice.chosen
    # an alternative says why it was not chosen, where the candidates are listed
    reasons = {c: f"{r}; not chosen: {choice.alternatives[c]}" if c in choice.alternatives else r
               for c, r in reasons.items()}
    fed = pipeline_fed(graph_def)  # an iterator-fed PlaceholderWithDefault is the input, not the iterator's handle
    needed = needed_by(graph_def, chosen, fed) if chosen else {n.name for n in graph_def.node}
    inputs = [placeholder_spec(n) for n in graph_def.node
              if n.op in PLACEHOLDER_OPS and n.name in needed and not _behind(graph_def, n.name, fed)
              and not is_training_flag(n, graph_def) and not is_training_node(n)]
    return {
        "inputs": _specs(inputs),
        "outputs": [{"name": o} for o in chosen],
        "nodes": len(graph_def.node),
        "ops": op_histogram(graph_def),
        "training_nodes": sum(1 for n in graph_def.node if is_training_node(n)),
        "training_flags": training_flags(graph_def),
        "output_candidates": candidates,
        "output_reasons": reasons,
        "output_alternatives": {} if outputs else choice.alternatives,
        "dropout_knobs": dropout_knobs(graph_def, outputs=chosen or None),
    }


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

    found = storage({n: sizes[n] for n in choose_external(sizes, threshold)}, var_bytes)
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
