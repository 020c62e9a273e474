"""Inputs behind a ``tf.data`` iterator (or a TF1 queue): the ``PlaceholderWithDefault`` is the input.

TF1 training scripts feed a model from a pipeline and keep a way to feed it by hand::

    handle = Placeholder(string)                       # Iterator.from_string_handle(handle, ...)
    batch  = IteratorGetNext(IteratorFromStringHandleV2(handle))
    img    = PlaceholderWithDefault(batch)             # what the model reads

At inference the user feeds ``img``; the iterator, and the string handle that selects it, are
training plumbing. So ``img`` is the model input and its default edge is *cut*: nothing behind it
counts as needed by the outputs, and freezing turns ``img`` into a plain ``Placeholder``.

A ``PlaceholderWithDefault`` is *pipeline-fed* when its default is computed from an iterator or
queue op, or from another placeholder (its default has to be fed anyway, so the input is the
``PlaceholderWithDefault`` itself). One whose default is a constant stays a default (a training
flag, a keep probability): bound, not an input.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from tfopt.graph import PLACEHOLDER_OPS, ancestors, is_control, node_map, tensor_node, tensor_port

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
    """Names of the ``PlaceholderWithDefault`` nodes whose default comes from a pipeline or a feed."""
    nodes = node_map(graph_def)
    out = set()
    for node in graph_def.node:
        if node.op != "PlaceholderWithDefault" or not node.input:
            continue
        behind = ancestors(graph_def, [node.input[0]], follow_control=False)
        if any(is_pipeline_op(nodes[n].op) or nodes[n].op in PLACEHOLDER_OPS for n in behind if n in nodes):
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
    shape=_output_shapes[k])``, its readers rewired. What builds the iterator is then dead (TF 2 may
    not even have its ops: TF 1.12's ``ExperimentalFunctionBufferingResource``). A source read only
    through a ``PlaceholderWithDefault`` is left alone (that one is the input already).

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
        node = nodes[source]
        types = list(node.attr["output_types"].list.type) if "output_types" in node.attr else []
        shapes = list(node.attr["_output_shapes"].list.shape) if "_output_shapes" in node.attr else []
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
