"""Made-up values for inputs that are structure (:mod:`tfopt.verification.input_structure`), drawn once
every other input is made up, so that they fit the shapes the size search chose.

The size search chooses every dimension, the values' count with the rest; a structure input follows it
(the tie belongs to the values, never to a dimension, so the search's sizes keep their meaning):

- row lengths: a random split of the count into as many rows as the input has (``multinomial``: each
  value falls in a uniformly drawn row), so they add up to it; row splits: ``0``, then their running sum;
- value row ids: one per value, sorted, below the number of rows (drawn with the counts as above); a
  number of rows (or ``num_segments``) that is an input: in ``[1, 8]``; a nested level's ids (below the
  rows of the ids above them, else below ``[1, 8]`` rows) end at their last row, whose count the level
  above splits, drawn after them (an input a :class:`~tfopt.verification.input_structure.Ref` reads the
  value of is drawn before the input that reads it);
- sorted segment ids: from 0, each the one before or the next (the canonical form: TensorFlow allows
  gaps, TFLite's ``SEGMENT_SUM`` does not), below ``num_segments`` where given; bounded ids: uniform
  below their bound;
- sparse indices: distinct positions inside the dense shape, in row-major order; a made-up dense shape:
  sizes of ``ceil(n ** (1 / rank))`` plus ``[0, 3)``, room for ``n`` indices (the contracted size of a
  ``SparseTensorDenseMatMul`` is its dense operand's).

Where no value can fit (lengths of no rows that must hold values, a count tfopt cannot follow back to
an input, more indices than the dense shape has positions) the conversion stops before any converter
runs with :class:`~tfopt.errors.MadeUpInputsError` naming the input, the op and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfopt.errors import MadeUpInputsError
from tfopt.verification.input_structure import Need, Ref

_FIRST = ("dense_shape", "nrows")  # drawn before the inputs they bound (sparse indices, value row ids)
WHAT = {"row_lengths": "row lengths that add up to the count of what they split",
        "row_splits": "row splits from 0, never decreasing, ending at the count of what they split",
        "value_rowids": "sorted row ids, one per value, below the number of rows",
        "nrows": "a count of rows or segments of at least one",
        "sorted_ids": "sorted segment ids", "bounded_ids": "ids below a bound",
        "sparse_indices": "distinct indices inside the dense shape, in row-major order",
        "dense_shape": "a dense shape with room for its indices"}


def constrain(needs: Mapping[str, Need], feeds: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Redraw, in place, every input of ``feeds`` with a :class:`Need` so that it holds (its shape and
    dtype kept; see the module docstring).

    Raises:
        MadeUpInputsError: a structure no made-up value can satisfy at these shapes.
    """
    for name in _order(needs, feeds):
        need, old = needs[name], np.asarray(feeds[name])
        if old.dtype.kind not in "iu":  # a float or string input is data, whatever it reaches
            continue
        values = _draw(name, need, old.shape, feeds, rng)
        if values is not None:
            feeds[name] = np.asarray(values).astype(old.dtype).reshape(old.shape)


