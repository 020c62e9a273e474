"""Verification inputs that fit the model, and the original-vs-derived comparison run on them.

Inputs come, in order, from ``--eval-data``, from ``--calibration``, from ``--verify-shape`` (a concrete shape to
verify at; the artifact keeps its dynamic dimensions), and only then are made up. Made-up inputs first learn which
unknown dimensions the graph ties together (:mod:`tfopt.verification.shapes`: a time-major RNN's batch is axis 1 of
its sequence and axis 0 of its lengths), fill the batch with the batch size and search the other dimensions: the
*original* model runs at 8, 16, 32, ... (one size for every other dimension, within :data:`tfopt._tf.ELEMENT_BUDGET`
per input) until every output is non-empty and finite. A cropping layer empties a short sequence; six
poolings of a short time axis leave a global average over nothing (NaN): neither is a
verification, and neither is the fault of freezing or a converter, so when no size works the
error names the failing node and asks for a ``--verify-shape`` that keeps the ties. Values keep to
what the graph does with each input (:mod:`tfopt.verification.made_up_inputs`: ids, masks, lengths;
:mod:`tfopt.verification.input_domains`: positive before a ``Log``; :mod:`tfopt.verification.input_structure`:
ragged row lengths that add up to the values' count), and outputs must carry information
(:mod:`tfopt.verification.saturation`: a head saturated at 0/1 by standard-normal floats is tried at
uniform [0, 1], then smaller scales, and said to be saturated when none helps).

A size below ``REALISTIC`` (8x8 for an image model) is verified at one realistic size too, the
first of 64, 128, 256 the original model answers: a network's error at 8x8 is not its error at
368x432 (padding dominates a tiny image).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._tf import ELEMENT_BUDGET
from tfopt.errors import (
    ConversionError,
    GraphError,
    MadeUpInputsError,
    OptionError,
    TfoptError,
    VerificationError,
    VerificationTimeoutError,
    one_line,
)
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.tensorflow import GraphRunner
from tfopt.verification.conditioning import stage_verified_at_a_stable_scale, verified_at_a_stable_scale
from tfopt.verification.data_batches import DATA_ROWS, given_rows, join_samples
from tfopt.verification.input_data import npz_arrays, verify_shapes
from tfopt.verification.input_domains import reasons
from tfopt.verification.kernels import kernel_refusal
from tfopt.verification.refused_inputs import failure, run_original
from tfopt.verification.saturation import (
    NORMAL,
    PROBE_ROWS,
    informative,
    recheck,
    usable_rung,
)
from tfopt.verification.stochastic import check_reproducible
from tfopt.verification.testing import OutputDiff, assert_equivalent, random_inputs
from tfopt.verification.verify_inputs import VerifyData, VerifyInputs

SEARCH_SIZES = tuple(8 << i for i in range(12))  # 8 .. 16384
REALISTIC = 64  # the smallest size that is verified as "realistic" (see the module docstring)
REALISTIC_TRIES = 3  # 64, 128, 256 at most: one extra verified size, its search bounded


def reference_runner(model: Model, run: Any = None) -> Any:
    """The original model's runner (``run``, else its own; a graph without one, a frozen .pb, runs its
    GraphDef), each call held to the verification bound (:class:`tfopt.verification.deadline.BoundedReference`)."""
    from tfopt.verification.deadline import BoundedReference

    run = run or (model.reference if model.reference is not None else GraphRunner(model))
    return run if isinstance(run, BoundedReference) else BoundedReference(run, model.graph_def, model.inputs)


def reference_outputs(original: Model, inputs_at: VerifyInputs, runner: Any = None) -> dict[str, Any]:
    """``{output name: array}`` of the original model on ``inputs_at`` (its bindings fed too)."""
    bindings = original.bindings if original.reference else {}
    got = run_original(runner or reference_runner(original), {**inputs_at.feeds, **bindings}, inputs_at)
    return {s.name: got[s.name] for s in original.outputs}


def output_problem(outputs: Mapping[str, Any]) -> str:
    """Why these outputs of the original model cannot be verified against ("" when they can)."""
    for name, value in outputs.items():
        arr = np.asarray(value)
        if arr.size == 0:
            return f"output '{name}' is empty (shape {arr.shape})"
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "inf"
            return f"output '{name}' holds {bad} ({int(np.sum(~np.isfinite(arr)))} of {arr.size} values)"
    return ""


def choose_inputs(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], specs: Sequence[TensorSpec],
                  data: VerifyData | None = None, *, outputs: Sequence[str] | None = None, batch: int = 2,
                  seed: int = 0, graph_def: Any = None) -> VerifyInputs:
    """Inputs the original model gives usable (non-empty, finite) outputs for.

    Args:
        original: runs the original model (bindings included) on feeds keyed by input name.
        specs: the inputs to feed (after freezing: what the derived model takes).
        data: given data and shapes; made-up inputs when it holds none.
        outputs: the output names that matter (default: every output ``original`` returns).
        graph_def: the graph the inputs feed: made-up ids into an Embedding stay inside its table.

    Raises:
        OptionError: given data or a ``--verify-shape`` the original model cannot run or
            gives empty or non-finite outputs for.
        MadeUpInputsError: no made-up size gives usable outputs.
    """
    data = data or VerifyData()
    if data.eval_data:
        feeds = data.eval_data(specs) if callable(data.eval_data) else npz_arrays(data.eval_data, specs, option="--eval-data")
        return check_inputs(original, VerifyInputs(given_rows(original, specs, feeds, graph_def, seed), "eval-data"),
                            f"--eval-data {data.eval_source or data.eval_data}", outputs)
    samples = data.calibration(specs) if callable(data.calibration) else data.calibration
    if samples:
        feeds = join_samples(samples[:DATA_ROWS], specs)
        return check_inputs(original, VerifyInputs(given_rows(original, specs, feeds, graph_def, seed), "calibration"),
                            f"--calibration {data.calibration_source or ''}".rstrip(), outputs)
    if data.shapes:
        shapes = verify_shapes(data.shapes, specs)
        made = lambda v: random_inputs(specs, seed=seed, batch=batch, shapes=shapes, graph_def=graph_def,  # noqa: E731
                                       values=v)
        given = check_inputs(original, VerifyInputs(made(NORMAL), "verify-shape", domains=reasons(graph_def, specs)),
                             "--verify-shape", outputs)
        usable = lambda f: None if output_problem(got := _select(original(f), outputs)) else got  # noqa: E731
        (given.values, given.feeds, given.saturated, given.saturated_before,
         given.saturated_fraction) = informative(
            made, usable, given.feeds, usable(given.feeds) or {})  # outputs that carry information (saturation)
        return given
    return _search(original, specs, outputs, batch=batch, seed=seed, graph_def=graph_def)


def _search(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], specs: Sequence[TensorSpec],
            outputs: Sequence[str] | None, *, batch: int, seed: int, graph_def: Any = None) -> VerifyInputs:
    from tfopt.verification.shapes import find_ties
    from tfopt.verification.tf_errors import tf_error_summary

    def feeds_at(shapes: Mapping[str, Sequence[int]], size: int = 8, values: str = NORMAL) -> dict[str, np.ndarray]:
        return random_inputs(specs, seed=seed, batch=batch, shapes=shapes, dynamic_dim=size, graph_def=graph_def,
                             values=values)

    got: dict[str, Any] = {}  # the original's outputs on the feeds ``problem`` last ran

    def problem(feeds: Mapping[str, Any]) -> tuple[str, Exception | None]:
        got.clear()
        try:
            got.update(_select(original(feeds), outputs))
            return output_problem(got), None
        except VerificationTimeoutError:
            raise
        except Exception as exc:  # a size the model cannot take (a VALID conv longer than the input)
            return f"the original model fails: {type(exc).__name__}: {tf_error_summary(exc)}", exc

    ties = find_ties(original, specs, graph_def, feeds_at)
    domains = reasons(graph_def, specs)
    dynamic = bool(ties.other_sizes(ties.shapes(batch, 8)))
    tried: list[str] = []
    first: dict[str, np.ndarray] | None = None
    for size in SEARCH_SIZES if dynamic else SEARCH_SIZES[:1]:
        feeds = feeds_at(ties.shapes(batch, size), size)
        if tried and any(v.size > ELEMENT_BUDGET for v in feeds.values()):
            break
        first = feeds if first is None else first
        candidate = VerifyInputs(feeds, "made up", list(tried), size=size, ties=ties, domains=domains)
        last, failure = problem(feeds)
        if not last:
            return _informative(candidate, got, batch, feeds_at, problem, dynamic)
        refusal = kernel_refusal(failure)  # no kernel for an op as configured: no other size helps
        if refusal is not None:
            raise refusal from failure
        tried.append(candidate.describe())
    if failure is None:  # empty or non-finite at every size: the values decide (a score threshold)
        why = {n: output_problem({n: v}).split(" is ", 1)[-1] for n, v in got.items() if output_problem({n: v})}
        found = usable_rung(lambda rows, rung: feeds_at(ties.shapes(rows, SEARCH_SIZES[0]), SEARCH_SIZES[0], rung),
                            lambda f: not problem(f)[0], batch, ELEMENT_BUDGET)
        if found is not None:
            rung, rows, feeds = found
            return _informative(VerifyInputs(feeds, "made up", tried, size=SEARCH_SIZES[0], ties=ties, domains=domains, values=rung,
                                             saturated_before=why if rung != NORMAL else {}),
                                got, rows, feeds_at, problem, dynamic)
    if failure is not None and batch > 1:  # one row at a time only: [batch, 5] / [batch] broadcasts at batch 1 alone
        try:  # (reactionrnn's relu(x) / sum(relu(x), -1)); a failure there too leaves batch 2's error standing
            single = _search(original, specs, outputs, batch=1, seed=seed, graph_def=graph_def)
            single.one_row = f"the original model answers batch 1 only (at batch {batch}: {last})"
            return single
        except MadeUpInputsError:
            pass
    if failure is not None and first is not None:  # ids or indices out of a range tfopt cannot see
        from tfopt.verification.made_up_inputs import random_inputs_rejected

        rejected = random_inputs_rejected(failure, specs, graph_def, first, original)
        if rejected is not failure:
            raise rejected from failure
    learned = failure is not None and ties.learn_failure(str(failure), candidate.shapes(), graph_def)  # a split
    example = ties.example(batch)  # never the very shape that failed (all dimensions known, unknown rank):
    suggest = (dynamic or learned) and not set(example.split(" ")) <= set(tried[-1].split(", "))
    fix = (f"verify at a shape the model accepts with --verify-shape {example}, or pass real inputs with "
           "--calibration/--eval-data") if suggest else "pass real inputs with --calibration/--eval-data"
    raise MadeUpInputsError(
        f"verifying: made-up inputs give the original model no usable output at {tried[-1]}"
        + (f" (tried {len(tried)} sizes up to it)" if len(tried) > 1 else "")
        + "".join(f", with {name} {why}" for name, why in domains.items()) + f": {last}. "
        f"This is about the inputs, not freezing or conversion: {fix}")


def _informative(found: VerifyInputs, got: Mapping[str, Any], batch: int, feeds_at: Callable[..., dict[str, np.ndarray]],
                 problem: Callable[[Mapping[str, Any]], tuple[str, Exception | None]], dynamic: bool) -> VerifyInputs:
    """``found`` with the rung of made-up floats whose outputs are the least saturated (:mod:`tfopt.verification.saturation`;
    a rung ``usable_rung`` chose is kept), and its realistic size at it. ``got``: the last outputs ``problem`` ran."""
    shapes = found.ties.shapes(batch, found.size)

    def probe(values: str) -> dict[str, np.ndarray] | None:  # more rows measure an output of few values
        for rows in PROBE_ROWS:  # the most within the element budget
            feeds = feeds_at(found.ties.shapes(rows, found.size), found.size, values)
            if all(v.size <= ELEMENT_BUDGET for v in feeds.values()):
                return feeds
        return None

    if found.values == NORMAL:
        found.values, found.feeds, found.saturated, found.saturated_before, found.saturated_fraction = informative(
            lambda v: feeds_at(shapes, found.size, v), lambda f: None if problem(f)[0] else dict(got), found.feeds,
            got, probe=probe)
    at_values = lambda s, z: feeds_at(s, z, found.values)  # noqa: E731
    found.realistic = real = _realistic(found.ties, found.size, batch, at_values, problem, found.domains) if dynamic else None
    if real is not None:  # the rung re-checked at the realistic size (``got``: its outputs there)
        big = found.ties.shapes(batch, real.size)
        real.values, real.feeds, real.saturated, real.saturated_before, real.saturated_fraction = recheck(
            found.values, real.feeds, dict(got), lambda v: feeds_at(big, real.size, v),
            lambda f: None if problem(f)[0] else dict(got))
    return found


def _realistic(ties: Any, size: int, batch: int, feeds_at: Callable[..., dict[str, np.ndarray]],
               problem: Callable[[Mapping[str, Any]], tuple[str, Exception | None]],
               domains: dict[str, str]) -> VerifyInputs | None:
    """The same inputs at the first of ``REALISTIC_TRIES`` sizes >= ``REALISTIC`` that the original
    model answers (None when ``size`` already is one, or none within the element budget works)."""
    if size >= REALISTIC:
        return None
    for big in [s for s in SEARCH_SIZES if s >= REALISTIC][:REALISTIC_TRIES]:
        feeds = feeds_at(ties.shapes(batch, big), big)
        if any(v.size > ELEMENT_BUDGET for v in feeds.values()):
            return None
        if not problem(feeds)[0]:
            return VerifyInputs(feeds, "made up", size=big, ties=ties, domains=domains)
    return None


def check_inputs(original: Callable[[Mapping[str, Any]], Mapping[str, Any]], given: VerifyInputs, option: str,
                 outputs: Sequence[str] | None) -> VerifyInputs:
    """``given`` when the original model answers it with non-empty, finite outputs.

    Raises:
        OptionError: it does not (the inputs given by ``option`` are at fault, not a stage).
    """
    try:
        problem = output_problem(_select(original(given.feeds), outputs))
    except VerificationTimeoutError:
        raise
    except Exception as exc:
        raise OptionError(f"{option}: the original model does not run on these inputs ({given.describe()}): "
                          f"{failure(exc)}") from exc
    if problem:
        raise OptionError(f"{option}: the original model's {problem} at {given.describe()}; nothing can be "
                          "verified on these inputs: give inputs (or a --verify-shape) it answers with finite values")
    return given


def _select(outputs: Mapping[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    return dict(outputs) if names is None else {n: outputs[n] for n in names}


def verify_against_reference(original: Model, derived: Model, bindings: Mapping[str, Any], *,
                             atol: float, rtol: float, inputs: VerifyInputs | None = None, seed: int = 0,
                             what: str = "the frozen model", stage: str = "freezing",
                             as_written: bool = False) -> list[OutputDiff]:
    """Run ``original`` and ``derived`` (in TensorFlow) on ``inputs`` and compare every output.

    ``as_written``: run the GraphDefs with grappler off, so the comparison sees what the stage
    did to the graph and nothing a session would rewrite once weights are constants (folding
    BatchNorm scales into conv weights changes float32 rounding: not the stage's doing).

    Raises:
        GraphError: ``derived`` does not run in TensorFlow (``stage`` broke it).
        VerificationError: outputs differ; the message names the stage, the reference and the shape.
    """
    runner = reference_runner(original, original.reference if original.reference is not None else
                              GraphRunner(original, rewrites=not as_written))
    names = [s.name for s in derived.outputs]
    if inputs is None:
        inputs = choose_inputs(lambda f: runner({**f, **bindings}), derived.inputs, outputs=names, seed=seed,
                               graph_def=derived.graph_def)
    diffs: list[OutputDiff] = []
    for at in inputs.sets():  # the realistic size too: errors grow with the image
        expected = runner({**at.feeds, **bindings})
        expected = {n: expected[n] for n in names}
        try:
            got = reference_runner(derived, GraphRunner(derived, rewrites=not as_written))(at.feeds)
        except Exception as exc:
            if isinstance(exc, VerificationTimeoutError):
                raise
            refusal = kernel_refusal(exc, subject=f"{what} (the graph the model exports)")  # not the stage's doing
            if refusal is not None:
                raise refusal from exc
            raise GraphError(f"{stage}: {what} does not run in TensorFlow at {at.describe()} although the original "
                             f"model does ({type(exc).__name__}: {one_line(exc)}); report this with the model") from exc
        try:
            found = assert_equivalent(expected, got, atol=atol, rtol=rtol,
                                      what=f"{stage}: {what} (at {at.describe()}, {at.source} inputs)")
        except VerificationError:  # a reference that disagrees with itself is not the stage's fault
            check_reproducible(lambda f: runner({**f, **bindings}), at.feeds, expected, graph_def=derived.graph_def,
                               outputs=names, tensors=[s.tensor for s in derived.outputs],
                               at=f"(at {at.describe()})", what=what)
            if not stage_verified_at_a_stable_scale(lambda f: runner({**f, **bindings}), original, bindings, derived,
                                                    at, expected, got, min(atol, rtol) or max(atol, rtol), what,
                                                    as_written, inputs.conditioning):
                raise
            continue
        diffs = found if not diffs else [max(a, b, key=lambda d: d.max_abs_err) for a, b in zip(diffs, found)]
    return diffs


def verify_artifact(artifact: Any, open_runner: Callable[[], Any], original: Model, inputs: VerifyInputs, *,
                    bound: float | None, preprocess: Any = None,
                    reference: Callable[[VerifyInputs], dict[str, Any]] | None = None) -> None:
    """Run one artifact and the original model on ``inputs``; record the error on ``artifact``
    (``max_abs_err``/``mean_abs_err``) and raise when it exceeds ``bound`` (None: measure only).
    ``reference(inputs_at)``: the original's outputs on one set of ``inputs``, when the caller
    keeps them for every artifact (:class:`tfopt.conversion.parts.ReferenceOutputs`, whose ``self_disagreements``
    then measures the ill-conditioned original once for all of them too); else run here.

    Raises:
        ConversionError: the artifact does not run in its runtime on inputs the original runs on.
        VerificationError: an output differs beyond ``bound``.
        VerificationTimeoutError: a call of the artifact (``open_runner``'s runner) outlived its time bound.
    """
    from tfopt.targets import target
    from tfopt.verification.data_sized import padded_output_hint as padded
    from tfopt.verification.testing import compare, unranked_outputs

    what = f"{artifact.format} {artifact.precision}"
    unranked = unranked_outputs(original.outputs)
    record = target(artifact.format, "format")
    runner = None
    worst: list[float] = []
    means: list[float] = []
    try:
        for inputs_at in inputs.sets():  # the realistic size too: errors grow with the image
            at = f"at {inputs_at.describe()} ({inputs_at.source} inputs)"
            expected = reference(inputs_at) if reference is not None else reference_outputs(original, inputs_at)
            raw = ({k: preprocess.to_raw(v) for k, v in inputs_at.feeds.items()} if preprocess is not None
                   else inputs_at.feeds)
            try:
                runner = runner or open_runner()
                got = runner(raw)
            except Exception as exc:  # the original ran on these inputs: the converted model is at fault, not them
                if isinstance(exc, TfoptError):
                    raise
                raise ConversionError(f"running {what} in {record.runtime_name}: the model {record.converter} "
                                      f"wrote does not run {at}, where the original model runs "
                                      f"({type(exc).__name__}: {one_line(exc)}); nothing was written") from exc
            diffs = compare(expected, got, atol=np.inf, rtol=0, unranked=unranked)
            worst.append(max(d.max_abs_err for d in diffs))
            means.append(float(np.mean([d.mean_abs_err for d in diffs])))
            artifact.max_abs_err, artifact.mean_abs_err = max(worst), max(means)
            bad = ([d for d in compare(expected, got, atol=bound, rtol=bound, unranked=unranked) if not d.ok]
                   if bound is not None else [])
            if bad:
                check_reproducible(lambda f: reference_runner(original)({**f, **(original.bindings if original.reference
                                                                                   else {})}),
                                   inputs_at.feeds, expected, graph_def=original.graph_def, outputs=list(expected),
                                   tensors=[s.tensor for s in original.outputs], at=at, what=what)
                feed = runner if preprocess is None else lambda f, r=runner: r({k: preprocess.to_raw(v)
                                                                                for k, v in f.items()})
                if verified_at_a_stable_scale(artifact, feed, original, inputs_at, expected, got, bound or 0.0, what,
                                              getattr(reference, "self_disagreements", None)):
                    continue
                raise VerificationError(f"verifying {what} ({record.runtime_name}) against the original model "
                                        f"(TensorFlow) {at}: output '{bad[0].name}': {bad[0].problem or 'differs'} "
                                        f"(max abs err {bad[0].max_abs_err:.3g}, bound {bound:g})"
                                        f"{padded(original.graph_def, bad[0].problem, artifact.format)}"
                                        f"{_approximations(record, original.graph_def)}; nothing was written")
    finally:  # a runtime in a child process ends with its runner
        if runner is not None:
            runner.close()


def _approximations(record: Any, graph_def: Any) -> str:
    """The ops the target computes only approximately in this graph (its ``approximations`` role), as a
    clause of the error: the likely cause of an output that differs."""
    notes = record.call("approximations", graph_def) if record.approximations is not None else []
    if not notes:
        return ""
    more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
    return f"; {record.converter} writes {notes[0]}{more}"

