"""Inputs behind a ``tf.data`` iterator (or a TF1 queue): the ``PlaceholderWithDefault`` is the input.

TF1 training scripts feed a model from a pipeline and keep a way to feed it by hand::

    handle = Placeholder(string)                       # Iterator.from_string_handle(handle, ...)
    batch  = IteratorGetNext(IteratorFromStringHandleV2(handle))
    img    = PlaceholderWithDefault(batch)             # what the model reads

At inference the user feeds ``img``; the iterator, and the string handle that selects it, are
training plumbing. So ``img`` is the model input and its default edge is *cut*: nothing behind it
counts as needed by the outputs, and freezing turns ``img`` into a plain ``Placeholder``.

A ``PlaceholderWithDefault`` is *pipeline-fed* when its default is computed from an iterator or
queue op. One whose default is a constant stays a default (a training flag, a keep probability):
bound, not an input. So does one whose default the model computes from its own placeholders
(TensorFlow's retrain.py: ``bottleneck = PlaceholderWithDefault(base_network(input))``, fed cached
bottlenecks in training only): the user feeds ``input``, and the network before the default stays.

A graph that reads the iterator directly (a frozen training graph, a TF1 SavedModel or checkpoint of
one) has no placeholder at all: each element it reads becomes one (:func:`cut_pipeline_sources`),
for every loader at once (:func:`cut_model`, called where :func:`tfopt.loaders.load` hands the model on).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from tfopt.errors import GraphError
from tfopt.graph import (
    PLACEHOLDER_OPS,
    Model,
    Runner,
    ancestors,
    is_control,
    node_map,
    placeholder_spec,
    subgraph,
    tensor_node,
    tensor_port,
)

log = logging.getLogger(__name__)

PIPELINE_OPS = frozenset({
    "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "OptionalGetValue",
    "IteratorV2", "Iterator", "IteratorFromStringHandle", "IteratorFromStringHandleV2", "AnonymousIteratorV2",
    "AnonymousIteratorV3", "OneShotIterator", "MultiDeviceIteratorGetNextFromShard",
    "QueueDequeue", "QueueDequeueV2", "QueueDequeueMany", "QueueDequeueManyV2", "QueueDequeueUpTo",
    "QueueDequeueUpToV2", "ReaderRead", "ReaderReadV2", "ReaderReadUpTo", "ReaderReadUpToV2",
})

_PLUMBING_OPS = frozenset({"IteratorToStringHandle", "MakeIterator", "DeleteIterator", "DatasetToGraph",
                           "DatasetToGraphV2", "OptionalHasValue", "IteratorGetDevice"})


def is_pipeline_op(op: str) -> bool:
    """An op of the input pipeline: a dataset, an iterator or a queue (never a model output)."""
    return (op in PIPELINE_OPS or op in _PLUMBING_OPS or op.endswith(("Dataset", "DatasetV2", "DatasetV3"))
            or is_pipeline_source(op))


def is_pipeline_source(op: str) -> bool:
    """An op that hands the model a pipeline's next element: ``IteratorGetNext``, a queue's dequeue, and
    the GetNext of TF 1.x's prefetching resources (``ExperimentalFunctionBufferingResourceGetNext``,
    ``MultiDeviceIteratorGetNextFromShard``): where a training graph's inputs come from."""
    return op.endswith(("GetNext", "GetNextSync", "GetNextFromShard")) or op.startswith(("QueueDequeue", "ReaderRead"))


def pipeline_fed(graph_def: Any) -> set[str]:
    """Names of the ``PlaceholderWithDefault`` nodes whose default comes from a pipeline (not from the
    model's own placeholders: that default is the model's path from its inputs)."""
    nodes = node_map(graph_def)
    out = set()
    for node in graph_def.node:
        if node.op != "PlaceholderWithDefault" or not node.input:
            continue
        behind = ancestors(graph_def, [node.input[0]], follow_control=False)
        if any(is_pipeline_op(nodes[n].op) for n in behind if n in nodes):
            out.add(node.name)
    return out


