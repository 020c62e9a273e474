"""What a graph does with each input, read from its consumers, so that made-up values respect it.

Random values that a real input never holds change what is being verified: an attention mask
drawn in 0..7 makes ``(1 - mask) * -10000`` a bias of -70000 that saturates the softmax, and an id
past its table makes the gather fail. Each placeholder is followed forward through ops that move
values without changing what they mean (``Identity``, ``Cast``, ``Reshape``, ``ExpandDims``,
``StridedSlice``, ``Enter`` into a TF1 loop, ...) to the op that gives it a role:

- **ids** - the indices of a ``Gather``/``ResourceGather`` of a table with ``n`` rows (word,
  position and token-type embeddings): uniform in ``[0, n)``; ``n`` the size of the axis gathered along
  (every axis when the graph computes the axis), of the smallest axis a ``GatherNd``'s or a scatter's
  index addresses (each component below its own where the made-up shapes tell k:
  :func:`tfopt.verification.computed_tables.table_sizes`, also for a table the model computes).
- **mask** - subtracted from the constant 1 and scaled by a constant of magnitude >= 1e3 (an
  additive attention bias, ``(1 - mask) * -10000``); for an integer or bool input also ``1 - mask``
  alone, ``mask * -1e9``, a ``Select`` condition or an equality with 0 or 1 (a float compared with 0
  is a value: Keras' ``Masking``); a bool input of rank >= 1 cast to a number (a 0/1 weight: Keras'
  masked pooling divides by its sum, so all False is 0/0): 0/1, a prefix of ones along the last axis
  as padding leaves it (at least one 1 per row).
- **length** - compared with a counter (``Less``/``GreaterEqual``..., as ``sequence_length`` is in a
  TF1 ``dynamic_rnn`` loop and in ``sequence_mask``), a ``ReverseSequence``'s lengths, or a ``Range``
  limit: uniform in ``[1, L]``, ``L`` the length of the dimension it measures.
- **numeral** - a string parsed by ``StringToNumber`` (``tf.strings.to_number``), directly or after
  string ops that keep digits digits (``RegexReplace``, ``StringStrip``, case changes): whole numbers
  in ``[0, 8)`` written out (``b"5"``), where the usual made-up string ``b"a"`` makes the op fail.

Ids win over mask over length over numeral (an id compared with 0 is still an id). Names play no part.
Inputs that are structure (ragged row partitions, segment ids, sparse indices) are drawn last, to fit
the others: :mod:`tfopt.verification.input_structure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import constant_behind

GATHERS = {"Gather": 0, "GatherV2": 0, "ResourceGather": 0}  # op -> its params input (indices: input 1)
# op -> (its table input, or None: the table is the op's output, a ``ScatterNd`` of the shape it is given; its
# indices input). An index's last axis addresses the table's first k axes, each component its own
# (tfopt.verification.computed_tables.table_sizes); where k is not known, every component below the smallest
# of them is valid whatever k is.
ND_GATHERS: dict[str, tuple[int | None, int]] = {
    "GatherNd": (0, 1), "ResourceGatherNd": (0, 1), "ScatterNd": (None, 0), "TensorScatterUpdate": (0, 1),
    "TensorScatterAdd": (0, 1), "TensorScatterSub": (0, 1), "TensorScatterMax": (0, 1), "TensorScatterMin": (0, 1)}
Bound = int | tuple[int, ...]  # below it: one number for every id, or one for each component of the last axis
# Ops an index passes through on its way to a Gather (Keras 3's Embedding wraps negative ids with
# SelectV2(ids < 0, ids + n, ids)); a placeholder reached through them indexes the table.
_INDEX_PATH = {"Identity": (0,), "Cast": (0,), "SelectV2": (1, 2), "Select": (1, 2), "AddV2": (0, 1), "Add": (0, 1),
               "Reshape": (0,), "ExpandDims": (0,), "Squeeze": (0,)}
# Ops that carry a value forward unchanged in meaning (input 0 only).
_CARRY = {"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "StridedSlice", "Slice", "Transpose", "Tile",
          "BroadcastTo", "Enter", "Switch", "Merge", "ToFloat", "ToInt32", "ToInt64",
          "RegexReplace", "StaticRegexReplace", "StringStrip", "StringLower", "StringUpper"}
_COMPARE = {"Less", "LessEqual", "Greater", "GreaterEqual"}
_MAX_DEPTH = 12
BIG_BIAS = 1e3  # |c| at least this in mask * c: an additive "minus infinity" bias, not a scale


def index_bounds(graph_def: Any) -> dict[str, int]:
    """Placeholder name -> the size of the smallest table axis it indexes (where a gather's table is a
    constant or a variable of known shape: the axis it gathers along, every addressed axis for a
    ``GatherNd`` or a scatter, whose index components :func:`tfopt.verification.computed_tables.table_sizes`
    bounds each by its own axis at the made-up shapes): valid ids are ``[0, bound)``. A table the model
    computes is sized at the made-up shapes: :mod:`tfopt.verification.computed_tables`."""
    from tfopt.graph import node_map

    nodes = node_map(graph_def)
    bounds: dict[str, int] = {}
    for node in graph_def.node:
        rows = smallest(table_dims(nodes, node), gather_axis(nodes, node) if node.op in GATHERS else None)
        if rows is None:
            continue
        for name in gather_indexers(graph_def, nodes, node):
            bounds[name] = min(rows, bounds.get(name, rows))
    return bounds


def indices_input(node: Any) -> int | None:
    """The input of ``node`` that holds indices into a table (None: no gather or scatter)."""
    if node.op in GATHERS:
        return 1 if len(node.input) > 1 else None
    found = ND_GATHERS.get(node.op)
    return found[1] if found is not None and len(node.input) > max(found[1], found[0] or 0) else None


def gather_axis(nodes: Mapping[str, Any], node: Any) -> int | None:
    """The axis a ``Gather``/``GatherV2``/``ResourceGather`` gathers along (negative: from the end; a
    ``ResourceGather``'s ``batch_dims``); None where the graph computes it (any axis may be the one)."""
    if node.op == "ResourceGather":
        return int(node.attr["batch_dims"].i)
    if node.op != "GatherV2":
        return 0
    given = constant_behind(nodes, node.input[2]) if len(node.input) > 2 else None
    return int(given.reshape(())) if given is not None and given.size == 1 else None


def gather_indexers(graph_def: Any, nodes: Mapping[str, Any], gather: Any) -> list[str]:
    """The placeholders whose values reach ``gather``'s indices through the ops an index passes through."""
    from tfopt.graph import ancestors

    def off_path(node: Any, ref: str) -> bool:  # follow only the inputs an index passes through
        return not any(i < len(node.input) and node.input[i] == ref for i in _INDEX_PATH.get(node.op, ()))

    index = indices_input(gather)
    if index is None:
        return []
    return sorted(name for name in ancestors(graph_def, [gather.input[index]], follow_control=False, skip_edge=off_path)
                  if nodes[name].op == "Placeholder")


def table_dims(nodes: Mapping[str, Any], gather: Any) -> list[int | None] | None:
    """The dimensions of the table ``gather`` (a gather or scatter) indexes when it is a constant, a variable
    (None where its shape leaves one unknown), or a ``ScatterNd``'s constant shape; None when the graph
    computes it."""
    from tfopt.graph import tensor_node

    if indices_input(gather) is None:
        return None
    table = GATHERS.get(gather.op, ND_GATHERS.get(gather.op, (None,))[0])
    if table is None:  # ScatterNd: the shape it is given
        given = constant_behind(nodes, gather.input[2])
        return [int(v) if v > 0 else None for v in given.ravel()] if given is not None and given.ndim == 1 else None
    name = tensor_node(gather.input[table])
    while name in nodes and nodes[name].op in ("Identity", "ReadVariableOp") and nodes[name].input:
        name = tensor_node(nodes[name].input[0])
    node = nodes.get(name)
    if node is None:
        return None
    if node.op == "Const":
        dims = node.attr["value"].tensor.tensor_shape.dim
    elif node.op in ("VarHandleOp", "VariableV2", "Variable", "ImmutableConst"):  # ImmutableConst: tfopt.external
        dims = node.attr["shape"].shape.dim
    else:
        return None
    return [int(d.size) if d.size > 0 else None for d in dims] or None


def smallest(dims: Sequence[int | None] | None, axis: int | None) -> int | None:
    """The size of ``axis`` of ``dims`` (None: the smallest of them all, each known), or None."""
    if not dims:
        return None
    if axis is None:
        return None if None in dims else min(d for d in dims if d is not None)
    return dims[axis] if -len(dims) <= axis < len(dims) else None


def tighter(a: Bound, b: Bound) -> Bound:
    """The bound both ``a`` and ``b`` hold (per component where both are; one number otherwise)."""
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) != len(b):
        return min(*a, *b)
    both = np.minimum(np.asarray(a), np.asarray(b))
    return tuple(int(v) for v in both) if both.ndim else int(both)


