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
- or its rows (two or more) repeat: ``|y_i - y_0| <= eps * max|y|`` (the output ignores the input);
- or it is *mostly saturated*: of its values (at least :data:`MIN_VALUES`), more than :data:`MOSTLY` (three in four)
  are *saturated*, within ``t`` of -1, 0 or 1 - an output whose last axis is a distribution (values in
  [0, 1] summing to 1: a softmax) by whole distributions, all its values saturated when every one is
  (one-hot), none otherwise: a classifier's small probabilities are its normal state (issue 24, DePTH's
  TCR-HLA model: 92 % of its sigmoid scores within ``t`` of 0 or 1 on 64 standard-normal rows, but not
  both of the 2 rows searched, so nothing was said, and every artifact's error was exactly 0: a check
  that could hardly fail). Three in four, not half: a ReLU over centred values zeroes about half of
  them, its normal state, and a threshold at half would climb the ladder for it on the noise of the draw.
  :func:`saturated_fraction` is that share. An output of fewer values (one score per sample at a batch
  of 2), some of them saturated, is measured on 64 made-up rows at the same scale, and so is every rung
  after it (:data:`PROBE_ROWS`: fewer when 64 exceed the element budget; ``probe`` of
  :func:`informative`); on 16, a ReLU head's zeros, half in expectation, passed three in four by chance.

Why ``t`` for levels: a sigmoid's slope is ``s(1 - s)``, at most its distance to 0 or 1 (a softmax's
likewise), so an output within ``t`` of its level damps an error in the logits below ``t`` unless that
error exceeds 1; and an output within ``t`` of 0 passes the absolute bound whatever it holds. Equal
values and repeated rows move by no more than ``eps`` under a perturbed weight: no bound sees that.

When the standard-normal draw leaves an output degenerate, the free float inputs (no role - ids, masks,
lengths, :mod:`tfopt.verification.made_up_inputs` - and no domain, :mod:`tfopt.verification.input_domains`;
those are never changed) are redrawn on a fixed ladder of the scales a TensorFlow user's data has, and
the rung with the least saturation is kept: the ladder stops at the first rung where no value is
saturated, else the rung with the fewest degenerate outputs, then the least saturated share summed
over the outputs, wins (the earliest on a tie: standard normal first). Least, not the first below
:data:`MOSTLY`: the verification rows are few (2, an artifact's 1), and at a rung where 70 % of the
values saturate they are likely among them.

1. ``uniform [0, 1]`` - images scaled by 1/255, the commonest preprocessing done outside a model;
2. ``normal x 0.1``, 3. ``normal x 0.01`` - smaller standardized features: a saturating head's
   pre-activation shrinks with its input's scale, so tenfold steps reach its linear range.

Each rung is a function of the same standard-normal draw ``z`` (``Phi(z)``, ``0.1 z``, ``0.01 z``;
``Phi`` the normal CDF, so ``Phi(z)`` is uniform), so every other input keeps exactly its values.
When even that rung leaves an output degenerate, the record, the report and the summary say which
outputs stayed saturated, how much (evidence weak), and that ``--calibration``/``--eval-data`` gives a real check; nothing fails for it.
Outputs informative at standard normal keep today's inputs: the ladder is not tried (an output of
fewer than :data:`MIN_VALUES` values with one of them saturated costs one run of the original at up to
64 rows, to measure its share).

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
MOSTLY = 0.75  # more than this share of an output's values saturated: the ladder is climbed (docstring)
MIN_VALUES = 16  # a saturated share is judged on at least this many values of an output
PROBE_ROWS = (64, 32, 16)  # made-up rows (the most within the element budget) measuring an output of few values
DISTRIBUTION_SUM = 1e-3  # a last axis in [0, 1] summing to 1 within this is a softmax's distribution
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


def saturated_fraction(value: Any) -> float:
    """The share of a float output's values that are saturated (see the module docstring): within
    :data:`LEVEL_TOL` of -1, 0 or 1, a softmax's distribution counted whole (all when one-hot, else none)."""
    y = np.asarray(value, np.float64)
    if y.size == 0:
        return 0.0
    near = np.min(np.abs(y[..., None] - np.array(LEVELS)), axis=-1) <= LEVEL_TOL
    if y.ndim >= 1 and y.shape[-1] >= 2 and y.min() >= 0 and y.max() <= 1 \
            and np.all(np.abs(y.sum(axis=-1) - 1) <= DISTRIBUTION_SUM):
        near = np.broadcast_to(np.all(near, axis=-1, keepdims=True), y.shape)
    return float(np.mean(near))


def fractions(outputs: Mapping[str, Any]) -> dict[str, float]:
    """Output name -> :func:`saturated_fraction`, for the finite float outputs."""
    return {name: saturated_fraction(y) for name, value in outputs.items()
            if (y := np.asarray(value)).dtype.kind == "f" and y.size and np.all(np.isfinite(y))}


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
        levels = " or ".join(f"{c:g}" for c in LEVELS if np.any(np.abs(rows - c) <= LEVEL_TOL))
        if np.all(leveled):
            found[name] = f"every value within {LEVEL_TOL:g} of {levels}"
        elif np.any(leveled) and np.all(leveled | flat):
            found[name] = f"every sample's values within {LEVEL_TOL:g} of 0/1 or all one value"
        elif rows.shape[0] >= 2 and np.all(np.abs(rows - rows[:1]) <= EPS * np.max(np.abs(rows))):
            found[name] = "the same values for every sample"
        elif y.size >= MIN_VALUES and (share := saturated_fraction(y)) > MOSTLY:
            found[name] = f"{share:.1%} of values within {LEVEL_TOL:g} of {levels}"
    return found