def needed_by(graph_def: Any, outputs: Iterable[str], cut: Collection[str]) -> set[str]:
    """:func:`tfopt.graph.ancestors` of ``outputs`` that do not follow the default edge of a
    ``PlaceholderWithDefault`` in ``cut`` (it is fed: what computes its default never runs)."""
    def skip(node: Any, ref: str) -> bool:
        return node.name in cut and node.op == "PlaceholderWithDefault" and not is_control(ref)

    return ancestors(graph_def, outputs, skip_edge=skip)


def cut_pipeline_sources(graph_def: Any) -> dict[str, str]:
    """Make each output of a pipeline source (:func:`is_pipeline_source`) that the model reads
    directly a ``Placeholder`` (in place), so the inputs a training graph took from its iterator are
    the model's inputs: ``GetNext:k`` => ``Placeholder(name=GetNext/output_k, dtype=output_types[k],
    shape=output_shapes[k])``, its readers rewired. The dtype and shape are the iterator's own
    ``output_types``/``output_shapes`` (a queue's ``component_types``; ``_output_shapes`` where the
    op records no shapes). What builds the iterator is then dead (TF 2 may not even have its ops: TF
    1.12's ``ExperimentalFunctionBufferingResource``). A source read only through a
    ``PlaceholderWithDefault`` is left alone (that one is the input already).

    Returns:
        The new input's name -> the pipeline output it stands for (``GetNext:1``).
    """
    nodes = node_map(graph_def)
    readers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph_def.node:
        for i, ref in enumerate(node.input):
            src = tensor_node(ref)
            if not is_control(ref) and src in nodes and is_pipeline_source(nodes[src].op) \
                    and node.op != "PlaceholderWithDefault":
                readers.setdefault(src, []).append((node, i))
    made: dict[str, str] = {}
    for source, uses in readers.items():
        types, shapes = _element_types(nodes[source]), _element_shapes(nodes[source])
        for reader, i in uses:
            port = tensor_port(reader.input[i])
            name = f"{source}/output_{port}"
            if name not in made:
                if port >= len(types):
                    continue  # no dtype recorded: leave the source (freezing names it)
                placeholder = graph_def.node.add(name=name, op="Placeholder")
                placeholder.attr["dtype"].type = types[port]
                if port < len(shapes):
                    placeholder.attr["shape"].shape.CopyFrom(shapes[port])
                    placeholder.attr["_output_shapes"].list.shape.add().CopyFrom(shapes[port])
                else:
                    placeholder.attr["shape"].shape.unknown_rank = True
                made[name] = f"{source}:{port}"
            reader.input[i] = name
    return made


def element_source(node: Any, nodes: Mapping[str, Any]) -> tuple[Any, int] | None:
    """``(GetNext, k)`` when ``node`` is the ``Placeholder`` :func:`cut_pipeline_sources` made for
    ``GetNext:k`` (the source is kept in the graph it cut), else None."""
    if node.op != "Placeholder" or "/output_" not in node.name:
        return None
    source, _, port = node.name.rpartition("/output_")
    found = nodes.get(source)
    if found is None or not is_pipeline_source(found.op) or not port.isdigit():
        return None
    return found, int(port)


def cut_copy(graph_def: Any) -> tuple[Any, dict[str, str]]:
    """A copy of ``graph_def`` cut by :func:`cut_pipeline_sources` and what it made; ``graph_def``
    itself (not copied) and ``{}`` when it reads no pipeline source. The one cut that ``load``
    (:func:`cut_model`) and ``tfopt inspect`` both make, and the graph output choice and label
    detection look at (:func:`tfopt.loaders._signature.resolve_outputs`): the images and the labels
    one ``IteratorGetNext`` hands over are two inputs there, a feature and a label, as if fed; every
    other node keeps its name, so the choice holds for the uncut graph."""
    if not any(is_pipeline_source(n.op) for n in graph_def.node):
        return graph_def, {}
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    made = cut_pipeline_sources(copy)
    return (copy, made) if made else (graph_def, {})