def input_roles(graph_def: Any) -> dict[str, tuple[str, Bound]]:
    """Placeholder name -> ``("ids", rows)``, ``("mask", 0)``, ``("length", 0)`` or ``("numeral", 0)`` (see the module
    docstring); placeholders with no such role are left out."""
    from tfopt.graph import consumers, dtype_name, node_map

    roles: dict[str, tuple[str, Bound]] = {name: ("ids", rows) for name, rows in index_bounds(graph_def).items()}
    nodes, users = node_map(graph_def), consumers(graph_def)
    for node in graph_def.node:
        if node.op in ("Placeholder", "PlaceholderWithDefault") and node.name not in roles:
            role = _role(node.name, nodes, users)
            if role == "weak mask":  # a float compared with 0 is a value (Keras Masking), not a mask
                role = "" if dtype_name(node.attr["dtype"].type).startswith(("float", "bfloat")) else "mask"
            if not role and dtype_name(node.attr["dtype"].type) == "bool" and _ranked(node) \
                    and any(u.op == "Cast" for u, _ in users.get(node.name, [])):
                role = "mask"  # a bool weight (a scalar bool is a switch: training, not a mask)
            if role:
                roles[node.name] = (role, 0)
    return roles


def _ranked(node: Any) -> bool:
    """Whether the placeholder's declared shape has rank >= 1 (an unknown rank is not known to)."""
    shape = node.attr["shape"].shape
    return not shape.unknown_rank and len(shape.dim) >= 1