Rung = tuple[str, dict[str, np.ndarray], dict[str, str], dict[str, str], dict[str, float]]


def informative(make: Callable[[str], dict[str, np.ndarray]],
                run: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any] | None],
                feeds: dict[str, np.ndarray], outputs: Mapping[str, Any],
                probe: Callable[[str], dict[str, np.ndarray] | None] | None = None) -> Rung:
    """The ladder rung with the least saturation (see the module docstring).

    Args:
        make: the made-up feeds at a rung (same shapes and seed as ``feeds``).
        run: the original model's outputs on feeds, or None when it gives no usable ones there.
        feeds, outputs: the standard-normal feeds and the original's outputs on them.
        probe: the made-up feeds at a rung with more rows (:data:`PROBE_ROWS`), run to measure an output
            of fewer than :data:`MIN_VALUES` values some of which saturate (None, or None at a rung:
            measured on ``make``'s alone).

    Returns:
        ``(rung, feeds, still degenerate outputs, degenerate at standard normal, saturated share at
        the rung)``; the share is empty when the ladder was not tried.
    """
    probing = False  # set at standard normal: every rung is then measured on the probe's rows alike

    def judged(rung: str, got: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
        nonlocal probing
        found, share = degenerate(got), fractions(got)
        few = [name for name, value in got.items() if np.size(value) < MIN_VALUES]
        probing = probing or (probe is not None and any(share.get(name, 0.0) > 0 for name in few))
        rows = probe(rung) if probing and probe is not None else None  # few values, some saturated
        more = run(rows) if rows is not None else None
        if more is not None:
            found, share = {**degenerate(more), **found}, fractions(more)
        return found, share

    before, share = judged(NORMAL, outputs)
    if not before:
        return NORMAL, feeds, {}, {}, {}
    best: Rung = (NORMAL, feeds, before, before, share)
    for rung in LADDER[1:]:
        candidate = make(rung)
        got = run(candidate)
        if got is None:
            continue
        left, share = judged(rung, got)
        if (len(left), sum(share.values())) < (len(best[2]), sum(best[4].values())):
            best = (rung, candidate, left, before, share)
        if not left and not any(share.values()):  # nothing saturated: no rung does better
            break
    return best


def recheck(values: str, feeds: dict[str, np.ndarray], outputs: Mapping[str, Any],
            make: Callable[[str], dict[str, np.ndarray]],
            run: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any] | None]) -> Rung:
    """:func:`informative` at a second size of the same inputs: ``values`` (the rung chosen at the
    search size) with ``feeds`` when its ``outputs`` there carry information, else the ladder climbed
    again from standard normal (``make``, ``run`` as for :func:`informative`)."""
    if not degenerate(outputs):
        return values, feeds, {}, {}, {}
    if values != NORMAL:
        normal = make(NORMAL)
        got = run(normal)
        if got is None:  # no usable output at standard normal there: the rung as it is
            return values, feeds, degenerate(outputs), {}, fractions(outputs)
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


def note(values: str, saturated: Mapping[str, str], before: Mapping[str, str],
         share: Mapping[str, float] | None = None) -> str:
    """The summary's words for the rung chosen (empty for standard normal on informative outputs);
    ``share``: the saturated share of each output at that rung (:func:`saturated_fraction`)."""
    outs = lambda d: "; ".join(f"'{k}': {v}" for k, v in d.items())  # noqa: E731
    text = ""
    if values != NORMAL:
        there = ", ".join(f"'{k}' {v:.1%}" for k, v in (share or {}).items())
        text += f"; made-up floats {values} (standard normal saturates {outs(before)}" + \
            (f"; saturated there: {there})" if there else ")")
    if saturated:
        text += (f"; WARNING: outputs saturated on made-up inputs ({outs(saturated)}): evidence weak, this check "
                 f"cannot see small errors there; {REAL_CHECK}")
    return text


def record(values: str, saturated: Mapping[str, str], before: Mapping[str, str],
           share: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The report's ``verification.values`` (empty for standard normal on informative outputs)."""
    return {"values": values_record(values, saturated, before, share)} if values != NORMAL or saturated else {}


def values_record(values: str, saturated: Mapping[str, str], before: Mapping[str, str],
                  share: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One rung's record: ``{"floats", "saturated_at_standard_normal", "saturated_fraction"?, "saturated"?,
    "advice"?}`` (``saturated_fraction``: output -> the share of its values saturated at ``floats``)."""
    out: dict[str, Any] = {"floats": values, "saturated_at_standard_normal": dict(before)}
    if share:
        out["saturated_fraction"] = {k: round(v, 4) for k, v in share.items()}
    if saturated:
        out["saturated"] = dict(saturated)
        out["advice"] = REAL_CHECK
    return out


def realistic_note(values: str, saturated: Mapping[str, str], before: Mapping[str, str],
                   share: Mapping[str, float] | None = None) -> str:
    """The summary's words for the realistic size's rung when it differs from the search size's."""
    return f"; at the realistic size: made-up floats {values}" + \
        (note(values, saturated, before, share) if saturated else "")


def recorded_note(verification: Mapping[str, Any]) -> str:
    """:func:`note`'s words (and :func:`realistic_note`'s) from a report's ``verification`` record:
    the one rendering of the made-up inputs' scale, for report.md and report.html ("" when there is
    nothing to say)."""
    text = ""
    for key, words in (("values", note), ("realistic_values", realistic_note)):
        values = verification.get(key)
        if values:
            text += words(values.get("floats", NORMAL), values.get("saturated") or {},
                          values.get("saturated_at_standard_normal") or {}, values.get("saturated_fraction"))
    return text.lstrip("; ")
