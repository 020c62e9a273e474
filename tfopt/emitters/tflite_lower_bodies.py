"""The TFLite lowering inside function bodies: ``While``/``If``/``Case`` bodies and branches.

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

When a body changed, every library function is renamed ``<name>_lowered_<hash of the library>`` (its
uses too): TensorFlow keeps the functions of a graph wrapped as a ``ConcreteFunction`` in its
process-wide context, where the unlowered body may already be under its own name (the loader's
frozen function, another target's conversion), and a different body under a registered name is then
refused as a "duplicate function" or, measured, silently replaced by the registered one. The hash
keeps two different lowered libraries apart and gives the same one the same names (deterministic).
"""

from __future__ import annotations

from typing import Any

from tfopt.emitters.tflite_lowering import Lowered, Operand, lower_nodes, registry
from tfopt.graph import tensor_node, tensor_port

SUFFIX = "_lowered"


def bodies_to_lower(graph_def: Any) -> list[str]:
    """Names of the library functions reachable from ``graph_def``'s nodes that hold an op with a lowering."""
    from tfopt.passes.prune_dead import called_functions

    reachable = called_functions(graph_def)
    return sorted(f.signature.name for f in graph_def.library.function
                  if f.signature.name in reachable and any(registry.get(n.op) for n in f.node_def))


def lower_bodies(graph_def: Any, names: list[str], graph: Any) -> Lowered:
    """Lower the ops of the functions ``names`` of ``graph_def`` (in place; module docstring).

    Args:
        graph_def: the graph whose library holds the functions.
        names: from :func:`bodies_to_lower`.
        graph: a ``tf.Graph`` ``graph_def``'s library was imported into (nested calls resolve there).

    Returns:
        The lowered nodes and the declined ones, each named ``<function>/<node>``.
    """
    done = Lowered({}, [], [])
    for fdef in graph_def.library.function:
        if fdef.signature.name in names:
            body = _lower_body(fdef, graph)
            done.lowered.extend(body.lowered)
            done.skips.extend(body.skips)
    if done.lowered:
        import hashlib

        from tfopt.emitters.tflite_batch import rename_functions

        content = b"".join(f.SerializeToString(deterministic=True) for f in graph_def.library.function)
        rename_functions(graph_def, f"{SUFFIX}_{hashlib.sha256(content).hexdigest()[:8]}")
    return done


def _lower_body(fdef: Any, graph: Any) -> Lowered:
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph, function_def_to_graph_def

    with graph.as_default():
        body = function_def_to_graph(fdef)
        _, flat = function_def_to_graph_def(fdef)

    def operand(ref: str) -> Operand:
        tensor = body.get_tensor_by_name(flat[ref])
        return Operand(ref, tensor.dtype, None if tensor.shape.rank is None else tuple(tensor.shape.as_list()))

    wanted = [n.name for n in fdef.node_def if registry.get(n.op)]
    lowering = set(wanted)
    before: dict[str, list[tuple[int, str]]] = {}  # node -> (flat index, FunctionDef name) of its outputs
    for nested, flat_name in flat.items():
        if nested.count(":") == 2 and tensor_node(flat_name) in lowering:
            before.setdefault(tensor_node(flat_name), []).append((tensor_port(flat_name), nested))
    taken = {n.name for n in fdef.node_def} | {a.name for a in fdef.signature.input_arg}
    name = fdef.signature.name
    done = lower_nodes(fdef.node_def, wanted, operand, taken, nested=True, label=lambda node: f"{name}/{node}")
    moved = {old: outputs[k] for node, outputs in done.outputs.items() for k, old in sorted(before[node])}
    for node in fdef.node_def:
        for i, ref in enumerate(node.input):
            if ref in moved:
                node.input[i] = moved[ref]
    for key, ref in fdef.ret.items():
        if ref in moved:
            fdef.ret[key] = moved[ref]
    return done