def room_for_structure(need: Need | None, dims: tuple[int | None, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape``, made up for an input declared ``dims``, with room for its structure: row splits of unknown
    length (a ``tf.RaggedTensorSpec`` argument's, ``[None]``) hold one row at least, two entries. The batch
    of one an artifact is verified at gave them one entry, which splits nothing: no values could exist."""
    if need is not None and need.kind == "row_splits" and dims[:1] == (None,) and shape and shape[0] < 2:
        return (2, *shape[1:])
    return shape


def _order(needs: Mapping[str, Need], feeds: Mapping[str, Any]) -> list[str]:
    """The structure inputs of ``feeds``: dense shapes and counts first, then each input after those whose
    value its :class:`Need` reads (a nested level's value row ids before the splits above them)."""
    left = sorted((n for n in needs if n in feeds), key=lambda n: needs[n].kind not in _FIRST)
    order: list[str] = []
    while left:
        ready = [n for n in left if not {r.input for r in (needs[n].count, needs[n].bound)
                                         if r is not None and r.axis < 0} & set(left) - {n}]
        order.append((ready or left)[0])  # a cycle (none known) keeps the old order
        left.remove(order[-1])
    return order


def _number(ref: Ref | None, feeds: Mapping[str, Any]) -> int | None:
    value = ref.resolve(feeds) if ref is not None else None
    return None if value is None or value.size != 1 else int(value.ravel()[0])


def _fail(name: str, need: Need, reason: str) -> MadeUpInputsError:
    """The error; ``reason`` names the sizes that disagree (``11 ids for 13 values``): the size search's probe
    at distinct primes learns a tie from it as from TensorFlow's own messages (:mod:`tfopt.verification.shapes`)."""
    return MadeUpInputsError(
        f"verifying: made-up input '{name}' must hold {WHAT[need.kind]} for {need.why}; {reason}. This is about the "
        "inputs, not freezing or conversion: pass real inputs with --calibration or --eval-data (or skip "
        "verification with --no-verify)")


def _split(count: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` non-negative lengths that add up to ``count``."""
    return rng.multinomial(count, np.full(rows, 1.0 / rows)) if rows else np.zeros(0, np.int64)


def _draw(name: str, need: Need, shape: tuple[int, ...], feeds: Mapping[str, Any],
          rng: np.random.Generator) -> np.ndarray | None:
    kind = need.kind
    count, bound = _number(need.count, feeds), _number(need.bound, feeds)
    if kind in ("row_lengths", "row_splits", "value_rowids"):
        if count is None:
            raise _fail(name, need, "tfopt cannot tell that count from the graph (it is computed, not an input's "
                                    "dimension)")
        if len(shape) != 1:
            raise _fail(name, need, f"it has shape {list(shape)}, not one dimension")
        rows = shape[0] if kind == "row_lengths" else shape[0] - 1 if kind == "row_splits" else bound
        if kind == "value_rowids":
            if shape[0] != count:
                raise _fail(name, need, f"it holds {shape[0]} ids for {count} values")
            rows = rows if rows is not None else max(1, min(count, 8))
        if rows is None or rows < 0 or (rows == 0 and count > 0):
            raise _fail(name, need, f"{count} values cannot be split into {rows} rows")
        lengths = _split(count, rows, rng)
        if need.last_row and count and not lengths[-1]:  # the rows the ids imply are the rows drawn
            lengths[rng.choice(np.flatnonzero(lengths))] -= 1
            lengths[-1] = 1
        if kind == "row_lengths":
            return lengths
        if kind == "row_splits":
            return np.concatenate([[0], np.cumsum(lengths)])
        return np.repeat(np.arange(rows), lengths)
    if kind == "sorted_ids":  # from 0, each id the last or the next (TFLite's SEGMENT_SUM refuses a gap)
        n = int(np.prod(shape, dtype=np.int64))
        ids = np.concatenate([[0], np.cumsum(rng.integers(0, 2, size=max(n - 1, 0)))])[:n]
        return np.minimum(ids, bound - 1) if bound is not None and bound > 0 else ids
    if kind == "bounded_ids":
        if bound is None:
            return None
        if bound <= 0 and np.prod(shape, dtype=np.int64):
            raise _fail(name, need, f"the bound is {bound}")
        return rng.integers(0, max(bound, 1), size=shape)
    if kind == "nrows":
        return rng.integers(1, 9, size=shape)
    if kind == "dense_shape":
        return _dense_shape(name, need, shape, count, feeds, rng)
    return _sparse_indices(name, need, shape, feeds, rng)


def _dense_shape(name: str, need: Need, shape: tuple[int, ...], count: int | None, feeds: Mapping[str, Any],
                 rng: np.random.Generator) -> np.ndarray:
    rank = shape[0] if len(shape) == 1 else 1
    n = max(count or 1, 1)
    tied = _number(need.size, feeds) if 0 <= need.axis < rank else None
    free = rank - (tied is not None)
    if tied is not None and tied <= 0:
        raise _fail(name, need, f"its size {need.axis} is tied to a dimension of {tied}")
    left = math.ceil(n / tied) if tied is not None else n
    side = math.ceil(left ** (1.0 / free) - 1e-9) if free else 1
    dims = np.maximum(side, 1) + rng.integers(0, 3, size=rank)
    if tied is not None:
        dims[need.axis] = tied
    if free == 0 and math.prod(int(d) for d in dims) < n:
        raise _fail(name, need, f"{n} indices do not fit a dense shape {dims.tolist()}")
    return dims


def _sparse_indices(name: str, need: Need, shape: tuple[int, ...], feeds: Mapping[str, Any],
                    rng: np.random.Generator) -> np.ndarray:
    dense = need.bound.resolve(feeds) if need.bound is not None else None
    if dense is None:
        raise _fail(name, need, "tfopt cannot tell the dense shape from the graph (it is computed, not an "
                                "input or a constant)")
    dense = np.atleast_1d(dense).astype(np.int64)
    n = shape[0] if shape else 1
    rank = shape[1] if len(shape) == 2 else 1
    if rank != dense.size:
        raise _fail(name, need, f"its {rank} coordinates do not match the dense shape {dense.tolist()}")
    positions = math.prod(int(d) for d in dense) if np.all(dense >= 0) else 0
    if n > positions:
        raise _fail(name, need, f"{n} distinct indices do not fit the dense shape {dense.tolist()} (--verify-shape "
                                f"can give '{name}' at most {positions} rows)")
    flat = np.sort(rng.choice(positions, size=n, replace=False)) if n else np.zeros(0, np.int64)
    coords = np.stack(np.unravel_index(flat, tuple(int(d) for d in dense)), axis=-1) if n else np.zeros((0, rank))
    return coords.reshape(shape)
