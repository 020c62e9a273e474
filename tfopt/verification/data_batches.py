"""Given data (``--eval-data``, ``--calibration``) fed in whole batches that the graph takes.

A graph that cuts its batch into towers takes only some batch sizes (:mod:`tfopt.verification.split_ties`)::

    Split(x, num_split=N)            batch % N == 0      the unit is N rows
    SplitV(x, [s1..sN])              batch == s1+...+sN  the unit is that sum
    Unpack(x, num=N)                 batch == N          the unit is N

and a graph whose every input has the static batch ``[B, ...]`` takes exactly ``B``. Fed one row
at a time, or as the first 8 rows of a set, such a graph refuses the data. So the data is fed in
batches of ``u`` rows, ``u`` the *unit*: the fixed size of the batch axis when one is fixed, else
the least common multiple of what the splits need, else 1. ``M`` rows are ``ceil(M / u)``
batches; the last one, ``p = ceil(M / u) * u - M`` rows short, is completed with the set's first
``p`` rows (wrapping), and the outputs of those ``p`` rows are dropped: every sample counts once,
none twice.

The unit is read from the input specs and, when the graph holds a split, from the dimension ties
that :func:`tfopt.verification.shapes.find_ties` learns by probing the original model (the same
search the made-up inputs use).

The batch of given data is axis 0 of every input when every input holds as many rows there; else
each input's batch axis as the dimension ties read from the data's shapes place it
(:func:`sample_axes`: a time-major ``inputs [time, batch, 80]`` beside ``seq_lengths [batch]`` or a
state ``[1, batch, n]`` holds its samples on axis 1). Every place that cuts given data into rows
(calibration samples, the rows verification runs on, the report's and the int8 measurements'
batches) cuts it there, through this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from tfopt.graph import TensorSpec

Axes = Mapping[str, int | None]  # input name -> the axis holding its samples (None: fed whole)

DATA_ROWS = 8  # rows of --eval-data / --calibration used to verify each stage (whole batches: given_rows)


class Unit(NamedTuple):
    """The batch the graph takes: ``rows`` exactly (``exact``: a fixed batch), or any multiple of ``rows``."""

    rows: int
    exact: bool


def sample_axes(feeds: Mapping[str, Any], specs: Sequence[TensorSpec]) -> dict[str, int | None]:
    """Input name -> the axis of given data ``feeds`` that holds its samples (None: a scalar). Axis 0
    when every input holds as many rows there and the graph's structure names no other axis
    (:attr:`TensorSpec.batch_axis`: a lone time-major ``[time, batch, n]`` holds them on axis 1); else
    the batch axis that :func:`tfopt.verification.shapes.batch_axes` finds from the dimension ties of
    the data's shapes (the class of equal unknown dimensions spanning the most inputs, the structure's
    axis among equals), axis 0 where it finds none."""
    shapes = {s.name: tuple(np.shape(feeds[s.name])) for s in specs if s.name in feeds}
    axes: dict[str, int | None] = {k: 0 if shape else None for k, shape in shapes.items()}
    said = any(s.batch_axis for s in specs if s.name in shapes)  # the structure names another axis
    if said or len({shape[0] for shape in shapes.values() if shape}) > 1:
        from tfopt.verification.shapes import batch_axes

        found = batch_axes([s for s in specs if s.name in shapes and s.shape is not None], shapes)
        axes.update({k: a for k, a in found.items() if a is not None and shapes[k]})
        axes.update({s.name: s.batch_axis for s in specs if s.name in shapes and s.batch_axis is not None
                     and found.get(s.name) is None and s.batch_axis < len(shapes[s.name])})  # a static shape
    return axes


def batch_unit(original: Callable[[Mapping[str, Any]], Any], specs: Sequence[TensorSpec], graph_def: Any,
               *, ties: Any = None, seed: int = 0, axes: Axes | None = None) -> Unit:
    """The batch the graph takes on each input's batch axis (``axes``, default 0; see the module
    docstring). ``ties``: a :class:`~tfopt.verification.shapes.DimTies` already learned (searched for
    when None and the graph holds a ``Split``/``SplitV``/``Unpack``)."""
    from tfopt.verification.split_ties import count_splits

    axis = {s.name: (axes or {}).get(s.name, 0) or 0 for s in specs}
    leading = {s.shape[axis[s.name]] for s in specs if s.shape and axis[s.name] < len(s.shape)}
    fixed = {int(d) for d in leading if d is not None} if len(leading) == 1 else set()  # all inputs' batch B
    if ties is None and count_splits(graph_def):
        from tfopt.verification.shapes import find_ties
        from tfopt.verification.testing import random_inputs

        ties = find_ties(original, specs, graph_def,
                         lambda shapes: random_inputs(specs, seed=seed, shapes=shapes, graph_def=graph_def))
    multiples = []
    for spec in specs if ties is not None else []:
        if (spec.name, axis[spec.name]) in ties.parent:
            root = ties.find((spec.name, axis[spec.name]))
            if root in ties.fixed:
                fixed.add(int(ties.fixed[root]))
            multiples.append(int(ties.multiples.get(root, 1)))
    return Unit(max(fixed), True) if fixed else Unit(math.lcm(1, *multiples), False)


def _axes(feeds: Mapping[str, Any], axes: Axes | None) -> dict[str, int | None]:
    """``axes`` for every input of ``feeds`` (default: axis 0; a scalar: None)."""
    return {k: (axes.get(k, 0) if axes is not None else 0) if np.ndim(v) else None for k, v in feeds.items()}


def rows_of(feeds: Mapping[str, np.ndarray], axes: Axes | None = None) -> int:
    """Samples in given data: the rows of its shortest input on its batch axis (``axes``, default 0;
    a scalar has none)."""
    from tfopt.verification.shapes import sample_count

    return sample_count(feeds, _axes(feeds, axes))


def whole_batches(feeds: Mapping[str, np.ndarray], unit: int, rows: int | None = None,
                  axes: Axes | None = None) -> tuple[dict[str, np.ndarray], int]:
    """``feeds`` as whole batches of ``unit`` rows on each input's batch axis (``axes``, default 0):
    its first ``rows`` rows (default: all), completed to a multiple of ``unit`` with the set's first
    rows (wrapping). Returns the feeds and ``p``, the rows added (whose outputs a caller drops)."""
    where = _axes(feeds, axes)
    have = rows_of(feeds, where)
    rows = have if rows is None else min(rows, have)
    padded = -rows % unit
    take = np.arange(rows + padded) % have
    return {k: np.take(v, take, axis=where[k]) if where[k] is not None else v for k, v in feeds.items()}, padded


def first_batches(feeds: Mapping[str, np.ndarray], unit: Unit, rows: int, axes: Axes | None = None) -> dict[str, np.ndarray]:
    """About ``rows`` rows of ``feeds`` to verify on in one call: the batch itself when it is fixed,
    else the most whole batches within ``rows`` rows, at least one (completed from the set's first
    rows when it holds fewer)."""
    take = unit.rows if unit.exact else max(unit.rows, rows // unit.rows * unit.rows)
    return whole_batches(feeds, unit.rows, take, axes)[0]


def take_rows(feeds: Mapping[str, Any], start: int, stop: int, axes: Axes | None = None) -> dict[str, Any]:
    """Rows ``[start, stop)`` of each input on its batch axis (``axes``, default 0; None: whole), as views."""
    where = _axes(feeds, axes)
    return {k: v if where[k] is None else v[(slice(None),) * (where[k] or 0) + (slice(start, stop),)]
            for k, v in feeds.items()}


def split_batches(feeds: Mapping[str, Any], rows: int, axes: Axes | None = None) -> list[dict[str, Any]]:
    """``feeds`` (whole batches) as one feed per batch of ``rows`` rows on each input's batch axis."""
    return [take_rows(feeds, i, i + rows, axes) for i in range(0, rows_of(feeds, axes), rows)]


