"""NaN and Inf, honestly: statistics that propagate them, data checks that count them, and their
JSON spelling.

Python's ``max(0.0, nan)`` is ``0.0`` and ``min(1.0, nan)`` is ``1.0``: a worst-case fold written
with them turns a NaN output into a perfect score. :func:`worst` folds with numpy, which keeps the
NaN. JSON has no NaN or Infinity, so reports spell them ``"nan"``, ``"inf"`` and ``"-inf"``
(strings, which ``float()`` reads back) and are written with ``allow_nan=False``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tfopt.errors import OptionError

SPELLING = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def worst(values: Iterable[float], *, lowest: bool = False) -> float:
    """The largest (``lowest``: smallest) value, NaN if any value is NaN."""
    arr = np.asarray(list(values), dtype=np.float64)
    return float(arr.min() if lowest else arr.max())


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def count_nonfinite(arrays: Mapping[str, Any]) -> dict[str, int]:
    """Input name -> number of NaN/Inf values, for the floating-point arrays that hold any."""
    counts = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "fc":
            n = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if n:
                counts[name] = n
    return counts


def check_finite(arrays: Mapping[str, Any], what: str, *, allow: bool) -> dict[str, int]:
    """Count NaN/Inf per input; unless ``allow``, refuse data holding any.

    Raises:
        OptionError: naming the data, the input and the count.
    """
    counts = count_nonfinite(arrays)
    if counts and not allow:
        listed = ", ".join(f"input '{name}' has {n} NaN/Inf value(s)" for name, n in counts.items())
        raise OptionError(f"{what}: {listed}; clean the data, or pass --allow-nonfinite to use it as it is "
                          "(a metric it turns into NaN then fails every gate that reads it)")
    return counts


def to_json(value: Any) -> Any:
    """``value`` with every non-finite float spelled ``"nan"``/``"inf"``/``"-inf"`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    return value


def from_json(value: Any, *, keys: frozenset[str] | None = None, _key: str = "") -> Any:
    """Undo :func:`to_json` on a loaded report: the spelled values back to floats."""
    if isinstance(value, dict):
        return {k: from_json(v, keys=keys, _key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v, keys=keys, _key=_key) for v in value]
    if isinstance(value, str) and value in SPELLING and (keys is None or _key in keys):
        return SPELLING[value]
    return value


def finite_samples(samples: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The calibration samples without NaN/Inf, for the quantizers: a range over Inf means nothing
    (and LiteRT's calibrator crashes on it). The report still measures on every sample.

    Raises:
        OptionError: every sample holds NaN/Inf.
    """
    if not samples:
        return samples
    kept = [s for s in samples if not count_nonfinite(s)]
    if not kept:
        raise OptionError("--calibration: every sample holds NaN/Inf; no finite sample is left to calibrate "
                          "the quantization ranges with")
    return kept
