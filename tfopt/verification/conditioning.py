"""Ill-conditioned originals: made-up inputs on which the original model disagrees with itself.

A recurrent network (issue 24: deepac-lstm, a reverse-complement Bidirectional LSTM over one-hot
DNA) or an iterated map amplifies round-off: on standard-normal inputs, far from the one-hot reads it
was trained on, the *original* gives different numbers for the same rows run as one batch and run one
row at a time (0.35 apart, oneDNN off; 0.57 between oneDNN on and off), while on one-hot reads the two
agree within 2.4e-7. An artifact compared with such a reference differs by the reference's own noise
(7e-4 there), and blaming it says nothing about the artifact.

So when an artifact fails its bound ``t`` on **made-up** inputs (only then: a passing check costs
nothing, and given data is what the user vouches for), the original is run again in ways that must
give the same numbers mathematically (:func:`~tfopt.verification.self_disagreement.disagreement`, the largest
of them, recorded by name; once per set of feeds in a conversion):

- ``rows``: the batch one row at a time;
- ``kernels``: its graph under a second kernel choice, in TensorFlow sessions with Grappler's rewrites on
  and off (:mod:`tfopt.verification.kernel_choice`). On an AVX-512 CPU with oneDNN on, deepac-lstm's
  batch and rows agree (1.5e-7) while its eager Keras call and its graph in a session differ by 0.0242:
  the kernels differ, and so does its frozen graph.

In verification units (``max|a - b| / (1 + max|b|)``, what ``t`` bounds), with ``e`` the artifact's error
and ``d`` the original's disagreement with itself:

- ``e <= K * d`` (:data:`K` = 10) - the reference is as unstable as the artifact is wrong: the
  artifact is not blamed. The made-up floats climb the ladder of
  :mod:`tfopt.verification.saturation` (uniform [0, 1], normal x 0.1, normal x 0.01) to the first rung
  where the original is *self-consistent*, ``d <= t / K`` (its own noise at most a tenth of the bound),
  and the artifact is held to ``t`` there (:func:`stable_rung`). Ten: round-off amplified by a
  recurrence varies by an order of magnitude from one kernel to another (0.35 vs 0.57 above), so an
  artifact error within ten times the measured self-disagreement is that same noise, and a reference
  that reproduces itself within a tenth of the bound cannot by itself fail it.
- no rung is self-consistent: :class:`~tfopt.errors.IllConditionedError` (a
  :class:`~tfopt.errors.VerificationError`, exit 7, like a stochastic original: nothing could be
  verified, and only real inputs - ``--calibration``/``--eval-data`` - can verify it).
- otherwise (``e > K * d``, ``d = 0``, or a self-consistent rung where the artifact still fails): the
  artifact's error stands, as before. An output of another size, or at the self-consistent rung a non-float
  output that differs, is an infinite error (:func:`artifact_gap`): no noise of the original explains it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfopt.errors import IllConditionedError, TfoptError, VerificationError
from tfopt.verification.feed_shapes import feed_shapes
from tfopt.verification.kernel_choice import KernelChoices
from tfopt.verification.saturation import LADDER
from tfopt.verification.self_disagreement import MEASURES, Gap, Measure, SelfDisagreements, measure, scaled_gap

if TYPE_CHECKING:
    from tfopt.graph import Model
    from tfopt.verification.verify_inputs import VerifyInputs

_log = logging.getLogger(__name__)

K = 10.0  # see the module docstring
PROBE_BATCH = 8  # rows a rung is measured on: a batch of 1 cannot disagree with its single row


class Found(NamedTuple):
    """An ill-conditioned original's verdict: the self-consistent ``rung`` the artifact was judged at, the
    original's self-disagreement ``gap`` at the failing inputs, found ``by`` that measure, and the artifact's
    ``error`` at the rung."""

    rung: str
    gap: float
    error: float
    by: str


def artifact_gap(got: Mapping[str, Any], expected: Mapping[str, Any], *, exact: bool = False) -> float:
    """The artifact's error in the bound's units (:func:`scaled_gap`), infinite where the original's noise cannot
    explain it: an output of another size (NMS padded to its maximum), or with ``exact`` (at a self-consistent
    scale) a non-float output (ids, classes) that differs."""
    shaped = {}
    for name, ref in expected.items():
        x, y = np.asarray(got[name]), np.asarray(ref)
        if x.size != y.size:
            return float("inf")
        if exact and y.dtype.kind != "f" and not np.array_equal(x.reshape(y.shape), y):
            return float("inf")
        shaped[name] = x.reshape(y.shape)  # an output whose rank the data decides is compared element by element
    return scaled_gap(shaped, expected)


def stable_rung(run: Callable[[Mapping[str, Any]], Mapping[str, Any]], artifact: Callable[[Mapping[str, Any]], Mapping[str, Any]],
                make: Callable[[str], dict[str, np.ndarray]], current: str, error: float, gap: float | Gap,
                bound: float, at: str, kernels: KernelChoices | None = None, measured: Measure | None = None,
                subject: str = "the artifact") -> tuple[str, float] | None:
    """Where the artifact is judged when the original is ill-conditioned (see the module docstring).

    Args:
        run, artifact: the original model and the artifact on feeds keyed by input name.
        make: made-up feeds at a rung of the ladder (:data:`PROBE_BATCH` rows).
        current: the rung ``error`` (the artifact's) and ``gap`` (the original's, a bare float: ``rows``)
            were measured at.
        at: where (``at x:8x4 (made up inputs)``), for the error.
        kernels: the second kernel choice measured at each rung too (:func:`disagreement`).
        measured: the original's outputs and disagreement on feeds (default :func:`measure`; a conversion's
            :class:`SelfDisagreements` measures each rung once).
        subject: what was checked, for the error (the frozen model, an optimized graph, an artifact).

    Returns:
        None when the reference is stable enough to blame the artifact (``error > K * gap``, or ``gap`` 0);
        else ``(rung, error there)`` at the first self-consistent rung below ``current``, where the
        artifact is within ``bound`` (the caller then keeps it) or not (the caller fails it there).

    Raises:
        IllConditionedError: no rung of the ladder is self-consistent.
    """
    gap = gap if isinstance(gap, Gap) else Gap(gap, "rows")
    if gap.value <= 0 or error > K * gap.value:  # an original that reproduces itself exactly explains no error
        return None
    below = LADDER[LADDER.index(current) + 1:] if current in LADDER else ()
    for rung in below:
        try:
            feeds = make(rung)
            expected, there = measured(feeds) if measured else measure(run, feeds, kernels)
        except Exception:  # the original gives nothing at this rung: not a self-consistent one
            continue
        if there is not None and there.value <= bound / K:
            return rung, artifact_gap(artifact(feeds), expected, exact=True)
    raise IllConditionedError(
        f"the original model is ill-conditioned on made-up inputs {at}: it differs from itself by {gap.value:.3g} "
        f"({MEASURES[gap.by]}, max|a-b|/(1+max|b|)), about as much as {subject} differs from it "
        f"({error:.3g} <= {K:g} x {gap.value:.3g}), and at every smaller scale tried "
        f"({', '.join(below) or 'none'}) too, so {subject} is not blamed and nothing was verified: "
        "pass --calibration or --eval-data (real inputs)", gap.value)


def on_made_up(model: Any, verified_at: Any, artifact: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any]],
               error: float, bound: float, seed: int = 0,
               original: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
               kernels: KernelChoices | None = None, measured: SelfDisagreements | None = None,
               subject: str = "the artifact") -> Found | None:
    """An artifact ``error`` beyond ``bound`` (the bound's units) on made-up inputs ``verified_at``, judged
    again (see the module docstring) on :data:`PROBE_BATCH` rows of them, as the report makes its rows.

    Args:
        model: the original (its runner, bindings, inputs and outputs).
        artifact: the artifact on feeds (run a row at a time here: every runtime takes batch 1).
        original: the original on feeds, bindings included (default: ``model``'s reference, as verification runs it).
        kernels: the second kernel choice (default: ``model``'s graph, :class:`KernelChoices`); closed here.
        measured: the conversion's measurements of ``model`` (:class:`SelfDisagreements`), else measured here.
        subject: what was checked, for the error.

    Returns:
        None when the error stands (given data: the user vouches for it; nothing measured; an original
        stable enough to blame the artifact); else :class:`Found`.

    Raises:
        IllConditionedError: no rung of the ladder is self-consistent.
    """
    if verified_at is None or verified_at.source != "made up":
        return None
    bindings = model.bindings if model.reference is not None else {}
    kernels = kernels or KernelChoices(model, bindings)
    try:
        return _on_made_up(model, verified_at, artifact, error, bound, seed, original, kernels, bindings, measured,
                           subject)
    finally:
        kernels.close()


def _on_made_up(model: Any, verified_at: Any, artifact: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any]],
                error: float, bound: float, seed: int, original: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None,
                kernels: KernelChoices, bindings: Mapping[str, Any], cache: SelfDisagreements | None,
                subject: str) -> Found | None:
    import dataclasses

    from tfopt.runtimes.tensorflow import GraphRunner

    if original is None:
        reference = model.reference if model.reference is not None else GraphRunner(model)  # as verify's reference_runner
        original = lambda f: reference({**f, **bindings})  # noqa: E731
    names = [s.name for s in model.outputs]
    call = original
    run = lambda f: {n: np.asarray(call(f)[n]) for n in names}  # noqa: E731

    def made(rung: str) -> dict[str, np.ndarray]:
        at = dataclasses.replace(verified_at, values=rung, realistic=None)
        return at.with_batch(model.inputs, probe_rows(at, model.inputs, model.graph_def), seed, model.graph_def).feeds

    def rows(f: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = [artifact({k: v[i:i + 1] for k, v in f.items()}) for i in range(len(next(iter(f.values()))))]
        return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in names}

    def measured(f: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], Gap | None]:
        return cache(run, f, kernels) if cache is not None else measure(run, f, kernels)

    try:
        feeds = made(verified_at.values)
        _, gap = measured(feeds)
    except Exception:  # shapes that take no other batch, an original that gives nothing: the error stands
        return None
    if gap is None:
        return None
    at = f"at {feed_shapes(feeds)} ({verified_at.values})"
    found = stable_rung(run, rows, made, verified_at.values, error, gap, bound, at, kernels, measured, subject)
    return None if found is None else Found(found[0], gap.value, found[1], gap.by)


def probe_rows(at: VerifyInputs, specs: Any, graph_def: Any = None) -> int:
    """The rows a rung is measured on: :data:`PROBE_BATCH`, fewer when as many would take an input past the
    element budget every made-up run of the original keeps (a 3-D U-Net over 180x172x86 voxels: 8 rows ran
    the original on 21 M voxels, 14-20 GB, and the OS killed tfopt); at least 1, where only the ``kernels``
    measure can see a disagreement."""
    from tfopt import _tf

    one = at.with_batch(specs, 1, 0, graph_def).feeds
    per_row = max((int(np.size(v)) for v in one.values()), default=1)
    return max(1, min(PROBE_BATCH, _tf.ELEMENT_BUDGET // max(per_row, 1)))


def judge(model: Any, at: Any, derived: Any, error: float, bound: float, what: str, run: Any = None,
          kernels: KernelChoices | None = None, measured: SelfDisagreements | None = None,
          subject: str = "the artifact") -> Found | None:
    """:func:`on_made_up`, its errors naming ``what`` (a stage's graph, an artifact) and ``subject``."""
    try:
        found = on_made_up(model, at, derived, error, bound, original=run, kernels=kernels, measured=measured,
                           subject=subject)
    except IllConditionedError as exc:
        raise IllConditionedError(f"verifying {what}: {exc}", exc.gap) from None
    if found is not None and (problem := beyond(found, bound, subject)):
        raise VerificationError(f"verifying {what}: the original is ill-conditioned on made-up inputs; {problem}")
    return found


def reconsider(row: dict[str, Any], samples: int, verified_at: Any, model: Any, outdir: str,
               seed: int = 0, measured: SelfDisagreements | None = None) -> TfoptError | None:
    """A report row beyond its bound (:mod:`tfopt.verification.fidelity_bound`) judged by :func:`on_made_up`
    (``measured``: the conversion's measurements of ``model``, :class:`SelfDisagreements`).

    Returns:
        None when the artifact is verified at a self-consistent rung: the row's ``beyond_bound`` is
        then replaced by ``conditioning`` (:func:`record`); else the error to fail it with
        (:func:`~tfopt.verification.fidelity_bound.fidelity_error`, or :class:`~tfopt.errors.IllConditionedError`).
    """
    import os

    from tfopt.runtimes import runner_for
    from tfopt.verification.fidelity_bound import KEY, fidelity_error

    failure = fidelity_error(row, samples, verified_at)
    if verified_at is None or verified_at.source != "made up":
        return failure
    runner = runner_for(row["format"], os.path.join(outdir, row["path"]), model)
    what = f"verifying {row['format']} {row['precision']}"
    subject = artifact_subject(f"{row['format']} {row['precision']}")
    try:
        found = on_made_up(model, verified_at, runner, float(row["fidelity"]["scaled_err"]),
                           bound := float(row[KEY]["bound"]), seed, measured=measured, subject=subject)
    except IllConditionedError as exc:
        return IllConditionedError(f"{what}: {exc}", exc.gap)
    finally:
        runner.close()
    if found is None:
        return failure
    if (problem := beyond(found, bound, subject)):
        return VerificationError(f"{failure}; {problem}")
    row.pop(KEY)
    row["conditioning"] = record(verified_at.values, found)
    return None


def artifact_subject(what: str) -> str:
    """``the onnx fp32 artifact``: an artifact named by its target and precision (``what``), as errors name it."""
    return f"the {what} artifact"


def beyond(found: Found, bound: float, subject: str = "the artifact") -> str:
    """Why ``subject`` fails at the self-consistent rung ``found`` (empty: it passes)."""
    return (f"at made-up floats {found.rung}, where the original is self-consistent, {subject}'s error is "
            f"{found.error:.3g} (bound {bound:g})") if found.error > bound else ""


def record(current: str, found: Found) -> dict[str, Any]:
    """What the manifest and report keep when an artifact or a stage's graph was verified at a smaller rung than ``current``:
    ``measure`` names what found the original's self-disagreement (``rows``, ``kernels``)."""
    return {"self_disagreement": found.gap, "measure": found.by, "at": current, "verified_at": found.rung,
            "scaled_err": found.error,
            "note": f"the original differs from itself by {found.gap:.3g} at made-up floats {current} "
                    f"({MEASURES[found.by]}): verified at {found.rung} instead, error {found.error:.3g}"}


def verified_at_a_stable_scale(artifact: Any, runner: Any, original: Model, inputs_at: VerifyInputs,
                               expected: Mapping[str, Any], got: Mapping[str, Any], bound: float, what: str,
                               measured: SelfDisagreements | None = None) -> bool:
    """True when an original ill-conditioned on these made-up inputs verified the artifact (``what``: its target and
    precision) at a self-consistent rung instead (recorded on ``artifact.conditioning``); ``measured``: the
    conversion's measurements of ``original`` (:class:`SelfDisagreements`)."""
    found = judge(original, inputs_at, runner, artifact_gap(got, expected), bound, what, measured=measured,
                  subject=artifact_subject(what))
    if found is not None:
        artifact.conditioning = record(inputs_at.values, found)
    return found is not None


def stage_verified_at_a_stable_scale(run: Callable[[Mapping[str, Any]], Any], original: Model,
                                     bindings: Mapping[str, Any], derived: Model, at: VerifyInputs,
                                     expected: Mapping[str, Any], got: Mapping[str, Any], bound: float, what: str,
                                     as_written: bool, records: dict[str, Any] | None = None) -> bool:
    """:func:`verified_at_a_stable_scale` for a stage's graph (``what``: the frozen model, an optimized one; run in
    TensorFlow) against ``original`` (run by ``run``; its graph, fed ``bindings``, is the second kernel choice):
    True when it is verified at a self-consistent rung instead, recorded in ``records`` under ``what`` (the
    verification inputs' :attr:`~tfopt.verification.verify_inputs.VerifyInputs.conditioning`) and logged."""
    from tfopt.runtimes.tensorflow import GraphRunner

    stage_graph = GraphRunner(derived, rewrites=not as_written)
    try:
        found = judge(derived, at, stage_graph, artifact_gap(got, expected), bound, what, run,
                      KernelChoices(original, bindings), subject=what)
    finally:
        stage_graph.close()
    if found is not None:
        kept = record(at.values, found)
        if records is not None:
            records.setdefault(what, kept)  # the first input set's (the realistic size's is checked after it)
        _log.info("%s: %s", what, kept["note"])
    return found is not None
