"""The one strict comparison used by tfopt's verification and by its tests.

``compare`` checks shape, then dtype, then values with ``|got - ref| <= atol + rtol * max|ref|``
per output (``max`` over the output's finite values) and returns the error statistics. The
relative part scales with the output's magnitude, not each element's: float error comes from
accumulating terms of the output's size, so an element near zero in an output of magnitude 100
carries the same absolute error as its neighbours; an empty output never passes
(a verification that compared nothing is not a pass); ``assert_equivalent`` raises
:class:`~tfopt.errors.VerificationError` naming the first output that differs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import VerificationError
from tfopt.graph import TensorSpec
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL

DEFAULT_ATOL = FREEZE_ATOL  # (see tfopt.verification.tolerances)
DEFAULT_RTOL = FREEZE_RTOL


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs_err: float
    mean_abs_err: float
    ok: bool
    problem: str = ""


def random_inputs(specs: Sequence[TensorSpec], *, seed: int = 0, batch: int = 2, dynamic_dim: int = 8,
                  shapes: Mapping[str, Sequence[int]] | None = None, graph_def: Any = None,
                  values: str = "standard normal") -> dict[str, np.ndarray]:
    """Seeded inputs matching ``specs``; unknown dims become ``batch`` (first) or ``dynamic_dim``,
    unless ``shapes`` gives an input's whole shape.

    Floats are standard normal (``values``: a rung of :data:`tfopt.verification.saturation.LADDER`,
    drawn from the same normal values, for floats nothing below constrains), integers uniform in [0, 8), bools False, strings ``b"a"`` (numerals where the graph parses them). With
    ``graph_def``, an input keeps to what the graph does with it (:mod:`tfopt.verification.made_up_inputs`): ids
    inside their table (whole numbers when the input is float, as Keras 2 declared an Embedding's
    input; a table the model computes sized at these shapes, :mod:`tfopt.verification.computed_tables`), masks 0/1, integer lengths in ``[1, dynamic_dim]``, and values inside the domain of the
    ops they reach (:mod:`tfopt.verification.input_domains`: positive before a ``Log``, ``[-1, 1]`` before an ``Acos``);
    inputs that are structure fit the others (:mod:`tfopt.verification.input_structure`: ragged row lengths add
    up to the values' count, segment ids sorted, sparse indices inside their dense shape).

    Raises:
        MadeUpInputsError: a structure input no made-up value fits (the input, the op, the fix named).
    """
    from tfopt.verification.computed_tables import indexed_tables, table_sizes
    from tfopt.verification.input_domains import draw, input_domains
    from tfopt.verification.input_structure import input_needs
    from tfopt.verification.made_up_inputs import fill, input_roles
    from tfopt.verification.saturation import scaled
    from tfopt.verification.structured_values import constrain, room_for_structure

    roles = input_roles(graph_def) if graph_def is not None else {}
    needs = input_needs(graph_def, {s.name for s in specs}) if graph_def is not None else {}
    domains = input_domains(graph_def, {s.name for s in specs}) if graph_def is not None else {}
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    chosen: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        dims = spec.shape if spec.shape is not None else (batch,)
        shape = tuple((batch if i == 0 else dynamic_dim) if d is None else d for i, d in enumerate(dims))
        if shapes and spec.name in shapes:
            shape = tuple(int(d) for d in shapes[spec.name])
        chosen[spec.name] = room_for_structure(needs.get(spec.name), dims, shape)
    # indices into their tables (a graph network's neighbour list into a computed one; a GatherNd's components
    # each into its own axis) bounded at these shapes: the smallest of the tables sized there
    rows = table_sizes(graph_def, chosen, indexed_tables(graph_def)) if graph_def is not None else {}
    for spec in specs:
        shape = chosen[spec.name]
        role = roles.get(spec.name)
        if spec.name in rows:
            role = ("ids", rows[spec.name])
        if role and role[0] == "length" and not spec.dtype.startswith(("int", "uint")):
            role = None  # a float compared with another tensor is a value, not a length
        given = fill(role, shape, spec.dtype, rng, dynamic_dim)
        if given is None and spec.name in domains:
            given = draw(domains[spec.name], shape, spec.dtype, rng)
        if given is not None:
            out[spec.name] = given
        elif spec.dtype in ("float16", "float32", "float64", "bfloat16"):
            z = rng.standard_normal(shape).astype(spec.dtype if spec.dtype != "bfloat16" else "float32")
            out[spec.name] = scaled(z, values)
        elif spec.dtype.startswith(("int", "uint")):
            out[spec.name] = rng.integers(0, 8, size=shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            out[spec.name] = np.zeros(shape, dtype=bool)
        elif spec.dtype == "string":
            out[spec.name] = np.full(shape, b"a", dtype=object)
        else:
            raise VerificationError(f"input '{spec.name}': cannot generate data of dtype {spec.dtype}; "
                                    "give inputs explicitly")
    constrain(needs, out, rng)  # structure (ragged partitions, segment ids, sparse indices) fits the rest
    return out


def compare(reference: Mapping[str, Any], got: Mapping[str, Any], *, atol: float = DEFAULT_ATOL,
            rtol: float = DEFAULT_RTOL, unranked: Collection[str] = ()) -> list[OutputDiff]:
    """Compare every output of ``reference`` with ``got`` (shape, dtype, values).

    ``unranked``: outputs whose rank the model leaves to the data (a ``Squeeze`` without axes:
    TensorFlow drops a batch of one too, a converter cannot); for them shapes that differ only in
    axes of size 1 are the same shape, and the values are compared."""
    diffs = []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if name not in got:
            diffs.append(OutputDiff(name, float("inf"), float("inf"), False, "missing output"))
            continue
        val = np.asarray(got[name])
        if name in unranked and ref.shape != val.shape and ref.size == val.size and \
                [d for d in ref.shape if d != 1] == [d for d in val.shape if d != 1]:
            val = val.reshape(ref.shape)
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
            finite = np.abs(r[np.isfinite(r)])
            scale = float(finite.max()) if finite.size else 0.0  # the output's magnitude (see module docstring)
            ok = bool(np.all(err <= atol + rtol * scale)) and bool(np.array_equal(np.isnan(r), np.isnan(v)))
        diffs.append(OutputDiff(name, max_err, mean_err, ok, "" if ok else f"max abs err {max_err:.3g}"))
    return diffs


def unranked_outputs(specs: Sequence[Any]) -> set[str]:
    """The names of outputs of unknown rank (``TensorSpec.shape`` None): see :func:`compare`."""
    return {s.name for s in specs if s.shape is None}


def assert_equivalent(reference: Mapping[str, Any], got: Mapping[str, Any], *, atol: float = DEFAULT_ATOL,
                      rtol: float = DEFAULT_RTOL, what: str = "model") -> list[OutputDiff]:
    """Like :func:`compare`, raising :class:`VerificationError` if any output differs."""
    diffs = compare(reference, got, atol=atol, rtol=rtol)
    bad = [d for d in diffs if not d.ok]
    if bad:
        detail = "; ".join(f"output '{d.name}': {d.problem}" for d in bad)
        raise VerificationError(f"{what} differs from the original beyond atol={atol:g}, rtol={rtol:g}: {detail}")
    return diffs