def describe_cut(graph_def: Any, fed: Mapping[str, str]) -> dict[str, Any]:
    """Where each pipeline-fed input comes from, for people: ``{"inputs": {input: {"element":
    "IteratorGetNext:1", "source": op of the GetNext, "iterator": the node it reads (the iterator,
    its string-handle op, a queue), "iterator_op": its op}}}``. ``fed``: input name -> the tensor
    behind it (:func:`cut_pipeline_sources`' result, or a ``PlaceholderWithDefault``'s default);
    an input with no pipeline source behind it is left out. ``graph_def`` still holds the iterator."""
    nodes = node_map(graph_def)
    out: dict[str, dict[str, str]] = {}
    for name, tensor in fed.items():
        source = nodes.get(tensor_node(tensor))
        if source is None or not is_pipeline_source(source.op):
            continue
        feeder = nodes.get(tensor_node(source.input[0])) if source.input else None
        out[name] = {"element": tensor if ":" in tensor else f"{tensor}:0", "source": source.op,
                     "iterator": feeder.name if feeder is not None else "",
                     "iterator_op": feeder.op if feeder is not None else ""}
    return {"inputs": out}


def pipeline_handles(graph_def: Any) -> list[str]:
    """Placeholders whose every consumer is a pipeline op (an iterator's string handle, a file name
    queue's feed): never a model input once the pipeline is cut."""
    users: dict[str, list[str]] = {}
    for node in graph_def.node:
        for ref in node.input:
            users.setdefault(tensor_node(ref), []).append(node.op)
    return [n.name for n in graph_def.node if n.op in PLACEHOLDER_OPS and users.get(n.name)
            and all(is_pipeline_op(op) for op in users[n.name])]


def _element_types(node: Any) -> list[int]:
    for key in ("output_types", "component_types"):
        if key in node.attr:
            return list(node.attr[key].list.type)
    return []


def _element_shapes(node: Any) -> list[Any]:
    """The iterator's ``output_shapes`` (what the dataset promises); ``_output_shapes`` without them."""
    for key in ("output_shapes", "_output_shapes"):
        if key in node.attr and node.attr[key].list.shape:
            return list(node.attr[key].list.shape)
    return []


class FedInside(Protocol):
    """A reference (the original model's runner) that can also run with feeds at interior tensors."""

    def fed_at(self, graph_def: Any, tensors: Mapping[str, str], keep: Sequence[str]) -> Runner | None:
        """A runner of the original model that takes ``tensors`` (input name -> interior tensor) and the
        inputs ``keep`` as feeds; ``graph_def`` is the cut graph. None when it cannot be fed there."""


def cut_model(model: Model) -> Model:
    """``model`` with the elements its outputs read from a ``tf.data`` iterator (or a queue) as inputs:
    :func:`cut_pipeline_sources` on its graph, pruned to what the outputs need; inputs that fed only
    the pipeline (a string handle) are gone. The original's runner is asked to take the same feeds
    (:class:`FedInside`); a frozen graph's original is the cut graph itself. Recorded in the
    provenance (``inputs_from_pipeline``: new input -> the iterator output it stands for;
    ``pipeline_cut``: :func:`describe_cut`, with ``not_inputs`` the inputs that fed only the pipeline).

    Raises:
        GraphError: the original model cannot be fed at the iterator's outputs (nothing would
            verify the cut model).
    """
    graph_def, made = cut_copy(model.graph_def)
    if not made:
        return model  # no copy of a graph (of up to 2 GB) that reads no pipeline
    record = describe_cut(graph_def, made)
    graph_def = subgraph(graph_def, ancestors(graph_def, [s.tensor for s in model.outputs]))
    nodes = node_map(graph_def)
    kept = [s for s in model.inputs if s.node in nodes]
    record["not_inputs"] = [s.name for s in model.inputs if s.node not in nodes]
    reference = model.reference
    if reference is not None:
        fed_at = getattr(reference, "fed_at", None)
        reference = fed_at(graph_def, made, [s.name for s in kept]) if fed_at is not None else None
        if reference is None:
            raise GraphError(f"{model.provenance.get('path')}: the model reads {', '.join(made.values())} from a "
                             "tf.data iterator inside its function, and tfopt cannot feed the function there; "
                             "export a signature that takes the dataset's element as its input")
    log.warning("%s: the model reads its inputs from a tf.data pipeline; its elements are the inputs: %s "
                "(name them in --inputs, --set, --verify-shape)", model.provenance.get("path"),
                ", ".join(f"{name} (was {was})" for name, was in made.items()))
    return model.replace(graph_def=graph_def, inputs=kept + [placeholder_spec(nodes[n]) for n in made],
                         reference=reference,
                         provenance={**model.provenance, "inputs_from_pipeline": made, "pipeline_cut": record})
