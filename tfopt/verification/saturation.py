"""Made-up inputs whose outputs carry information.

A float input that nothing else constrains is drawn standard normal. A network trained on images in
[0, 1] or on small standardized features meets N(0, 1) far outside its data, and its sigmoid or
softmax head then answers exactly 0/1 for every row (issue 24: ebeer's CNN over 128x128x3 images):
every artifact is compared on constants, and the check cannot fail. A float output ``y`` is
*degenerate* (``eps`` the float32 machine epsilon, 1.19e-7; ``t`` the fp32 artifact bound, 1e-4) when

- every sample's values (a row: axis 0) sit at saturation levels, ``min over c in {-1, 0, 1} of
  |y - c| <= t`` (a saturated sigmoid, one-hot softmax or tanh; a dead ReLU, all zero), or some do
  and the others are one value each, ``|y_i - y_i[0]| <= eps * max|y_i|`` over two or more (a softmax
  of equal logits: dead features; rows of one value that vary from sample to sample are information);
- or its rows (two or more) repeat: ``|y_i - y_0| <= eps * max|y|`` (the output ignores the input).

Why ``t`` for levels: a sigmoid's slope is ``s(1 - s)``, at most its distance to 0 or 1 (a softmax's
likewise), so an output within ``t`` of its level damps an error in the logits below ``t`` unless that
error exceeds 1; and an output within ``t`` of 0 passes the absolute bound whatever it holds. Equal
values and repeated rows move by no more than ``eps`` under a perturbed weight: no bound sees that.

When the standard-normal draw leaves an output degenerate, the free float inputs (no role - ids, masks,
lengths, :mod:`tfopt.verification.made_up_inputs` - and no domain, :mod:`tfopt.verification.input_domains`;
those are never changed) are redrawn on a fixed ladder of the scales a TensorFlow user's data has, and
the first rung where every output is informative is kept:

1. ``uniform [0, 1]`` - images scaled by 1/255, the commonest preprocessing done outside a model;
2. ``normal x 0.1``, 3. ``normal x 0.01`` - smaller standardized features: a saturating head's
   pre-activation shrinks with its input's scale, so tenfold steps reach its linear range.

Each rung is a function of the same standard-normal draw ``z`` (``Phi(z)``, ``0.1 z``, ``0.01 z``;
``Phi`` the normal CDF, so ``Phi(z)`` is uniform), so every other input keeps exactly its values.
When no rung makes every output informative, the rung with the fewest degenerate outputs is kept
(the earliest on a tie: standard normal first), and the record says which outputs stayed saturated
and that ``--calibration``/``--eval-data`` gives a real check. Outputs informative at standard normal
keep today's inputs: the ladder is not tried.

The realistic size (:mod:`tfopt.verification.verify`: 64, 128, ... when the search settled below it)
keeps the rung chosen at the search size when its outputs there carry information; else the ladder
is climbed again there (:func:`recheck`), and the record says the realistic size's rung when it differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfopt.verification.tolerances import ARTIFACT

NORMAL = "standard normal"
LADDER = (NORMAL, "uniform [0, 1]", "normal x 0.1", "normal x 0.01")  # see the module docstring
EPS = float(np.finfo(np.float32).eps)
LEVEL_TOL = ARTIFACT["fp32"]  # within this of a level, the artifact bound cannot see an error (docstring)
LEVELS = (-1.0, 0.0, 1.0)
REAL_CHECK = "--calibration or --eval-data gives a real check"
BATCH_STEPS = (1, 8, 64)  # rows tried (x the batch) when the values decide an output's size (usable_rung)


def scaled(z: np.ndarray, values: str) -> np.ndarray:
    """The ladder rung ``values`` of the standard-normal draw ``z`` (same shape and dtype)."""
    if values == NORMAL:
        return z
    if values == "uniform [0, 1]":
        from scipy.special import ndtr

        return np.asarray(ndtr(z.astype(np.float64))).astype(z.dtype)
    factor = {"normal x 0.1": 0.1, "normal x 0.01": 0.01}.get(values)
    if factor is None:
        raise ValueError(f"unknown made-up values {values!r}; one of {', '.join(LADDER)}")
    return (z * factor).astype(z.dtype)


def degenerate(outputs: Mapping[str, Any]) -> dict[str, str]:
    """Output name -> why it carries no information (see the module docstring); float outputs only."""
    found: dict[str, str] = {}
    for name, value in outputs.items():
        y = np.asarray(value)
        if y.dtype.kind != "f" or y.size == 0 or not np.all(np.isfinite(y)):
            continue
        rows = y.astype(np.float64).reshape(y.shape[0] if y.ndim else 1, -1)  # one row per sample
        leveled = np.all(np.min(np.abs(rows[..., None] - np.array(LEVELS)), axis=-1) <= LEVEL_TOL, axis=1)
        tol = EPS * np.max(np.abs(rows), axis=1, keepdims=True)
        flat = np.all(np.abs(rows - rows[:, :1]) <= tol, axis=1) & (rows.shape[1] >= 2)
        if np.all(leveled):
            levels = [c for c in LEVELS if np.any(np.abs(rows - c) <= LEVEL_TOL)]
            found[name] = f"every value within {LEVEL_TOL:g} of {' or '.join(f'{c:g}' for c in levels)}"
        elif np.any(leveled) and np.all(leveled | flat):
            found[name] = f"every sample's values within {LEVEL_TOL:g} of 0/1 or all one value"
        elif rows.shape[0] >= 2 and np.all(np.abs(rows - rows[:1]) <= EPS * np.max(np.abs(rows))):
            found[name] = "the same values for every sample"
    return found


def informative(make: Callable[[str], dict[str, np.ndarray]],
                run: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any] | None],
                feeds: dict[str, np.ndarray], outputs: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray],
                                                                                   dict[str, str], dict[str, str]]:
    """The first ladder rung whose outputs are all informative.

    Args:
        make: the made-up feeds at a rung (same shapes and seed as ``feeds``).
        run: the original model's outputs on feeds, or None when it gives no usable ones there.
        feeds, outputs: the standard-normal feeds and the original's outputs on them.

    Returns:
        ``(rung, feeds, still degenerate outputs, degenerate at standard normal)``.
    """
    before = degenerate(outputs)
    best = (NORMAL, feeds, before)
    if not before:
        return NORMAL, feeds, {}, {}
    for rung in LADDER[1:]:
        candidate = make(rung)
        got = run(candidate)
        if got is None:
            continue
        left = degenerate(got)
        if len(left) < len(best[2]):
            best = (rung, candidate, left)
        if not left:
            break
    return best[0], best[1], best[2], before


def recheck(values: str, feeds: dict[str, np.ndarray], outputs: Mapping[str, Any],
            make: Callable[[str], dict[str, np.ndarray]],
            run: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any] | None]) -> tuple[str, dict[str, np.ndarray],
                                                                                       dict[str, str], dict[str, str]]:
    """:func:`informative` at a second size of the same inputs: ``values`` (the rung chosen at the
    search size) with ``feeds`` when its ``outputs`` there carry information, else the ladder climbed
    again from standard normal (``make``, ``run`` as for :func:`informative`)."""
    if not degenerate(outputs):
        return values, feeds, {}, {}
    if values != NORMAL:
        normal = make(NORMAL)
        got = run(normal)
        if got is None:  # no usable output at standard normal there: the rung as it is
            return values, feeds, degenerate(outputs), {}
        feeds, outputs = normal, got
    return informative(make, run, feeds, outputs)


def usable_rung(make: Callable[[int, str], dict[str, np.ndarray]], usable: Callable[[Mapping[str, np.ndarray]], bool],
                batch: int, budget: int) -> tuple[str, int, dict[str, np.ndarray]] | None:
    """``(rung, rows, feeds)``: the first rung, then the first of ``batch x`` :data:`BATCH_STEPS` rows, at which
    the original gives usable outputs, for an output whose *size* the values decide (non-max suppression's
    score threshold, ``boolean_mask``, ``where``: empty on a few standard-normal rows, whatever the other
    sizes). ``make(rows, rung)``: the made-up feeds; None when nothing works within ``budget`` elements."""
    for step in BATCH_STEPS:
        for rung in LADDER[1:] if step == 1 else LADDER:
            feeds = make(batch * step, rung)
            if any(v.size > budget for v in feeds.values()):
                return None
            if usable(feeds):
                return rung, batch * step, feeds
    return None


def note(values: str, saturated: Mapping[str, str], before: Mapping[str, str]) -> str:
    """The summary's words for the rung chosen (empty for standard normal on informative outputs)."""
    outs = lambda d: "; ".join(f"'{k}': {v}" for k, v in d.items())  # noqa: E731
    text = ""
    if values != NORMAL:
        text += f"; made-up floats {values} (standard normal saturates {outs(before)})"
    if saturated:
        text += (f"; WARNING: outputs saturated on made-up inputs ({outs(saturated)}): this check cannot see "
                 f"small errors there; {REAL_CHECK}")
    return text