def sample_batches(samples: Sequence[Mapping[str, Any]], original: Callable[[Mapping[str, Any]], Any],
                   specs: Sequence[TensorSpec], graph_def: Any, *, seed: int = 0) -> list[dict[str, Any]]:
    """Batch-1 calibration samples as the whole batches the graph takes, one feed each: joined on
    each input's batch axis (:func:`join_samples`), completed to a multiple of the graph's
    :func:`batch_unit` with the first samples (:func:`whole_batches`) and cut into batches of the
    unit (:func:`split_batches`). What a converter's own calibration steps through (TFLite's
    representative dataset, ONNX Runtime's reader, NNCF's dataset): fed one sample a step, a graph
    that splits its batch into towers, or takes a fixed batch, refuses them. ``samples`` as given
    when the graph takes any batch (the unit is 1)."""
    if not samples:
        return []
    joined = join_samples(samples, specs)
    axes = sample_axes(joined, specs)
    unit = batch_unit(original, specs, graph_def, seed=seed, axes=axes)
    if unit.rows == 1:
        return [dict(sample) for sample in samples]
    return split_batches(whole_batches(joined, unit.rows, axes=axes)[0], unit.rows, axes)


def join_samples(samples: Sequence[Mapping[str, Any]], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Calibration samples (batch-1 feeds) as one set, each input joined on its batch axis
    (:func:`sample_axes` of the first sample; a time-major ``[time, 1, n]`` on axis 1)."""
    axes = sample_axes(samples[0], specs)
    return {s.name: np.concatenate([np.asarray(x[s.name]) for x in samples], axis=axes.get(s.name) or 0)
            for s in specs}


class Batches:
    """Given data in whole batches the graph takes (:func:`batched`): batch ``i`` is ``rows`` rows of
    each input's batch axis (``axes``; None: fed whole), the last one's final ``padded`` rows only
    complete it (their outputs dropped: :meth:`real`)."""

    def __init__(self, inputs: dict[str, np.ndarray], axes: Axes, rows: int = 1, padded: int = 0):
        from tfopt.verification.shapes import sample_count

        self.inputs, self.axes, self.rows, self.padded = inputs, {k: axes.get(k, 0) for k in inputs}, rows, padded
        self.count = sample_count(inputs, self.axes, rows)

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """Batch ``i`` (:func:`tfopt.verification.shapes.cut_sample` on each input's batch axis)."""
        from tfopt.verification.shapes import cut_sample

        return {k: cut_sample(v, self.axes[k], i, self.count) for k, v in self.inputs.items()}

    def real(self, i: int, value: np.ndarray) -> np.ndarray:
        """Batch ``i``'s output (batch on axis 0) without the rows that only completed the last batch."""
        last = i == self.count - 1 and self.padded and value.ndim and value.shape[0] == self.rows
        return value[:self.rows - self.padded] if last else value

    def run(self, run: Callable[[Mapping[str, Any]], Mapping[str, Any]], names: Sequence[str]) -> dict[str, np.ndarray]:
        """``run``'s outputs ``names`` on every batch, each sample's once, joined on axis 0."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
        for i in range(self.count):
            out = run(self.sample(i))
            for k in names:
                parts[k].append(self.real(i, np.atleast_1d(np.asarray(out[k]))))
        return {k: np.concatenate(v) for k, v in parts.items()}


def batched(original: Callable[[Mapping[str, Any]], Any], specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray],
            graph_def: Any, *, ties: Any = None, seed: int = 0) -> Batches:
    """Every row of given data ``feeds`` in whole batches of the graph's :func:`batch_unit`, on each
    input's batch axis (:func:`sample_axes`): what the report and the int8 measurements run on."""
    from tfopt.verification.input_structure import fed_whole

    axes = fed_whole(graph_def, sample_axes(feeds, specs))  # a ragged partition and its values: one sample
    unit = batch_unit(original, specs, graph_def, ties=ties, seed=seed, axes=axes).rows
    inputs, padded = whole_batches(feeds, unit, axes=axes)
    return Batches(inputs, axes, unit, padded)


def describe(samples: int, unit: int, padded: int) -> str:
    """How the data was batched, for the report: ``7 samples in 4 batches of 2 rows (the batch size the
    graph takes); the last completed with 1 row from the start, its output dropped``."""
    batches = (samples + padded) // unit
    text = f"{samples} samples in {batches} batch{'es' if batches != 1 else ''} of {unit} row{'s' if unit != 1 else ''}"
    if unit > 1:
        text += " (the batch size the graph takes)"
    if padded:
        text += (f"; the last completed with {padded} row{'s' if padded != 1 else ''} from the start of the set, "
                 f"{'its output' if padded == 1 else 'their outputs'} dropped")
    return text


def given_rows(original: Callable[[Mapping[str, Any]], Any], specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray],
               graph_def: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """The rows of given data that verify each stage: about :data:`DATA_ROWS`, whole batches of the
    graph's :func:`batch_unit` on each input's batch axis (:func:`first_batches`, :func:`sample_axes`)."""
    axes = sample_axes(feeds, specs)
    return first_batches(feeds, batch_unit(original, specs, graph_def, seed=seed, axes=axes), DATA_ROWS, axes)
