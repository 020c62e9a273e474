"""Inputs and outputs for graphs that carry no signature (TF1 meta graphs, frozen GraphDefs)."""

from __future__ import annotations

import logging
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
from tfopt.loaders.head_kinds import node_dtype
from tfopt.loaders.output_choice import MAX_HEADS, choose_outputs
from tfopt.loaders.pipeline_inputs import cut_copy, needed_by, pipeline_fed
from tfopt.loaders.training_nodes import explain_outputs, is_training_flag

log = logging.getLogger(__name__)


def resolve_outputs(graph_def: Any, requested: list[str], path: str) -> tuple[list[str], dict[str, Any]]:
    """Validate ``requested`` names (``node`` or ``node:i``), or choose the forward graph's heads
    (:func:`tfopt.loaders.output_choice.choose_outputs`).

    Returns:
        The outputs, and what to add to the model's provenance: when the automatic choice was not
        certain, every candidate with its reason and every alternative with why it was not chosen
        (also logged as a warning naming ``--outputs``).
    """
    nodes = node_map(graph_def)
    if requested:
        for ref in requested:
            if tensor_node(ref) not in nodes:
                raise GraphError(f"{path}: output '{ref}' is not a node of the graph.{did_you_mean(tensor_node(ref), nodes)}")
        return list(requested), {}
    view, _ = cut_copy(graph_def)  # a tf.data iterator's images and labels: two inputs, as if fed
    explained = explain_outputs(view)
    if not explained:
        raise GraphError(f"{path}: found no forward-graph output; name them with --outputs NODE [NODE ...]")
    choice = choose_outputs(view, explained)
    if len(choice.chosen) > MAX_HEADS:  # what is left after every rule: each with the --outputs that picks it
        left = choice.chosen
        shown = "\n".join(f"  --outputs {c}    ({choice.reasons[c]})" for c in left[:20])
        raise GraphError(f"{path}: {len(left)} heads remain of {len(explained)} candidate outputs ({len(explained) - len(left)} "
                         f"set aside: weight-free, replicas, decisions, losses); choose one or more:\n{shown}"
                         + ("\n  ..." if len(left) > 20 else "") + "\n(several: --outputs NODE [NODE ...])")
    if not choice.certain:
        log.warning("%s", choice.message(path))
    return choice.chosen, choice.provenance()


def output_specs(graph_def: Any, outputs: list[str]) -> list[TensorSpec]:
    """Specs named by the output node (``node:i`` keeps its port in the name when i > 0)."""
    nodes = node_map(graph_def)
    specs = []
    for ref in outputs:
        node = nodes[tensor_node(ref)]
        port = tensor_port(ref)
        dtype = node_dtype(node)
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
    (the iterator's string handle) is not (:mod:`tfopt.loaders.pipeline_inputs`); one with a constant
    default is not an input."""
    fed = pipeline_fed(graph_def)
    needed = needed_by(graph_def, outputs, fed)
    return [placeholder_spec(n) for n in graph_def.node
            if n.name in needed and n.op in PLACEHOLDER_OPS and n.name not in exclude
            and not is_training_flag(n, graph_def) and (n.op != "PlaceholderWithDefault" or n.name in fed)]



# TensorFlow's Placeholder shape function: "with graph_def_version <= 21 we cannot tell a scalar shape
# attribute from an unknown shape", so an empty `shape` there means unknown.
LEGACY_SHAPE_VERSION = 21


def adopt_recorded_shapes(graph_def: Any) -> list[str]:
    """Give each placeholder of unknown shape the shape its graph recorded for it (in place).

    A TF1 graph refines an input's shape after creating it (``x.set_shape``, a reshape check); the
    node's ``shape`` attribute keeps the unknown shape and only ``_output_shapes`` (written by
    ``export_meta_graph``/``add_shapes=True``) holds the rank. Unknown: ``unknown_rank``, or no
    dimensions in a graph of producer <= 21 (a legacy unknown shape, see above). A known rank in
    ``_output_shapes[0]`` replaces it; with none, the shape is marked unknown-rank explicitly, so a
    legacy empty shape is not read as a scalar. Returns the names of the placeholders changed.
    """
    legacy = graph_def.versions.producer <= LEGACY_SHAPE_VERSION
    changed = []
    for node in graph_def.node:
        if node.op != "Placeholder":
            continue
        shape = node.attr["shape"].shape if "shape" in node.attr else None
        if shape is not None and not shape.unknown_rank and (shape.dim or not legacy):
            continue
        recorded = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
        if recorded and not recorded[0].unknown_rank and (recorded[0].dim or not legacy):
            node.attr["shape"].shape.CopyFrom(recorded[0])
        else:
            node.attr["shape"].shape.Clear()
            node.attr["shape"].shape.unknown_rank = True
        changed.append(node.name)
    return changed
