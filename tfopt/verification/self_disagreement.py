"""The original model's self-disagreement: how far its own numbers move when it is run again in ways that must give
the same numbers mathematically (:mod:`tfopt.verification.conditioning` asks, only after a check on made-up inputs
failed). Two measures, each in the bound's units ``max|a - b| / (1 + max|b|)``:

- ``rows``: the batch against the same rows one at a time (:func:`self_disagreement`);
- ``kernels``: its own run against its graph under a second kernel choice (:mod:`tfopt.verification.kernel_choice`).

:func:`disagreement` is the larger, named by its measure. A conversion asks it once per set of made-up feeds
(:class:`SelfDisagreements`, held with the original's outputs): every artifact whose check fails on the same feeds
asks the same original the same question (five targets: once, not five times).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from tfopt.verification.kernel_choice import WHAT as KERNELS_WHAT
from tfopt.verification.kernel_choice import KernelChoices
from tfopt.verification.tolerances import scaled_error

MEASURES = {"rows": "batched vs single rows", "kernels": KERNELS_WHAT}  # what each measure compares


class Gap(NamedTuple):
    """The original's self-disagreement (the bound's units) and the measure of :data:`MEASURES` that found it."""

    value: float
    by: str


def scaled_gap(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """The worst float output's :func:`~tfopt.verification.tolerances.scaled_error` of ``a`` against ``b``
    (``max|a - b| / (1 + max|b|)``, the bound's units); 0 for none."""
    worst = 0.0
    for name, ref in b.items():
        x, y = np.asarray(a[name], np.float64), np.asarray(ref, np.float64)
        if y.dtype.kind != "f" or x.shape != y.shape or not y.size or not np.all(np.isfinite(y)):
            continue
        worst = max(worst, scaled_error(np.max(np.abs(x - y)), np.max(np.abs(y))))
    return worst


def self_disagreement(run: Callable[[Mapping[str, Any]], Mapping[str, Any]], feeds: Mapping[str, np.ndarray],
                      batched: Mapping[str, Any] | None = None) -> float | None:
    """The original's outputs on ``feeds`` as one batch against the same rows one at a time
    (:func:`scaled_gap`); ``batched``: its outputs on ``feeds`` when already run. None when the
    rows cannot be split (inputs without one shared leading batch of two or more, a graph of a fixed
    batch) or are not independent (an output that does not hold one row per input row)."""
    rows = {np.shape(v)[0] if np.ndim(v) else 0 for v in feeds.values()}
    if len(rows) != 1 or (n := rows.pop()) < 2:
        return None
    try:  # a graph of a fixed batch refuses single rows; an output without the batch on axis 0 cannot be joined
        batched = dict(batched) if batched is not None else dict(run(feeds))
        singles = [run({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
        joined = {k: np.concatenate([np.asarray(s[k]) for s in singles]) for k in batched}
    except Exception:  # nothing to measure: the artifact's error stands as it was
        return None
    if any(np.ndim(v) == 0 or np.shape(v)[0] != n or np.shape(joined[k]) != np.shape(v) for k, v in batched.items()):
        return None  # an output that is not one row per input row (NMS over the batch): its rows are not independent
    return scaled_gap(joined, batched)


def disagreement(run: Callable[[Mapping[str, Any]], Mapping[str, Any]], feeds: Mapping[str, np.ndarray],
                 expected: Mapping[str, Any] | None = None, kernels: KernelChoices | None = None) -> Gap | None:
    """The largest of the original's self-disagreements on ``feeds`` (see the module docstring: ``rows``,
    and ``kernels`` when ``kernels`` is given), with the measure that found it; ``expected``: its outputs on
    ``feeds`` when already run. None when neither measures anything."""
    try:
        expected = dict(expected) if expected is not None else dict(run(feeds))
    except Exception:  # the original gives nothing on these feeds: nothing to measure
        return None
    found: dict[str, float] = {}
    if (rows := self_disagreement(run, feeds, expected)) is not None:
        found["rows"] = rows
    others = [scaled_gap({k: o[k] for k in expected}, expected) for o in (kernels(feeds) if kernels else [])
              if all(k in o for k in expected)]
    if others:
        found["kernels"] = max(others)
    if not found:
        return None
    by = max(found, key=lambda k: found[k])  # ties: rows, the cheaper and older measure
    return Gap(found[by], by)


Measure = Callable[[Mapping[str, np.ndarray]], tuple[dict[str, Any], Gap | None]]  # feeds -> (outputs, disagreement)


class SelfDisagreements:
    """The original's outputs and :func:`disagreement` on each set of made-up feeds, measured once in a conversion:
    every artifact whose check fails on the same feeds (its verification, its report row) asks the same original
    the same question. Held by the conversion's :class:`tfopt.conversion.parts.ReferenceOutputs` (one original);
    ``measurements`` counts the feeds measured. Keyed by the feeds' contents: a seed or batch of its own is
    another input set, measured on its own."""

    def __init__(self) -> None:
        self.measurements = 0
        self._found: dict[str, tuple[dict[str, Any], Gap | None]] = {}

    def __call__(self, run: Callable[[Mapping[str, Any]], Mapping[str, Any]], feeds: Mapping[str, np.ndarray],
                 kernels: KernelChoices | None = None) -> tuple[dict[str, Any], Gap | None]:
        import hashlib

        digest = hashlib.sha1()
        for name in sorted(feeds):
            value = np.ascontiguousarray(feeds[name])
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode() + value.tobytes())
        key = digest.hexdigest()
        if key not in self._found:  # the original's failure to run is not kept: it raises again, as it would
            self._found[key] = measure(run, feeds, kernels)
            self.measurements += 1
        return self._found[key]


def measure(run: Callable[[Mapping[str, Any]], Mapping[str, Any]], feeds: Mapping[str, np.ndarray],
            kernels: KernelChoices | None = None) -> tuple[dict[str, Any], Gap | None]:
    """The original's outputs on ``feeds`` and its :func:`disagreement` there (a :data:`Measure`, uncached)."""
    expected = dict(run(feeds))
    return expected, disagreement(run, feeds, expected, kernels)