def _role(start: str, nodes: Mapping[str, Any], users: Mapping[str, list[tuple[Any, int]]]) -> str:
    found: set[str] = set()
    seen, frontier = {start}, [start]
    for _ in range(_MAX_DEPTH):
        nxt = []
        for name in frontier:
            for user, index in users.get(name, []):
                role = _consumer_role(user, index, nodes, users)
                if role:
                    found.add(role)
                elif user.op in _CARRY and index == 0 and user.name not in seen:
                    seen.add(user.name)
                    nxt.append(user.name)
        frontier = nxt
    return next((role for role in ("mask", "weak mask", "length", "numeral") if role in found), "")


def _consumer_role(user: Any, index: int, nodes: Mapping[str, Any], users: Mapping[str, list[tuple[Any, int]]]) -> str:
    """"mask" (any dtype), "weak mask" (a mask when the input is not float), "length", "numeral" or ""."""
    if user.op == "StringToNumber":
        return "numeral"
    other = constant_behind(nodes, user.input[1 - index]) if index in (0, 1) and len(user.input) > 1 else None
    if user.op == "Sub" and index == 1 and other is not None and other.size and np.all(other == 1):
        # (1 - mask) * -10000: a mask whatever its dtype; 1 - x alone may be arithmetic on a float
        biased = any(_big_bias(u, i, nodes) for u, i in users.get(user.name, []))
        return "mask" if biased else "weak mask"
    if _big_bias(user, index, nodes):
        return "weak mask"  # mask * -1e9 (a float times 1e3 may be a scale)
    if user.op in ("Select", "SelectV2") and index == 0:
        return "weak mask"
    if user.op in ("Equal", "NotEqual") and other is not None and other.size == 1 and float(other.flat[0]) in (0, 1):
        return "weak mask"
    if (user.op in _COMPARE and other is None) or (user.op in ("ReverseSequence", "Range") and index == 1):
        return "length"
    return ""


