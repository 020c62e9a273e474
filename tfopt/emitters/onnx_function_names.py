"""Node names unique across a GraphDef's functions, before tf2onnx sees the graph.

A FunctionDef's node names are local to it: a TF1 graph's ``while_loop`` body and the body of the loop
nested in it both have an ``add``. tf2onnx turns each ``While`` body into an ONNX ``Loop`` subgraph and
names every value after its TensorFlow node, so the two ``add:0`` meet in one ONNX scope, which must be
in single static assignment form: ONNX's checker rejects the file ("'add:0' has been used as output names
multiple times"), or tf2onnx's own passes see a cycle ("Graph has cycles"). A SavedModel reaches tf2onnx
through TensorFlow's converter, whose function names happen not to collide; a frozen ``.pb`` or checkpoint
keeps its authors' names.

Rename: a function node whose name is taken (by a main-graph node, a function argument, or a node of a
function seen before, functions in name order) becomes ``<function>/<name>`` (made unique), and every
reference to it inside its function (``name:out:k``, ``^name``, the function's ``ret`` and ``control_ret``)
follows. The main graph, function signatures and the numbers are unchanged.
"""

from __future__ import annotations

from typing import Any


def unique_function_node_names(graph_def: Any) -> Any:
    """A copy of ``graph_def`` whose function node names are unique across the graph (module docstring);
    ``graph_def`` itself when none collide."""
    taken = {n.name for n in graph_def.node}
    plans: dict[str, dict[str, str]] = {}
    for fdef in sorted(graph_def.library.function, key=lambda f: f.signature.name):
        taken |= {a.name for a in fdef.signature.input_arg}
        renames = {}
        for node in fdef.node_def:
            if node.name in taken:
                new = f"{fdef.signature.name}/{node.name}"
                while new in taken:
                    new += "_"
                renames[node.name] = new
            taken.add(renames.get(node.name, node.name))
        if renames:
            plans[fdef.signature.name] = renames
    if not plans:
        return graph_def
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    for fdef in out.library.function:
        function_renames = plans.get(fdef.signature.name)
        if function_renames:
            _rename(fdef, function_renames)
    return out


def _rename(fdef: Any, renames: dict[str, str]) -> None:
    def ref(text: str) -> str:
        control = text.startswith("^")
        name, sep, rest = text.lstrip("^").partition(":")
        if name not in renames or (not sep and not control):  # a bare name is an argument, never a node
            return text
        return ("^" if control else "") + renames[name] + sep + rest

    for node in fdef.node_def:
        node.name = renames.get(node.name, node.name)
        for i, text in enumerate(node.input):
            node.input[i] = ref(text)
    for key, text in list(fdef.ret.items()):
        fdef.ret[key] = ref(text)
    for key, name in list(fdef.control_ret.items()):
        fdef.control_ret[key] = renames.get(name, name)
