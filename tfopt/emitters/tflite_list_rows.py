"""The rows of a loop's TensorList elements, read from the steps the same loop unstacks, for TFLite.

A recurrent layer's loop reads its steps from ``TensorListFromTensor(seq [steps, rows, ...])`` and writes
one ``[rows, units]`` state per step into ``TensorListReserve([-1, units], steps)``; both lists are inputs
of the same ``While``. TFLite's converter lowers the reserved list to ``Fill(concat([steps], shape), 0)``
and refuses a *constant* shape whose first element is ``-1`` ("requires element_shape to be static"), but
takes a *computed* one as it is. With the batch pinned, ``rows`` is static for a plain recurrent layer
(``1``), but not when the layer runs on a folded axis the batch does not decide: Keras's
``TimeDistributed(GRU(..., return_sequences=True))`` over an open time axis runs the GRU on
``[batch * time, steps, features]`` rows. :func:`rows_of_loops` pairs each reserved list with the
sequences its loop unstacks (the steps, and a mask's steps, of the same rows), and :func:`write_rows`
gives the list the element shape

    shape' = concat(Shape(seq)[1:2], shape[1:])        (rows as the loop reads them, at run time)

which the converter lowers to a ``Fill`` of run-time size: the file keeps the time axes open. That the
list's rows are the sequence's is the recurrence's structure (each step's state is computed from that
step's rows), not a fact the graph proves; TensorFlow refuses a state of other rows at ``SetItem``
("incompatible shape"), and verification by value in LiteRT finds a wrong pairing.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import DT_INT32, tensor_node

_RESERVE = ("TensorListReserve", "EmptyTensorList")
_WHILE = ("While", "StatelessWhile")


def rows_of_loops(graph_def: Any, shapes: dict[str, tuple[list[int | None], int]]) -> dict[str, int | str]:
    """``{reserved list node: rows}`` for each main-graph ``TensorListReserve``/``EmptyTensorList`` passed
    into a ``While`` together with the sequences its ``TensorListFromTensor`` inputs unstack (a recurrent
    layer's steps, and its mask's): their static axis 1 where ``shapes`` (their inferred static shapes and
    dtypes) knows it, else the first sequence's name (its rows known at run time only: :func:`write_rows`).
    Sequences of different static rows, or of unknown rank, pair with nothing."""
    by_name = {n.name: n for n in graph_def.node}
    out: dict[str, int | str] = {}
    for loop in graph_def.node:
        if loop.op not in _WHILE:
            continue
        inputs = [by_name.get(tensor_node(ref)) for ref in loop.input if not ref.startswith("^")]
        sources = sorted({n.input[0] for n in inputs if n is not None and n.op == "TensorListFromTensor"})
        steps = [shapes.get(source, ([], 0))[0] for source in sources]
        known = {int(shape[1]) for shape in steps if len(shape) > 1 and shape[1] is not None}
        if not sources or any(len(shape) < 2 for shape in steps) or len(known) > 1:
            continue  # no sequence, one of unknown rank, or sequences of different rows: no pairing
        rows: int | str = known.pop() if known else sources[0]
        for node in inputs:
            if node is not None and node.op in _RESERVE:
                out[node.name] = rows
    return out


def write_rows(graph_def: Any, reserve: Any, source: str, source_dtype: int, constant: Any) -> bool:
    """Give ``reserve`` (a main-graph list node whose element shape is ``constant``, a ``Const`` of
    ``[-1, d1, ..., dk]`` that only it reads) the element shape ``concat(Shape(source)[1:2], [d1, ..., dk])``
    (module docstring; ``source_dtype``: the sequence's dtype enum); whether it changed. ``constant``
    keeps ``[d1, ..., dk]``."""
    from tfopt._tf import add_vector_slice, const_value, make_const

    old = [int(d) for d in const_value(constant)]
    if len(old) < 1 or old[0] != -1 or any(d < 0 for d in old[1:]):
        return False
    base = f"{reserve.name}/tfopt_rows"
    if any(n.name.startswith(base + "/") for n in graph_def.node):
        return False
    dtype = constant.attr["dtype"].type
    constant.attr["value"].CopyFrom(make_const(constant.name, old[1:], dtype).attr["value"])

    def const(name: str, values: Any, of: int = dtype) -> str:
        node = graph_def.node.add()
        node.CopyFrom(make_const(f"{base}/{name}", values, of))
        return node.name

    shape = graph_def.node.add(name=f"{base}/shape", op="Shape", input=[source])
    shape.attr["T"].type = source_dtype
    shape.attr["out_type"].type = dtype
    rows = add_vector_slice(graph_def, shape.name, 1, 2, dtype, f"{base}/rows")
    axis = const("axis", 0, DT_INT32)
    concat = graph_def.node.add(name=f"{base}/element_shape", op="ConcatV2", input=[rows, constant.name, axis])
    concat.attr["T"].type = dtype
    concat.attr["N"].i = 2
    concat.attr["Tidx"].type = DT_INT32
    reserve.input[0] = concat.name
    return True

