"""The one strict comparison used by tfopt's verification and by its tests.

``compare`` checks shape, then dtype, then values with ``|got - ref| <= atol + rtol * |ref|``
(numpy's ``allclose`` rule) and returns the error statistics; an empty output never passes
(a verification that compared nothing is not a pass); ``assert_equivalent`` raises
:class:`~tfopt.errors.VerificationError` naming the first output that differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import VerificationError
from tfopt.graph import TensorSpec
from tfopt.tolerances import FREEZE_ATOL, FREEZE_RTOL

DEFAULT_ATOL = FREEZE_ATOL  # (see tfopt.tolerances)
DEFAULT_RTOL = FREEZE_RTOL


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs_err: float
    mean_abs_err: float
    ok: bool
    problem: str = ""


def random_inputs(specs: Sequence[TensorSpec], *, seed: int = 0, batch: int = 2, dynamic_dim: int = 8,
                  shapes: Mapping[str, Sequence[int]] | None = None, graph_def: Any = None) -> dict[str, np.ndarray]:
    """Seeded inputs matching ``specs``; unknown dims become ``batch`` (first) or ``dynamic_dim``,
    unless ``shapes`` gives an input's whole shape.

    Floats are standard normal, integers uniform in [0, 8), bools False, strings ``b"a"``. With
    ``graph_def``, an input used as the indices of a Gather (an Embedding) stays below the table's
    first dimension (see :func:`index_bounds`); a float one (Keras 2 declared an Embedding's input
    float32 and casts it) then holds whole numbers, as ids do.
    """
    bounds = index_bounds(graph_def) if graph_def is not None else {}
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        dims = spec.shape if spec.shape is not None else (batch,)
        shape = tuple((batch if i == 0 else dynamic_dim) if d is None else d for i, d in enumerate(dims))
        if shapes and spec.name in shapes:
            shape = tuple(int(d) for d in shapes[spec.name])
        if spec.dtype in ("float16", "float32", "float64", "bfloat16") and spec.name in bounds:
            ids = rng.integers(0, max(1, min(8, bounds[spec.name])), size=shape)
            out[spec.name] = ids.astype(spec.dtype if spec.dtype != "bfloat16" else "float32")
        elif spec.dtype in ("float16", "float32", "float64", "bfloat16"):
            out[spec.name] = rng.standard_normal(shape).astype(spec.dtype if spec.dtype != "bfloat16" else "float32")
        elif spec.dtype.startswith(("int", "uint")):
            out[spec.name] = rng.integers(0, max(1, min(8, bounds.get(spec.name, 8))), size=shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            out[spec.name] = np.zeros(shape, dtype=bool)
        elif spec.dtype == "string":
            out[spec.name] = np.full(shape, b"a", dtype=object)
        else:
            raise VerificationError(f"input '{spec.name}': cannot generate data of dtype {spec.dtype}; "
                                    "give inputs explicitly")
    return out


GATHERS = {"Gather": 0, "GatherV2": 0, "ResourceGather": 0}  # op -> its params input
# Ops an index passes through on its way to a Gather (Keras 3's Embedding wraps negative ids with
# SelectV2(ids < 0, ids + n, ids)); a placeholder reached through them indexes the table.
_INDEX_PATH = {"Identity": (0,), "Cast": (0,), "SelectV2": (1, 2), "Select": (1, 2), "AddV2": (0, 1), "Add": (0, 1),
               "Reshape": (0,), "ExpandDims": (0,), "Squeeze": (0,)}


def index_bounds(graph_def: Any) -> dict[str, int]:
    """Placeholder name -> the number of rows of the smallest table it indexes (where a Gather's
    table is a constant or a variable of known shape): valid ids are ``[0, bound)``."""
    from tfopt.graph import node_map, tensor_node

    nodes = node_map(graph_def)
    bounds: dict[str, int] = {}
    for node in graph_def.node:
        if node.op not in GATHERS or len(node.input) < 2:
            continue
        rows = _rows(nodes, tensor_node(node.input[GATHERS[node.op]]))
        if rows is None:
            continue
        seen, todo = set(), [tensor_node(node.input[1])]
        while todo:
            name = todo.pop()
            if name in seen or name not in nodes:
                continue
            seen.add(name)
            src = nodes[name]
            if src.op == "Placeholder":
                bounds[name] = min(rows, bounds.get(name, rows))
            for i in _INDEX_PATH.get(src.op, ()):
                if i < len(src.input) and not src.input[i].startswith("^"):
                    todo.append(tensor_node(src.input[i]))
    return bounds


def _rows(nodes: Mapping[str, Any], name: str) -> int | None:
    from tfopt.graph import tensor_node

    while name in nodes and nodes[name].op in ("Identity", "ReadVariableOp") and nodes[name].input:
        name = tensor_node(nodes[name].input[0])
    node = nodes.get(name)
    if node is None:
        return None
    if node.op == "Const":
        dims = node.attr["value"].tensor.tensor_shape.dim
    elif node.op in ("VarHandleOp", "VariableV2", "Variable"):
        dims = node.attr["shape"].shape.dim
    else:
        return None
    return int(dims[0].size) if dims and dims[0].size > 0 else None


def compare(reference: Mapping[str, Any], got: Mapping[str, Any], *, atol: float = DEFAULT_ATOL,
            rtol: float = DEFAULT_RTOL) -> list[OutputDiff]:
    """Compare every output of ``reference`` with ``got`` (shape, dtype, values)."""
    diffs = []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if name not in got:
            diffs.append(OutputDiff(name, float("inf"), float("inf"), False, "missing output"))
            continue
        val = np.asarray(got[name])
        if ref.shape != val.shape:
            diffs.append(OutputDiff(name, float("inf"), float("inf"), False, f"shape {val.shape} != {ref.shape}"))
            continue
        if ref.dtype != val.dtype:
            diffs.append(OutputDiff(name, float("inf"), float("inf"), False, f"dtype {val.dtype} != {ref.dtype}"))
            continue
        if ref.dtype == object or ref.dtype.kind in "SU":
            same = bool(np.array_equal(ref, val))
            diffs.append(OutputDiff(name, 0.0 if same else float("inf"), 0.0 if same else float("inf"), same))
            continue
        if ref.size == 0:  # a verification that compared nothing is not a pass
            diffs.append(OutputDiff(name, float("inf"), float("inf"), False,
                                    f"empty output {ref.shape}: nothing was compared"))
            continue
        r, v = ref.astype(np.float64), val.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, 0 * inf: NaN, reported, not warned about
            err = np.abs(r - v)
            max_err = float(err.max()) if err.size else 0.0
            mean_err = float(err.mean()) if err.size else 0.0
            ok = bool(np.all(err <= atol + rtol * np.abs(r))) and bool(np.array_equal(np.isnan(r), np.isnan(v)))
        diffs.append(OutputDiff(name, max_err, mean_err, ok, "" if ok else f"max abs err {max_err:.3g}"))
    return diffs


def assert_equivalent(reference: Mapping[str, Any], got: Mapping[str, Any], *, atol: float = DEFAULT_ATOL,
                      rtol: float = DEFAULT_RTOL, what: str = "model") -> list[OutputDiff]:
    """Like :func:`compare`, raising :class:`VerificationError` if any output differs."""
    diffs = compare(reference, got, atol=atol, rtol=rtol)
    bad = [d for d in diffs if not d.ok]
    if bad:
        detail = "; ".join(f"output '{d.name}': {d.problem}" for d in bad)
        raise VerificationError(f"{what} differs from the original beyond atol={atol:g}, rtol={rtol:g}: {detail}")
    return diffs
