"""Loop variables a TF2 ``While`` only carries along, as output candidates of a graph without a signature.

TF1-style code run under TF2 control flow (``tf.compat.v1`` graphs in TensorFlow 2, saved as TF1
checkpoints or SavedModels) gives every loop variable of a ``While``/``StatelessWhile`` an
``Identity`` of its own after the loop (``while/Identity_k`` reading ``while:k``). Those of the loop
variables that are no result are consumed by nothing and look like heads:

- a variable that is not float: the loop counter, the iteration limit, a TensorArray/TensorList handle
  (the loop's float result is read through ``TensorListStack``, never the handle itself as an output);
- a variable the body returns unchanged (``ret[k]`` is argument ``k``, through ``Identity`` nodes): a
  captured weight or input passed through every iteration, equal to what went in.

Both are set aside by :func:`tfopt.loaders.output_choice.choose_outputs` with the reason below.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import FLOAT_TYPES, dtype_name, tensor_node, tensor_port

LOOP_OPS = frozenset({"While", "StatelessWhile"})
CARRIED = "loop variable {k} of '{loop}', which the loop only carries along ({what})"


def _loop_output(node: Any, nodes: dict[str, Any]) -> tuple[Any, int] | None:
    """``(loop, k)`` when ``node`` is ``While:k`` or ``Identity`` nodes over it."""
    ref = node.name
    while node.op == "Identity" and node.input and tensor_node(node.input[0]) in nodes:
        ref = node.input[0]
        node = nodes[tensor_node(ref)]
    return (node, tensor_port(ref)) if node.op in LOOP_OPS else None


def _passes_through(function: Any, k: int) -> bool:
    """Whether loop body ``function`` returns its argument ``k`` unchanged (through Identity nodes)."""
    if function is None or k >= len(function.signature.output_arg) or k >= len(function.signature.input_arg):
        return False
    body = {n.name: n for n in function.node_def}
    ref = function.ret.get(function.signature.output_arg[k].name, "")
    for _ in range(len(body) + 1):
        name = ref.split(":", 1)[0]
        if name not in body:
            return name == function.signature.input_arg[k].name
        node = body[name]
        if node.op != "Identity" or not node.input:
            return False
        ref = node.input[0]
    return False


def carried_loop_variables(graph_def: Any, nodes: dict[str, Any], candidates: list[str]) -> dict[str, str]:
    """Candidate -> why it is a loop variable the loop only carries along (see the module docstring)."""
    # the light GraphDef of `tfopt inspect` (tfopt.graphdef.lightproto) keeps no library: dtypes alone there
    library = getattr(graph_def, "library", None)
    functions = {f.signature.name: f for f in library.function} if library is not None else {}
    floats = {int(t) for t in FLOAT_TYPES}
    out: dict[str, str] = {}
    for name in candidates:
        found = _loop_output(nodes[name], nodes)
        if found is None:
            continue
        loop, k = found
        types = list(loop.attr["T"].list.type)
        if k < len(types) and types[k] not in floats:
            what = f"a {dtype_name(types[k])} such as its counter or a TensorArray"
        elif _passes_through(functions.get(loop.attr["body"].func.name), k):
            what = "the body returns it unchanged: a captured weight or input"
        else:
            continue
        out[name] = CARRIED.format(k=k, loop=loop.name, what=what)
    return out
