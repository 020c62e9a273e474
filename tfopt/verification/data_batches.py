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
search the made-up inputs use). The batch of given data is axis 0 of every input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from tfopt.graph import TensorSpec

DATA_ROWS = 8  # rows of --eval-data / --calibration used to verify each stage (whole batches: given_rows)


class Unit(NamedTuple):
    """The batch the graph takes: ``rows`` exactly (``exact``: a fixed batch), or any multiple of ``rows``."""

    rows: int
    exact: bool


def batch_unit(original: Callable[[Mapping[str, Any]], Any], specs: Sequence[TensorSpec], graph_def: Any,
               *, ties: Any = None, seed: int = 0) -> Unit:
    """The batch the graph takes on axis 0 (see the module docstring). ``ties``: a
    :class:`~tfopt.verification.shapes.DimTies` already learned (searched for when None and the graph
    holds a ``Split``/``SplitV``/``Unpack``)."""
    from tfopt.verification.split_ties import count_splits

    leading = {s.shape[0] for s in specs if s.shape}
    fixed = {int(d) for d in leading if d is not None} if len(leading) == 1 else set()  # all inputs' batch B
    if ties is None and count_splits(graph_def):
        from tfopt.verification.shapes import find_ties
        from tfopt.verification.testing import random_inputs

        ties = find_ties(original, specs, graph_def,
                         lambda shapes: random_inputs(specs, seed=seed, shapes=shapes, graph_def=graph_def))
    multiples = []
    for spec in specs if ties is not None else []:
        if (spec.name, 0) in ties.parent:
            root = ties.find((spec.name, 0))
            if root in ties.fixed:
                fixed.add(int(ties.fixed[root]))
            multiples.append(int(ties.multiples.get(root, 1)))
    return Unit(max(fixed), True) if fixed else Unit(math.lcm(1, *multiples), False)


def rows_of(feeds: Mapping[str, np.ndarray]) -> int:
    """Samples in given data: the rows of its shortest input (axis 0; a scalar has none)."""
    from tfopt.verification.shapes import sample_count

    return sample_count(feeds, {k: 0 if np.ndim(v) else None for k, v in feeds.items()})


def whole_batches(feeds: Mapping[str, np.ndarray], unit: int, rows: int | None = None) -> tuple[dict[str, np.ndarray], int]:
    """``feeds`` as whole batches of ``unit`` rows: its first ``rows`` rows (default: all), completed
    to a multiple of ``unit`` with the set's first rows (wrapping). Returns the feeds and ``p``, the
    rows added (whose outputs a caller drops)."""
    have = rows_of(feeds)
    rows = have if rows is None else min(rows, have)
    padded = -rows % unit
    take = np.arange(rows + padded) % have
    return {k: np.take(v, take, axis=0) if np.ndim(v) else v for k, v in feeds.items()}, padded


def first_batches(feeds: Mapping[str, np.ndarray], unit: Unit, rows: int) -> dict[str, np.ndarray]:
    """About ``rows`` rows of ``feeds`` to verify on in one call: the batch itself when it is fixed,
    else the most whole batches within ``rows`` rows, at least one (completed from the set's first
    rows when it holds fewer)."""
    take = unit.rows if unit.exact else max(unit.rows, rows // unit.rows * unit.rows)
    return whole_batches(feeds, unit.rows, take)[0]


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
    graph's :func:`batch_unit` (:func:`first_batches`)."""
    return first_batches(feeds, batch_unit(original, specs, graph_def, seed=seed), DATA_ROWS)