def _big_bias(user: Any, index: int, nodes: Mapping[str, Any]) -> bool:
    other = constant_behind(nodes, user.input[1 - index]) if index in (0, 1) and len(user.input) > 1 else None
    return user.op in ("Mul", "MulNoNan") and other is not None and bool(other.size) \
        and bool(np.all(np.abs(other) >= BIG_BIAS))



def fill(role: tuple[str, Bound] | None, shape: tuple[int, ...], dtype: str, rng: np.random.Generator,
         length: int) -> np.ndarray | None:
    """Values for an input of ``role`` (None: no role; the caller draws as usual)."""
    if role is None:
        return None
    kind, rows = role
    if isinstance(rows, tuple) and (not shape or shape[-1] != len(rows)):
        rows = min(rows)  # components on another axis than the last: every id below the smallest
    if kind == "numeral":
        return np.vectorize(lambda n: str(n).encode(), otypes=[object])(rng.integers(0, 8, size=shape))
    if dtype == "string":
        return None
    if kind == "ids":
        values = rng.integers(0, np.maximum(1, np.asarray(rows)), size=shape)  # per component: the last axis
    elif kind == "mask":
        last = shape[-1] if shape else 1
        keep = rng.integers(1, max(1, last) + 1, size=(*shape[:-1], 1) if shape else ())
        values = (np.arange(last) < keep).astype(np.int64) if shape else np.ones((), np.int64)
        values = np.broadcast_to(values, shape)
    else:
        values = rng.integers(1, max(1, length) + 1, size=shape)
    out_dtype = "float32" if dtype == "bfloat16" else "bool" if dtype == "bool" else dtype
    return np.asarray(values).astype(out_dtype)


def random_inputs_rejected(exc: Exception, specs: Sequence[Any], graph_def: Any,
                            feeds: Mapping[str, Any], original: Any) -> Exception:
    """An integer input whose valid range the graph does not show (ids into a table tfopt cannot
    see, a class index...) can make the original model fail on the random data: say which, when
    the model runs with those inputs at 0 (a shape tie or any other refusal is not their range)."""
    from tfopt.errors import MadeUpInputsError, TfoptError, one_line

    known = index_bounds(graph_def) if graph_def is not None else {}
    ints = [s for s in specs if s.dtype.startswith(("int", "uint")) and s.name not in known]
    if isinstance(exc, TfoptError) or not ints:
        return exc
    try:
        original({**feeds, **{s.name: np.zeros_like(feeds[s.name]) for s in ints}})
    except Exception:
        return exc
    first = one_line(exc)
    drawn = ", ".join(f"'{s.name}' ({s.dtype}, drawn in [0, {int(feeds[s.name].max()) + 1}))" for s in ints)
    return MadeUpInputsError(f"the original model fails on tfopt's random verification inputs for {drawn}: "
                             f"{type(exc).__name__}: {first}. Integer inputs are ids or indices whose range tfopt "
                             "cannot see: give real data (convert: --calibration or --eval-data), or skip this "
                             "check with --no-verify")
