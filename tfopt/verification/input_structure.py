"""Inputs whose valid values are tied to other inputs by the ops that consume them.

Some integer inputs are not values but structure: made up in ``[0, 8)`` they describe a tensor that
does not exist. TensorFlow refuses some (``SegmentSum`` checks its ids are sorted, a ``from_row_lengths``
asserts), runs others anyway (a frozen graph's ``RaggedTensorToTensor`` fills what it can) and then a
converter refuses them (tf2onnx's ``ScatterND``: ``values:1, lengths:3``), where the inputs were at fault.
Each placeholder is followed forward (through ``Identity``/``Cast``/``Enter``..., and into the library
functions it is passed to, :mod:`tfopt.verification.body_scopes`) to the op that consumes it as structure:

- **row_lengths** / **row_splits** / **value_rowids** / **nrows** - a row partition of ``RaggedTensorToTensor``
  (each of its ``row_partition_types``; ``FIRST_DIM_SIZE``: the rows value ids index, at least one, as
  is a ``num_segments`` input) or the nested splits of ``RaggedTensorToSparse``,
  ``RaggedTensorToVariant``, ``RaggedGather``; lengths also as ``concat([0], cumsum(lengths))``, the
  splits ``RaggedTensor.from_row_lengths`` builds. Lengths add up to the count of what they split (the
  values' leading dimension, or the next partition's rows: value row ids imply theirs, last id + 1, so a
  nested level's ids, ``from_value_rowids`` inside ``from_row_splits``, end at their last row and are
  drawn first), splits start at 0, never decrease and end at that count, value ids are sorted and below
  the number of rows (a nested level's below the count of the value row ids above them);
- **sorted_ids** - the segment ids of ``Segment*`` and ``SparseSegment*``: sorted;
- **bounded_ids** - ids below a bound: ``UnsortedSegment*`` (``num_segments``: a constant, an input, or
  ``tf.shape(x)[i]``, the size of an input's axis through the ops :func:`_dim` follows), a ``SparseSegment*``'s
  indices (the data's rows), a ``RaggedGather``'s indices (the params' rows);
- **sparse_indices** / **dense_shape** - a sparse tensor fed as separate inputs (``SparseToDense``,
  ``SparseTensorDenseMatMul``, ``SparseReshape``...): indices inside the dense shape, distinct and in
  canonical (row-major) order; a dense shape of positive sizes that holds that many indices, and for a
  ``SparseTensorDenseMatMul`` the contracted size of the dense operand.

A :class:`Need` says what the input must satisfy and which tensors decide it (:class:`Ref`: another
input's dimension or value, or a constant), resolved against the other made-up inputs once their shapes
are chosen: the size search chooses the values' count, and the structure follows it
(:mod:`tfopt.verification.structured_values` draws the values). Names play no part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tfopt.graphdef.scopes import Scope
from tfopt.verification.body_scopes import MAX_DEPTH, constant, follow

VALUE, ROWS = -1, -2  # a Ref's axis: the input's value; the rows value row ids imply (their last + 1)


@dataclass(frozen=True)
class Ref:
    """A number the made-up inputs decide: dimension ``axis`` of ``input`` (``axis`` :data:`VALUE`: its
    value; :data:`ROWS`: the rows its value row ids imply, their last + 1), plus ``offset``; or a
    constant ``value``."""

    input: str = ""
    axis: int = 0
    offset: int = 0
    value: tuple[int, ...] | None = None

    def resolve(self, feeds: Mapping[str, Any]) -> np.ndarray | None:
        """Its value on ``feeds`` (None: an input not fed, or an axis it does not have)."""
        if self.value is not None:
            return np.asarray(self.value, dtype=np.int64)
        if self.input not in feeds:
            return None
        fed = np.asarray(feeds[self.input])
        if self.axis < 0 and fed.dtype.kind not in "iu":
            return None
        if self.axis == ROWS:
            return np.asarray((int(fed.max()) + 1 if fed.size else 0) + self.offset)
        if self.axis == VALUE:
            return fed.astype(np.int64) + self.offset
        return np.asarray(fed.shape[self.axis] + self.offset) if self.axis < fed.ndim else None


@dataclass(frozen=True)
class Need:
    """What an input must hold: ``kind`` (see the module docstring), ``why`` (the op, ``Op 'node'`` and
    where), ``count`` (what a partition splits, a segment's or index's data rows), ``bound`` (a partition's
    rows, ``num_segments``, the dense shape), ``axis``/``size``: a dense shape's entry tied to a size;
    ``at``: the node that reads it (and where); ``last_row``: value row ids whose last row holds a value
    (a nested level's: the rows they imply, last id + 1, are the rows the level above splits)."""

    kind: str
    why: str
    count: Ref | None = None
    bound: Ref | None = None
    axis: int = -1
    size: Ref | None = None
    at: str = ""
    last_row: bool = False


_CARRY = {"Identity", "Cast", "Enter", "Switch", "_SwitchN", "Merge", "StopGradient", "EnsureShape", "ToInt32",
          "ToInt64", "CheckNumerics", "Snapshot"}  # input 0 carried on unchanged
_SEGMENT = {"SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin", "SegmentProd", "SegmentSumV2",
            "SegmentMaxV2", "SegmentMinV2", "SegmentProdV2"}
_UNSORTED = {"UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd"}
_SPARSE_SEGMENT = {"SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN", "SparseSegmentSumWithNumSegments",
                   "SparseSegmentMeanWithNumSegments", "SparseSegmentSqrtNWithNumSegments"}
# op -> (indices input, dense shape input) of each sparse tensor it takes
_SPARSE = {"SparseToDense": ((0, 1),), "SparseTensorDenseMatMul": ((0, 2),), "SparseReshape": ((0, 1),),
           "SparseTensorDenseAdd": ((0, 2),), "SparseReduceSum": ((0, 2),), "SparseReduceMax": ((0, 2),),
           "SparseReduceSumSparse": ((0, 2),), "SparseReduceMaxSparse": ((0, 2),), "SparseSoftmax": ((0, 2),),
           "SparseFillEmptyRows": ((0, 2),), "SparseReorder": ((0, 2),), "SparseSlice": ((0, 2),),
           "SparseAdd": ((0, 2), (3, 5)), "SparseDenseCwiseMul": ((0, 2),), "SparseDenseCwiseAdd": ((0, 2),),
           "SparseDenseCwiseDiv": ((0, 2),)}
_SPLITS_THEN_VALUES = {"RaggedTensorToSparse": 1, "RaggedTensorToVariant": 1, "RaggedGather": 2}  # values at -n
_UNARY_KEEP = {"Relu", "Relu6", "Tanh", "Sigmoid", "Neg", "Abs", "Exp", "Log", "Square", "Sqrt", "Elu", "Selu",
               "Softplus", "Floor", "Round", "Sign", "BiasAdd", "Cumsum", "Softmax", "LeakyRelu"}
_BINARY_KEEP = {"Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum", "FloorDiv", "FloorMod"}


def input_needs(graph_def: Any, names: Any = None) -> dict[str, Need]:
    """Placeholder name -> the :class:`Need` of the first structure-consuming op it reaches (only such
    inputs; ``names``: only these placeholders)."""
    main = Scope(graph_def)
    out: dict[str, Need] = {}
    for node in graph_def.node:
        if node.op in ("Placeholder", "PlaceholderWithDefault") and (names is None or node.name in names):
            need = _walk(main, node.name)
            if need is not None:
                out[node.name] = need
    return out


def _walk(main: Scope, start: str) -> Need | None:
    """Forward from ``start`` with its state: ``raw`` (its values), ``cumsum`` (their running sum),
    ``lengths`` (``concat([0], cumsum)``: row splits made from it as row lengths)."""
    found: list[Need] = []

    def visit(scope: Scope, user: Any, index: int, state: str) -> tuple[str, str | None]:
        need = _anchor(scope, user, index, state)
        if need is None:
            return "on", _after(scope, user, index, state)
        found.append(replace(need, at=f"'{user.name}'{scope.where}"))
        return "stop", None

    follow(main, start, "raw", visit)
    return found[0] if found else None


def _after(scope: Scope, user: Any, index: int, state: str) -> str | None:
    """The state of ``user``'s value when input ``index`` is in ``state`` (None: the walk stops)."""
    if user.op in _CARRY and index == 0:
        return state
    if user.op == "Cumsum" and index == 0 and state == "raw" and not user.attr["exclusive"].b \
            and not user.attr["reverse"].b:
        return "cumsum"
    if user.op == "ConcatV2" and state == "cumsum" and index == 1 and len(user.input) >= 3:
        head = constant(scope, user.input[0])
        return "lengths" if head is not None and head.shape == (1,) and head[0] == 0 else None
    return None


def _why(scope: Scope, user: Any, detail: str = "") -> str:
    return f"{user.op} '{user.name}'{detail}{scope.where}"


def _anchor(scope: Scope, user: Any, index: int, state: str) -> Need | None:
    """The :class:`Need` when ``user`` consumes input ``index`` (in ``state``) as structure."""
    data = [r for r in user.input if not r.startswith("^")]
    if user.op == "RaggedTensorToTensor" and index >= 3:
        return _partition(scope, user, data, index - 3, state)
    if user.op in _SPLITS_THEN_VALUES:
        splits = len(data) - _SPLITS_THEN_VALUES[user.op]
        if index < splits and state in ("raw", "lengths"):
            count = _dim(scope, data[index + 1], 0, -1 if index + 1 < splits else 0)
            return Need("row_splits" if state == "raw" else "row_lengths", _why(scope, user), count)
        if user.op == "RaggedGather" and index == len(data) - 1 and state == "raw":
            return Need("bounded_ids", _why(scope, user, " (indices)"), bound=_dim(scope, data[0], 0, -1))
        return None
    if state != "raw":
        return None
    if user.op in _SEGMENT and index == 1:
        return Need("sorted_ids", _why(scope, user, " (segment ids)"), count=_dim(scope, data[0], 0))
    if user.op in _UNSORTED and index == 1 and len(data) > 2:
        return Need("bounded_ids", _why(scope, user, " (segment ids)"), _dim(scope, data[0], 0), _value(scope, data[2]))
    if (user.op in _UNSORTED and index == 2) or (user.op in _SPARSE_SEGMENT and index == 3):
        return Need("nrows", _why(scope, user, " (num_segments)"))
    if user.op in _SPARSE_SEGMENT and index in (1, 2):
        if index == 1:
            return Need("bounded_ids", _why(scope, user, " (indices)"), bound=_dim(scope, data[0], 0))
        return Need("sorted_ids", _why(scope, user, " (segment ids)"),
                    bound=_value(scope, data[3]) if len(data) > 3 else None)
    for indices, shape in _SPARSE.get(user.op, ()):
        if index == indices:
            return Need("sparse_indices", _why(scope, user, " (indices)"), bound=_value(scope, data[shape]))
        if index == shape:
            return _dense_shape(scope, user, data, indices)
    return None


def _partition(scope: Scope, user: Any, data: list[str], k: int, state: str) -> Need | None:
    """Partition ``k`` of a ``RaggedTensorToTensor`` (its type from ``row_partition_types``). A level's
    count is what the next level splits: the values' leading dimension after the last, else the next
    partition's rows: its splits' length - 1, its lengths' length, or the rows its value row ids imply
    (their last + 1: TensorFlow's ``from_value_rowids`` without ``nrows``). Nested value row ids are
    bounded by the rows of value row ids above them (the outer ids' count)."""
    types = [t.decode() for t in user.attr["row_partition_types"].list.s]
    if k >= len(types):
        return None
    if types[k] == "FIRST_DIM_SIZE":  # the number of rows value row ids index
        return Need("nrows", _why(scope, user, " (FIRST_DIM_SIZE)")) if state == "raw" else None
    levels = [i for i, t in enumerate(types) if t != "FIRST_DIM_SIZE"]
    nxt = [i for i in levels if i > k]
    if not nxt:
        count = _dim(scope, data[1], 0)  # the values' leading dimension
    else:  # the next partition's rows
        after, ref = types[nxt[0]], data[3 + nxt[0]]
        count = _dim(scope, ref, 0, -1) if after == "ROW_SPLITS" else _dim(scope, ref, 0) \
            if after == "ROW_LENGTHS" else _implied_rows(scope, ref)
    why = _why(scope, user, f" ({types[k]})")
    if types[k] == "ROW_SPLITS" and state in ("raw", "lengths"):
        return Need("row_splits" if state == "raw" else "row_lengths", why, count)
    if types[k] == "ROW_LENGTHS" and state == "raw":
        return Need("row_lengths", why, count)
    if types[k] == "VALUE_ROWIDS" and state == "raw":
        if k == 1 and types[0] == "FIRST_DIM_SIZE":
            return Need("value_rowids", why, count, _value(scope, data[3]))
        above = [i for i in levels if i < k]
        bound = _dim(scope, data[3 + above[-1]], 0) if above and types[above[-1]] == "VALUE_ROWIDS" else None
        return Need("value_rowids", why, count, bound, last_row=bool(above))
    return None


def _implied_rows(scope: Scope, ref: str) -> Ref | None:
    """The rows the value row ids ``ref`` imply (their last + 1), as a :class:`Ref`."""
    value = _value(scope, ref)
    if value is None:
        return None
    if value.value is not None:
        return Ref(value=(max(value.value) + 1 if value.value else 0,))
    return replace(value, axis=ROWS)


def _dense_shape(scope: Scope, user: Any, data: list[str], indices: int) -> Need:
    """A sparse tensor's dense shape: room for its indices; a ``SparseTensorDenseMatMul``'s contracted
    size that of the dense operand ``b``."""
    count = _dim(scope, data[indices], 0)
    if user.op != "SparseTensorDenseMatMul":
        return Need("dense_shape", _why(scope, user, " (dense shape)"), count)
    axis = 0 if user.attr["adjoint_a"].b else 1
    size = _dim(scope, data[3], 1 if user.attr["adjoint_b"].b else 0)
    return Need("dense_shape", _why(scope, user, " (dense shape)"), count, axis=axis, size=size)


def _dim(scope: Scope, ref: str, axis: int, offset: int = 0, depth: int = 0) -> Ref | None:
    """Dimension ``axis`` of the tensor ``ref`` names, as a :class:`Ref` (None: not followed back to an
    input or a constant), through ops that keep that dimension."""
    known = constant(scope, ref)
    if known is not None:
        return Ref(value=(int(known.shape[axis]) + offset,)) if axis < known.ndim else None
    scope, node = scope.resolve(ref)
    if node is None or depth > MAX_DEPTH:
        return None
    if node.op in ("Placeholder", "PlaceholderWithDefault"):
        return Ref(node.name, axis, offset)
    if node.op == "Const":  # one too large to fold: its shape alone
        dims = node.attr["value"].tensor.tensor_shape.dim
        return Ref(value=(int(dims[axis].size) + offset,)) if axis < len(dims) else None
    data = [r for r in node.input if not r.startswith("^")]
    if not data:
        return None
    if node.op in _CARRY or node.op in _UNARY_KEEP:
        return _dim(scope, data[0], axis, offset, depth + 1)
    if node.op in _BINARY_KEEP and len(data) == 2:  # the operand that is not a constant (broadcast)
        operand = data[1] if constant(scope, data[0]) is not None else data[0]
        return _dim(scope, operand, axis, offset, depth + 1)
    if node.op == "MatMul" and axis == 0 and not node.attr["transpose_a"].b:
        return _dim(scope, data[0], 0, offset, depth + 1)
    if node.op == "ConcatV2" and axis == 0 and len(data) >= 3:
        along = constant(scope, data[-1])
        pieces = [constant(scope, r) for r in data[:-1]]
        open_ = [r for r, p in zip(data[:-1], pieces, strict=True) if p is None]
        if along is None or int(along) != 0 or len(open_) != 1:
            return None
        fixed = sum(int(p.shape[0]) for p in pieces if p is not None and p.ndim)
        return _dim(scope, open_[0], 0, offset + fixed, depth + 1)
    return None


def _value(scope: Scope, ref: str, depth: int = 0) -> Ref | None:
    """The value of ``ref`` as a :class:`Ref`: a constant, or an input carried unchanged."""
    known = constant(scope, ref)
    if known is not None:
        return Ref(value=tuple(int(v) for v in np.atleast_1d(known).ravel()))
    scope, node = scope.resolve(ref)
    if node is None or depth > MAX_DEPTH:
        return None
    if node.op in ("Placeholder", "PlaceholderWithDefault"):
        return Ref(node.name, VALUE)
    data = [r for r in node.input if not r.startswith("^")]
    if node.op == "StridedSlice" and len(data) == 4 and node.attr["shrink_axis_mask"].i == 1:
        return _size_of(scope, data, depth)
    return _value(scope, data[0], depth + 1) if node.op in _CARRY and data else None


def _size_of(scope: Scope, data: list[str], depth: int) -> Ref | None:
    """``tf.shape(x)[i]`` (a ``StridedSlice`` of a ``Shape``, ``data`` its inputs): dimension ``i`` of ``x``
    (a ``num_segments`` the graph computes from a tensor's size)."""
    begin, stride = constant(scope, data[1]), constant(scope, data[3])
    inner, shape = scope.resolve(data[0])
    if shape is None or shape.op != "Shape" or begin is None or begin.size != 1 or stride is None \
            or stride.size != 1 or int(stride.ravel()[0]) != 1 or int(begin.ravel()[0]) < 0:
        return None
    return _dim(inner, shape.input[0], int(begin.ravel()[0]), 0, depth + 1)


WHOLE = ("row_lengths", "row_splits", "value_rowids", "sorted_ids")  # structure across the rows


def fed_whole(graph_def: Any, axes: Mapping[str, int | None]) -> dict[str, int | None]:
    """``axes`` (input -> the axis cut into samples) with None for the inputs a ragged partition or sorted
    segment ids tie together: the structure, the op's other structure inputs and the inputs whose
    dimension they split. One value of
    ``values [n]`` is no sample: its row lengths ``[3]``, fed whole beside it, would add up to ``n``, not 1;
    one row of a ``segment_sum``'s data is no sample either (its id alone is no longer from 0), nor ids below
    another input's batch size (``num_segments`` ``tf.shape(x)[0]``: fed whole with ``x`` and their data), nor one
    atom of a graph network with its neighbour list (:func:`tfopt.verification.computed_tables.cut_tables`)."""
    from tfopt.verification.computed_tables import cut_tables

    if graph_def is None:
        return dict(axes)
    needs = input_needs(graph_def, set(axes))
    ops = {need.at for need in needs.values() if need.kind in WHOLE}
    tied: set[str] = set()
    for name, need in needs.items():
        bound = need.bound
        below_batch = need.kind == "bounded_ids" and bound is not None and bound.input != name \
            and bound.axis >= 0 and axes.get(bound.input) == bound.axis  # segment ids below tf.shape(x)[0]
        if need.at in ops or below_batch:  # every input the same op reads as structure, and those whose rows it counts
            tied |= {name} | {r.input for r in (need.count, need.bound) if r is not None and r.input and r.axis >= 0}
    tied |= cut_tables(graph_def, axes)  # a neighbour list into the batch's own rows (a graph network)
    return {k: None if k in tied else a for k, a in axes.items()}