def record(values: str, saturated: Mapping[str, str], before: Mapping[str, str]) -> dict[str, Any]:
    """The report's ``verification.values`` (empty for standard normal on informative outputs)."""
    return {"values": values_record(values, saturated, before)} if values != NORMAL or saturated else {}


def values_record(values: str, saturated: Mapping[str, str], before: Mapping[str, str]) -> dict[str, Any]:
    """One rung's record: ``{"floats", "saturated_at_standard_normal", "saturated"?, "advice"?}``."""
    out: dict[str, Any] = {"floats": values, "saturated_at_standard_normal": dict(before)}
    if saturated:
        out["saturated"] = dict(saturated)
        out["advice"] = REAL_CHECK
    return out


def realistic_note(values: str, saturated: Mapping[str, str], before: Mapping[str, str]) -> str:
    """The summary's words for the realistic size's rung when it differs from the search size's."""
    return f"; at the realistic size: made-up floats {values}" + (note(values, saturated, before) if saturated else "")


def recorded_note(verification: Mapping[str, Any]) -> str:
    """:func:`note`'s words (and :func:`realistic_note`'s) from a report's ``verification`` record:
    the one rendering of the made-up inputs' scale, for report.md and report.html ("" when there is
    nothing to say)."""
    text = ""
    for key, words in (("values", note), ("realistic_values", realistic_note)):
        values = verification.get(key)
        if values:
            text += words(values.get("floats", NORMAL), values.get("saturated") or {},
                          values.get("saturated_at_standard_normal") or {})
    return text.lstrip("; ")
