"""Statistics of tensors inside TF1 (v1 control flow) while loops: every iteration's values, carried out of
the loop by a TensorArray in a statistics-only copy of the graph.

An op inside a v1 while loop (between its ``Enter`` and ``Exit``, :func:`tfopt.graphdef.frames.loop_frames`)
runs once per iteration, so a Session cannot fetch its output ("Retval[k] has already been set"). For each
such tensor ``t`` the copy gets one more loop variable, a TensorArray's flow, that appends ``t`` (flattened)
on every iteration and leaves the loop through an ``Exit``; after it, ``TensorArrayConcatV3`` joins every
iteration's values into one vector, which the Session can fetch::

    outside:  acc = TensorArrayV3(size 0, dynamic_size)
    frame F:  h = Enter(acc.handle, constant)         flow = Merge(Enter(acc.flow), NextIteration(w))
              s = Switch(flow, LoopCond)               i = TensorArraySizeV3(h, Identity(s:1))
              w = TensorArrayWriteV3(h, i, Reshape(t, [-1]), Identity(s:1))
    outside:  TensorArrayConcatV3(acc.handle, Exit(s:0))  ->  [values of t over all iterations]

(``i``, the array's size so far, is the write index: the flow orders every write after the previous
one, so no counter is needed.) The model's own ops are unchanged, so the statistics are exactly those
of an unrolled graph: count, min, max and histogram (what every ``--calibration-method`` reads) cover
each iteration of each sample. The copy holds one batch's values of every iteration at once, as an
unrolled graph would.

Two kinds of loop tensor cannot be carried out this way and stay float (:func:`unmeasured`): one in a
loop nested in another (its values would need an accumulator through each enclosing loop), and one
behind a ``tf.cond`` branch in the body (``Switch`` on a predicate other than the loop's: on the
untaken branch it is dead, and a dead write would end the accumulator's loop variable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.errors import OptionError
from tfopt.graph import (
    DT_FLOAT,
    DT_INT32,
    DT_RESOURCE,
    canonical_tensor,
    consumers,
    is_control,
    node_map,
    tensor_node,
    unique_name,
)
from tfopt.graphdef.frames import loop_frames

NESTED = "inside a nested TF1 while loop: its values per iteration are not gathered"
CONDITIONAL = "behind a tf.cond branch inside a TF1 while loop: its values per iteration are not gathered"
_ENTER = frozenset({"Enter", "RefEnter"})


def unmeasured(graph_def: Any) -> dict[str, str]:
    """``{node: reason}`` for every node inside a v1 while loop whose values per iteration
    :func:`accumulate` cannot gather (module docstring); nodes of other loops are absent."""
    frames = loop_frames(graph_def)
    if not frames:
        return {}
    nodes = node_map(graph_def)
    nested = {frames[n.name] for n in graph_def.node if n.op in _ENTER and tensor_node(n.input[0]) in frames}
    conds = {frames[n.name] for n in graph_def.node if n.op == "LoopCond"}
    out: dict[str, str] = {}
    for name, frame in frames.items():
        if frame in nested:
            out[name] = NESTED
        elif frame not in conds:
            out[name] = "inside a TF1 while loop without a LoopCond: its values per iteration are not gathered"
    # behind a cond: reachable from a Switch whose predicate is no LoopCond, before any Merge
    loop_conds = {n.name for n in graph_def.node if n.op == "LoopCond"}
    stack = [n.name for n in graph_def.node if n.op == "Switch" and n.name in frames
             and tensor_node(n.input[1]) not in loop_conds]
    users = consumers(graph_def)
    while stack:
        name = stack.pop()
        for reader in (user.name for user, i in users.get(name, []) if not is_control(user.input[i])):
            if reader in frames and reader not in out and nodes[reader].op not in ("Merge", "RefMerge"):
                out[reader] = CONDITIONAL
                stack.append(reader)
    return out


def accumulate(graph_def: Any, tensors: Sequence[str]) -> tuple[Any, dict[str, str]]:
    """A copy of ``graph_def`` in which each of ``tensors`` that runs inside a v1 while loop is also
    gathered over every iteration (module docstring), and ``{tensor: the tensor to fetch instead}``
    for those (tensors outside loops are absent; the same ``graph_def`` when there is none).

    Raises:
        OptionError: a tensor whose values per iteration cannot be gathered (:func:`unmeasured`).
    """
    from tfopt._tf import graph_def_class

    frames = loop_frames(graph_def)
    looped = [canonical_tensor(t) for t in dict.fromkeys(tensors) if tensor_node(t) in frames]
    if not looped:
        return graph_def, {}
    refused = unmeasured(graph_def)
    bad = [t for t in looped if tensor_node(t) in refused]
    if bad:
        raise OptionError(f"calibration tensor '{bad[0]}' is {refused[tensor_node(bad[0])]}; leave it out "
                          "(the engine keeps it float)")
    graph = graph_def_class()()
    graph.CopyFrom(graph_def)
    nodes = node_map(graph)
    conds = {frames[n.name]: n.name for n in graph.node if n.op == "LoopCond"}
    iterations = {frames[n.name]: n.attr["parallel_iterations"].i for n in graph.node if n.op in _ENTER}
    fetch: dict[str, str] = {}
    for tensor in looped:
        node = nodes[tensor_node(tensor)]
        frame = frames[node.name]
        dtype = next((node.attr[k].type for k in ("T", "dtype") if k in node.attr), DT_FLOAT)
        fetch[tensor] = _accumulator(graph, tensor, dtype, frame, conds[frame], iterations.get(frame, 10))
    return graph, fetch


def _accumulator(graph: Any, tensor: str, dtype: int, frame: str, loop_cond: str, parallel: int) -> str:
    """Add the nodes of one accumulator (module docstring) to ``graph``; returns the tensor to fetch."""
    from tfopt._tf import make_const

    base = unique_name(graph, f"{tensor_node(tensor)}/loop_values")
    new = [make_const(f"{base}/size", 0, "int32")]
    array = _node(new, f"{base}/array", "TensorArrayV3", [f"{base}/size"], dtype=dtype, dynamic_size=True,
                  clear_after_read=True, identical_element_shapes=False)
    array.attr["element_shape"].shape.unknown_rank = True
    _node(new, f"{base}/handle", "Enter", [f"{base}/array"], T=DT_RESOURCE, frame_name=frame.encode(),
          is_constant=True, parallel_iterations=parallel)
    _node(new, f"{base}/enter", "Enter", [f"{base}/array:1"], T=DT_FLOAT, frame_name=frame.encode(),
          is_constant=False, parallel_iterations=parallel)
    _node(new, f"{base}/merge", "Merge", [f"{base}/enter", f"{base}/next"], T=DT_FLOAT, N=2)
    _node(new, f"{base}/switch", "Switch", [f"{base}/merge", loop_cond], T=DT_FLOAT)
    _node(new, f"{base}/flow", "Identity", [f"{base}/switch:1"], T=DT_FLOAT)
    flat = make_const(f"{base}/flat_shape", [-1], "int32")
    flat.input.append(f"^{base}/flow")  # a constant of the body: in the frame through its control input
    new.append(flat)
    _node(new, f"{base}/flat", "Reshape", [tensor, f"{base}/flat_shape"], T=dtype, Tshape=DT_INT32)
    _node(new, f"{base}/index", "TensorArraySizeV3", [f"{base}/handle", f"{base}/flow"])
    _node(new, f"{base}/write", "TensorArrayWriteV3", [f"{base}/handle", f"{base}/index", f"{base}/flat",
                                                       f"{base}/flow"], T=dtype)
    _node(new, f"{base}/next", "NextIteration", [f"{base}/write"], T=DT_FLOAT)
    _node(new, f"{base}/exit", "Exit", [f"{base}/switch"], T=DT_FLOAT)
    concat = _node(new, f"{base}/values", "TensorArrayConcatV3", [f"{base}/array", f"{base}/exit"], dtype=dtype)
    concat.attr["element_shape_except0"].shape.SetInParent()  # known (rank 0): a loop of 0 iterations gives []
    graph.node.extend(new)
    return f"{base}/values:0"


def _node(into: list[Any], name: str, op: str, inputs: Sequence[str], **attrs: Any) -> Any:
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
    for key, value in attrs.items():
        if key in ("T", "dtype", "Tshape"):
            node.attr[key].type = value
        elif isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, int):
            node.attr[key].i = value
        else:
            node.attr[key].s = value
    into.append(node)
    return node
