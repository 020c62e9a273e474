"""Lowerings inside function bodies: ``While``/``If``/``Case`` bodies and branches.

The lowerings that use it: the TFLite one (:data:`tfopt.emitters.tflite_lowering.registry`, the default),
the resize one every target runs (:mod:`tfopt.emitters.resize_lower`, which passes its own
``lowering_of``: a resize's weights need the static values of its size inputs in that body), and one
op for one target's converter, main graph and bodies at once (:func:`lower_everywhere`: ``CropAndResize``
for tf2onnx, ``LRN`` and multi-axis ``ReverseV2`` for OpenVINO).

A frozen TF2 graph keeps functional control flow: ``StatelessWhile(cond=C, body=B)``,
``StatelessIf(then_branch=T, else_branch=E)``, ``Case(branches=[...])`` and ``PartitionedCall(f=F)``
name FunctionDefs in the GraphDef's library, which may call others (a loop inside a branch). Every
body the graph's nodes reach (:func:`tfopt.passes.prune_dead.called_functions`) that holds an op
with a lowering is rewritten in the library, once, however many nodes call it: each such node is
spliced as in the main graph (:func:`tfopt.emitters.tflite_lowering.lower_nodes`), in FunctionDef
tensor names (``node:arg:index``). The node's name is kept by an ``Identity``, whose output is
``node:output:0`` where the op's was e.g. ``node:y:0``: every input and ``ret`` entry that read an
output of the node is rewired. The signature, ``arg_attr``, ``attr`` and ``control_ret`` are kept.
Dtypes and shapes are TensorFlow's own, from importing the body (``function_def_to_graph``: the
arguments' recorded shapes, then shape inference).

A lowered body keeps its function's name; the TensorFlow runtime sees it under a name of its content
(:func:`tfopt.graphdef.function_names.content_named`), never as the unlowered body's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from tfopt.emitters.static_values import static_value
from tfopt.emitters.tflite_lowering import Lowered, Lowering, Operand, lower_nodes, registry
from tfopt.graph import tensor_node, tensor_port
from tfopt.passes.base import Skip

LoweringOf = Callable[[Any, Callable[[str], "np.ndarray | None"]], "Lowering | None"]
"""``(node, static) -> Lowering or None``: ``static(ref)`` is an input's value when the body's
constants and static shapes decide it (TensorFlow's ``try_evaluate_constant``), else ``None``."""


def _registered(node: Any, _static: Any) -> Lowering | None:
    return registry.get(node.op)


def bodies_to_lower(graph_def: Any, ops: Collection[str] | None = None) -> list[str]:
    """Names of the library functions reachable from ``graph_def``'s nodes that hold an op with a
    lowering (``ops``: one of these op types instead)."""
    from tfopt.passes.prune_dead import called_functions

    def wanted(op: str) -> bool:
        return op in ops if ops is not None else registry.get(op) is not None

    reachable = called_functions(graph_def)
    return sorted(f.signature.name for f in graph_def.library.function
                  if f.signature.name in reachable and any(wanted(n.op) for n in f.node_def))


def lower_bodies(graph_def: Any, names: list[str], graph: Any, *, lowering_of: LoweringOf = _registered) -> Lowered:
    """Lower the ops of the functions ``names`` of ``graph_def`` (in place; module docstring).

    Args:
        graph_def: the graph whose library holds the functions.
        names: from :func:`bodies_to_lower`.
        graph: a ``tf.Graph`` ``graph_def``'s library was imported into (nested calls resolve there).
        lowering_of: each node's lowering (:data:`LoweringOf`; default: the TFLite registry's).

    Returns:
        The lowered nodes and the declined ones, each named ``<function>/<node>``.
    """
    done = Lowered({}, [], [])
    for fdef in graph_def.library.function:
        if fdef.signature.name in names:
            body = _lower_body(fdef, graph, lowering_of)
            done.lowered.extend(body.lowered)
            done.skips.extend(body.skips)
    return done


def _lower_body(fdef: Any, graph: Any, lowering_of: LoweringOf) -> Lowered:
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph, function_def_to_graph_def

    with graph.as_default():
        body = function_def_to_graph(fdef)
        _, flat = function_def_to_graph_def(fdef)

    def operand(ref: str) -> Operand:
        tensor = body.get_tensor_by_name(flat[ref])
        return Operand(ref, tensor.dtype, None if tensor.shape.rank is None else tuple(tensor.shape.as_list()))

    def static(ref: str) -> np.ndarray | None:
        return static_value(body.get_tensor_by_name(flat[ref]))

    lowerings = {n.name: lowering_of(n, static) for n in fdef.node_def}
    wanted = [name for name, lowering in lowerings.items() if lowering is not None]
    lowering = set(wanted)
    before: dict[str, list[tuple[int, str]]] = {}  # node -> (flat index, FunctionDef name) of its outputs
    for nested, flat_name in flat.items():
        if nested.count(":") == 2 and tensor_node(flat_name) in lowering:
            before.setdefault(tensor_node(flat_name), []).append((tensor_port(flat_name), nested))
    taken = {n.name for n in fdef.node_def} | {a.name for a in fdef.signature.input_arg}
    name = fdef.signature.name
    done = lower_nodes(fdef.node_def, wanted, operand, taken, nested=True, label=lambda node: f"{name}/{node}",
                       lowering_of=lambda node: lowerings[node.name], static=static)
    moved = {old: outputs[k] for node, outputs in done.outputs.items() for k, old in sorted(before[node])}
    for node in fdef.node_def:
        for i, ref in enumerate(node.input):
            if ref in moved:
                node.input[i] = moved[ref]
    for key, ref in list(fdef.ret.items()):  # a protobuf map written while iterated may skip entries
        if ref in moved:
            fdef.ret[key] = moved[ref]
    return done


def lower_everywhere(graph_def: Any, lowering: Lowering) -> Any:
    """``graph_def`` (a copy when anything changes) with every node of ``lowering.op`` in the main graph
    and in the function bodies it reaches lowered by ``lowering`` where its check passes: one op lowered
    for one target's converter (:mod:`tfopt.emitters.crop_lower`, :mod:`tfopt.emitters.lrn_lower`,
    :mod:`tfopt.emitters.reverse_axes`; the inputs it names in ``constants`` carry their values), the lines
    reported as ``lowered_<op>`` (:mod:`tfopt.emitters.rewrite_record`)."""

    from tfopt.emitters.rewrite_record import record_rewrites

    def only(node: Any, *_static: Any) -> Lowering | None:
        return lowering if node.op == lowering.op else None

    out, lowered, _ = lower_reported(graph_def, (lowering.op,), only)
    record_rewrites({f"lowered_{lowering.op}": lowered})  # the artifact's record (tfopt.emitters.rewrite_record)
    return out


def lower_reported(graph_def: Any, ops: Collection[str], lowering_of: LoweringOf) -> tuple[Any, list[str], list[Skip]]:
    """:func:`lower_everywhere` for the nodes of ``ops``, each lowered by ``lowering_of(node, static)`` (a fresh
    :class:`Lowering` per node may be returned; ``None``: left alone), with the report: ``(graph_def`` or its
    lowered copy``, lowered, skips)``, a body's nodes named ``<function>/<node>``."""
    wanted = [n.name for n in graph_def.node if n.op in ops]
    bodies = bodies_to_lower(graph_def, ops)
    if not wanted and not bodies:
        return graph_def, [], []
    from tfopt._tf import GraphFacts
    from tfopt.emitters.static_values import graph_static
    from tfopt.passes.base import copy_graph

    facts = GraphFacts(graph_def)
    out = copy_graph(graph_def)
    static = graph_static(graph_def, facts)
    chosen = set(wanted)
    lowerings = {node.name: lowering_of(node, static) for node in out.node if node.name in chosen}
    wanted = [name for name in wanted if lowerings[name] is not None]
    done = lower_nodes(out.node, wanted, Operand.reader(facts), {n.name for n in out.node},
                       lowering_of=lambda n: lowerings[n.name], static=static)
    in_bodies = lower_bodies(out, bodies, facts.graph, lowering_of=lowering_of)
    lowered, skips = done.lowered + in_bodies.lowered, done.skips + in_bodies.skips
    return (out, lowered, skips) if lowered else (graph_def, lowered, skips)
