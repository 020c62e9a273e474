"""Which TF1 (v1 control flow) while-loop frame each node of a GraphDef runs in.

A v1 ``tf.while_loop`` has no function body: its ops sit in the graph between ``Enter`` (which
opens a frame, named by its ``frame_name`` attribute) and ``Exit`` (which closes it). Every op
inside runs once per iteration, so a Session cannot fetch its output (TensorFlow: "Retval[k] has
already been set"): only what leaves through an ``Exit`` is one tensor.

A node's frame follows its inputs (data and control): an ``Enter`` opens a frame inside its input's,
an ``Exit`` returns to the frame around its input's, and any other node is in the innermost frame
of its inputs (TensorFlow requires them all in one frame; a constant inside a body has a control
input from the loop's pivot). A node with no inputs is outside every loop.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import tensor_node

_ENTER = frozenset({"Enter", "RefEnter"})
_EXIT = frozenset({"Exit", "RefExit"})


def loop_frames(graph_def: Any) -> dict[str, str]:
    """``{node name: its innermost frame's name}`` for every node inside a v1 while loop (nodes
    outside every loop are absent; an empty dict for a graph without v1 control flow)."""
    if not any(node.op in _ENTER for node in graph_def.node):
        return {}
    stacks: dict[str, tuple[str, ...]] = {}
    changed, sweeps = True, 0
    while changed and sweeps <= len(graph_def.node):  # back edges (NextIteration -> Merge) need more sweeps
        changed, sweeps = False, sweeps + 1
        for node in graph_def.node:
            inner = max((stacks.get(tensor_node(ref), ()) for ref in node.input), key=len, default=())
            if node.op in _ENTER:
                frame = node.attr["frame_name"].s.decode() or node.name
                stack = (*inner, frame)
            elif node.op in _EXIT:
                stack = inner[:-1]
            else:
                stack = inner
            if stacks.get(node.name, ()) != stack:
                stacks[node.name] = stack
                changed = True
    return {name: stack[-1] for name, stack in stacks.items() if stack}


def loop_pivots(graph_def: Any) -> dict[str, str]:
    """``{frame name: its pivot}``: an ``Identity`` of a loop variable's ``Switch`` (its ``:1``, the body
    side) in that frame, what TensorFlow gives each constant it builds inside the body as a control input
    so that the constant runs in the frame, once per iteration."""
    frames = loop_frames(graph_def)
    conds = {node.name for node in graph_def.node if node.op == "LoopCond"}
    switches = {node.name for node in graph_def.node if node.op == "Switch" and len(node.input) > 1
                and tensor_node(node.input[1]) in conds}
    pivots: dict[str, str] = {}
    for node in graph_def.node:
        if node.op == "Identity" and node.input and node.input[0].endswith(":1") \
                and tensor_node(node.input[0]) in switches and node.name in frames:
            pivots.setdefault(frames[node.name], node.name)
    return pivots
