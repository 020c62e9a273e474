"""A graph with its open batch pinned, for the TFLite converter.

TFLite's converter lowers a recurrent layer's TensorList loop to builtin ``WHILE`` ops only when
every list's element shape is static. A graph traced with an open batch has element shapes like
``[-1, H]`` (Keras ``TensorArrayV2``, ``TensorArrayUnstack``), which the converter rejects ("requires
element_shape to be static"). :func:`pin_batch` fixes the batch axis of the open-batch inputs to
``batch`` (axis 0, or the one :attr:`TensorSpec.batch_axis` names: a time-major ``[time, batch, n]``
keeps its time open and gets its batch pinned) and then makes the lists' element shapes static:

* ``TensorListFromTensor(t, shape)``: ``shape := t.shape[1:]`` as TensorFlow's shape inference
  gives it once the inputs are pinned (exact);
* the other list ops with an element shape (``TensorListReserve``, ``EmptyTensorList``,
  ``TensorListStack``, ``TensorListGetItem``, ``TensorListPopBack``, ``TensorListGather``) whose ``shape`` is
  ``[-1, d1, ..., dk]`` with every ``d_i`` known: ``shape[0] := rows``, the rows of a step (a per-step
  ``[rows, ...]`` state, as recurrent layers write). A list a ``While`` reserves gets the rows of the steps
  the same loop unstacks (:mod:`tfopt.emitters.tflite_list_rows`): static where the pinned graph knows
  them (Keras 3 ``TimeDistributed(GRU(...))`` over 8 steps of time: ``8 * batch`` rows), else computed
  from that sequence at run time (the same over an open time axis; the converter lowers a computed shape,
  and the file keeps the time open). Another list takes the first dimension of the steps the main graph's
  ``TensorListFromTensor`` lists hold when they all agree on a known one; else, unless some list's rows
  are computed (then it is left open), ``batch``: a guess, which verification by value in LiteRT checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfopt.graph import Model, tensor_node

PINNED_BATCH = 1
# op -> its element_shape input
_ELEMENT_SHAPE = {"TensorListReserve": 0, "EmptyTensorList": 0, "TensorListStack": 1, "TensorListGetItem": 2,
                  "TensorListPopBack": 1, "TensorListGather": 2}


def pin_batch(model: Model, batch: int = PINNED_BATCH) -> Model | None:
    """``model`` with the batch axis (0, or :attr:`TensorSpec.batch_axis`) of each input where it is unknown set to ``batch`` (placeholder
    ``shape`` attribute and :class:`TensorSpec`) and its TensorLists' element shapes made static
    (module docstring), or ``None`` when that changes nothing. When every input's batch is
    already fixed (``--inputs x:4x?x5``) to one size, the element shapes take that size."""
    axis = {s.node: s.batch_axis or 0 for s in model.inputs}  # a time-major [time, batch, n]: axis 1
    open_inputs = {s.node for s in model.inputs if s.shape and len(s.shape) > axis[s.node] and s.shape[axis[s.node]] is None}
    fixed = {s.shape[axis[s.node]] for s in model.inputs if s.shape and len(s.shape) > axis[s.node]
             and s.shape[axis[s.node]] is not None}
    if not open_inputs:
        if len(fixed) != 1:
            return None
        batch = int(fixed.pop() or 0) or batch
    graph_def = type(model.graph_def)()
    graph_def.CopyFrom(model.graph_def)
    for node in graph_def.node:
        if node.name in open_inputs and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            node.attr["shape"].shape.dim[axis[node.name]].size = batch
            node.attr.pop("_output_shapes", None)
    if not _static_element_shapes(graph_def, batch) and not open_inputs:
        return None
    inputs = [dataclasses.replace(s, shape=_pinned(s.shape, axis[s.node], batch)) if s.node in open_inputs and s.shape
              else s for s in model.inputs]
    return model.replace(graph_def=graph_def, inputs=inputs)


def _pinned(shape: tuple[int | None, ...], axis: int, batch: int) -> tuple[int | None, ...]:
    return (*shape[:axis], batch, *shape[axis + 1:])


def _static_element_shapes(graph_def: Any, batch: int) -> bool:
    """Rewrite the ``element_shape`` constants of the TensorList ops (main graph and function
    bodies) in place, as the module docstring says; whether any changed. A constant shared with
    another consumer is left alone."""
    from tfopt.emitters.tflite_list_rows import rows_of_loops, write_rows

    shapes = _inferred_shapes(graph_def)
    # the rows the sequences' static shapes agree on; a sequence read from another loop's list (a stacked
    # LSTM -> GRU) has none until that list's element shape is set, so it does not veto the others'
    unstacked = {shape[1] for shape, _ in shapes.values() if len(shape) > 1 and shape[1] is not None}
    rows: int | None = next(iter(unstacked)) if len(unstacked) == 1 else None
    per_loop = rows_of_loops(graph_def, shapes)
    run_time = any(isinstance(r, str) for r in per_loop.values())
    # rows nothing decides: the batch, a guess, unless some list's rows are read at run time (then the
    # other element shapes stay open: a guessed static row count would contradict the run-time one)
    rows = rows if rows is not None or run_time else batch
    changed = False
    for nodes in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        by_name = {n.name: n for n in nodes}
        uses: dict[str, int] = {}
        for node in nodes:
            for name in node.input:
                source = tensor_node(name.lstrip("^").split(":")[0])
                uses[source] = uses.get(source, 0) + 1
        for node in list(nodes):  # write_rows adds nodes to the main graph
            own = per_loop.get(node.name) if nodes is graph_def.node else None
            if node.op == "TensorListFromTensor":
                known = shapes.get(node.input[0], (None, 0))[0] if nodes is graph_def.node else None
                changed |= _set_shape(by_name, uses, node.input[1],
                                      lambda old, known=known: known[1:] if known else None)
            elif isinstance(own, str):  # rows known at run time only: the sequence's, computed
                constant = by_name.get(tensor_node(node.input[0]))
                if constant is not None and constant.op == "Const" and uses.get(constant.name, 0) == 1:
                    changed |= write_rows(graph_def, node, own, shapes[own][1], constant)
            elif node.op in _ELEMENT_SHAPE:
                rows_here = own if own is not None else rows
                changed |= _set_shape(by_name, uses, node.input[_ELEMENT_SHAPE[node.op]],
                                      lambda old, r=rows_here: [r, *old[1:]] if r is not None and old and old[0] == -1
                                      and -1 not in old[1:] else None)
    return changed


def _set_shape(by_name: dict[str, Any], uses: dict[str, int], name: str, new: Any) -> bool:
    from tfopt._tf import const_value, tf

    node = by_name.get(name.split(":")[0])
    if node is None or node.op != "Const" or uses.get(node.name, 0) != 1:
        return False
    value = const_value(node)
    if value.ndim != 1:  # a scalar -1 is an element shape of unknown rank, not a shape of one axis
        return False
    old = [int(d) for d in value]
    if -1 not in old:
        return False
    shape = new(old)
    if shape is None or len(shape) != len(old) or any(d is None or d < 0 for d in shape):
        return False
    dtype = node.attr["dtype"].type
    node.attr["value"].tensor.CopyFrom(tf().make_tensor_proto([int(d) for d in shape], dtype=tf().as_dtype(dtype)))
    return True


def _inferred_shapes(graph_def: Any) -> dict[str, tuple[list[int | None], int]]:
    """TensorFlow's static shape and dtype (enum) of every main-graph tensor that ``TensorListFromTensor`` reads."""
    t = tf_module()
    wanted = {n.input[0] for n in graph_def.node if n.op == "TensorListFromTensor"}
    if not wanted:
        return {}
    graph = t.Graph()
    with graph.as_default():
        t.compat.v1.import_graph_def(graph_def, name="")
    out = {}
    for name in wanted:
        tensor = graph.get_tensor_by_name(name if ":" in name else name + ":0")
        if tensor.shape.rank is not None:
            out[name] = (tensor.shape.as_list(), int(tensor.dtype.as_datatype_enum))
    return out


def tf_module() -> Any:
    from tfopt._tf import tf

    return tf()
