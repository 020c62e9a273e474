"""Node and argument names unique across a GraphDef and its functions, before tf2onnx sees the graph.

A FunctionDef's names are local to it: a TF1 graph's ``while_loop`` body and the body of the loop nested
in it both have a node ``add`` and arguments ``placeholder``, ``placeholder_1``; their conditions both
have a ``Less``. tf2onnx, though, treats names as global: it turns each ``While`` body into an ONNX
``Loop`` subgraph whose values are named after the TensorFlow nodes and arguments, inlines every loop
condition into its body under the one scope ``cond__``, and rewires a renamed value with
``replace_all_inputs``, which walks into nested bodies by name. With shared names

- the two ``add:0`` meet in one ONNX scope, which must be single-assignment: ONNX's checker rejects the
  file ("'mul:0' has been used as output names multiple times"), or tf2onnx's passes see "cycles";
- renaming the nodes alone is not enough: the inner condition inlined into the inner body and the outer
  one into the outer body meet as ``cond___Less``, and the rewiring of the outer body's arguments
  (``placeholder_1``) reaches the inner body's own argument of the same name. The inner loop's
  condition then reads the outer loop's values: a file the checker accepts and ONNX Runtime never
  leaves (measured).

So every name a function defines (node and argument) that is already taken, by a main-graph node or
by a name of a function seen before (functions in name order), becomes ``<function>/<name>`` for a node
and ``<function>_<name>`` for an argument (the function's name cut to TensorFlow's rules for node and
argument names), made unique; every
reference inside the function (``name:out:k``, a bare argument ``name``, ``^name``, ``ret`` and
``control_ret``) follows. The main graph, the functions' names, their calls and the numbers are
unchanged. A SavedModel reaches tf2onnx through TensorFlow's converter, whose names happen not to
collide; a frozen ``.pb`` or checkpoint keeps its authors' names (a padded NMS's nested loops).
"""

from __future__ import annotations

import re
from typing import Any

from tfopt.graph import unique_name


def unique_function_names(graph_def: Any) -> Any:
    """A copy of ``graph_def`` whose function node and argument names are unique across the graph and its
    library (module docstring); ``graph_def`` itself when none collide."""
    taken = {n.name for n in graph_def.node}
    plans: dict[str, dict[str, str]] = {}
    for fdef in sorted(graph_def.library.function, key=lambda f: f.signature.name):
        renames: dict[str, str] = {}
        prefix = fdef.signature.name
        for name, is_arg in [*((a.name, True) for a in fdef.signature.input_arg),
                             *((n.name, False) for n in fdef.node_def)]:
            if name in taken:
                new = unique_name(graph_def, _arg_name(prefix, name) if is_arg else f"{_node_prefix(prefix)}/{name}",
                                  taken)
                renames[name] = new
            taken.add(renames.get(name, name))
        if renames:
            plans[fdef.signature.name] = renames
    if not plans:
        return graph_def
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    for fdef in out.library.function:
        if fdef.signature.name in plans:
            _rename(fdef, plans[fdef.signature.name])
    return out


def _node_prefix(function: str) -> str:
    r"""The function's name as the start of a node name (``[A-Za-z0-9.][A-Za-z0-9_.\-/>]*``:
    ``__inference_f_12`` becomes ``inference_f_12``)."""
    return re.sub(r"[^A-Za-z0-9_.\-/>]", "_", function).lstrip("_-/>") or "function"


def _arg_name(function: str, name: str) -> str:
    """An argument name TensorFlow accepts (``[a-z][a-z0-9_]*``) made from the function's and the old one."""
    text = re.sub(r"[^a-z0-9_]", "_", f"{function}_{name}".lower()).lstrip("_0123456789")
    return text or "arg"


def _rename(fdef: Any, renames: dict[str, str]) -> None:
    def ref(text: str) -> str:
        control = text.startswith("^")
        name, sep, rest = text.lstrip("^").partition(":")
        if name not in renames:
            return text
        return ("^" if control else "") + renames[name] + sep + rest

    for arg in fdef.signature.input_arg:
        arg.name = renames.get(arg.name, arg.name)
    for node in fdef.node_def:
        node.name = renames.get(node.name, node.name)
        for i, text in enumerate(node.input):
            node.input[i] = ref(text)
    for key, text in list(fdef.ret.items()):
        fdef.ret[key] = ref(text)
    for key, name in list(fdef.control_ret.items()):
        fdef.control_ret[key] = renames.get(name, name)
