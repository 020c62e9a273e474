"""Inputs and outputs for graphs that carry no signature (TF1 meta graphs, frozen GraphDefs)."""

from __future__ import annotations

from typing import Any

from tfopt.errors import GraphError, did_you_mean
from tfopt.graph import (
    PLACEHOLDER_OPS,
    TensorSpec,
    canonical_tensor,
    node_map,
    placeholder_spec,
    tensor_node,
    tensor_port,
)
from tfopt.pipeline_inputs import needed_by, pipeline_fed
from tfopt.training_nodes import explain_outputs, is_training_flag


def resolve_outputs(graph_def: Any, requested: list[str], path: str) -> list[str]:
    """Validate ``requested`` names (``node`` or ``node:i``), or pick the single forward sink."""
    nodes = node_map(graph_def)
    if requested:
        for ref in requested:
            if tensor_node(ref) not in nodes:
                raise GraphError(f"{path}: output '{ref}' is not a node of the graph.{did_you_mean(tensor_node(ref), nodes)}")
        return list(requested)
    explained = explain_outputs(graph_def)
    candidates = list(explained)
    if len(candidates) == 1:
        return candidates
    if not candidates:
        raise GraphError(f"{path}: found no forward-graph output; name them with --outputs NODE [NODE ...]")
    shown = "; ".join(f"{c} ({explained[c]})" for c in candidates[:20]) + (" ..." if len(candidates) > 20 else "")
    raise GraphError(f"{path}: {len(candidates)} candidate outputs: {shown}. Choose with --outputs NODE [NODE ...]")


def output_specs(graph_def: Any, outputs: list[str]) -> list[TensorSpec]:
    """Specs named by the output node (``node:i`` keeps its port in the name when i > 0)."""
    nodes = node_map(graph_def)
    specs = []
    for ref in outputs:
        node = nodes[tensor_node(ref)]
        port = tensor_port(ref)
        dtype = _output_dtype(node)
        shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
        shape = None
        if port < len(shapes) and not shapes[port].unknown_rank:
            shape = tuple(None if d.size < 0 else int(d.size) for d in shapes[port].dim)
        name = node.name if port == 0 else f"{node.name}:{port}"
        specs.append(TensorSpec(name, canonical_tensor(ref), dtype, shape))
    return specs


def input_specs(graph_def: Any, outputs: list[str], exclude: set[str]) -> list[TensorSpec]:
    """Placeholders the outputs depend on, minus training flags and ``exclude`` (bound names).

    A ``PlaceholderWithDefault`` fed from a ``tf.data`` iterator is the input, and what is behind it
    (the iterator's string handle) is not (:mod:`tfopt.pipeline_inputs`); one with a constant
    default is not an input."""
    fed = pipeline_fed(graph_def)
    needed = needed_by(graph_def, outputs, fed)
    return [placeholder_spec(n) for n in graph_def.node
            if n.name in needed and n.op in PLACEHOLDER_OPS and n.name not in exclude
            and not is_training_flag(n, graph_def) and (n.op != "PlaceholderWithDefault" or n.name in fed)]


def _output_dtype(node: Any) -> str:
    from tfopt.graph import dtype_name

    for key in ("T", "dtype", "out_type", "output_type", "DstT", "Tout"):
        if key in node.attr and node.attr[key].type:
            return dtype_name(node.attr[key].type)
    return "float32"
