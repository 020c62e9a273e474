"""``tfopt convert`` as four stages that can run one by one (:func:`tfopt.conversion.convert.convert` runs
them in sequence; the fleet, :mod:`tfopt.fleet`, runs them as separate tasks):

1. :func:`plan` — every check that needs no model (options, outputs, gates): a :class:`ConvertPlan`.
2. :func:`prepare` — load -> freeze -> optimize once, the calibration samples, and tfopt's int8
   engine's fake-quant graph per target: a :class:`Prepared` (saved to and read back from a
   directory by :mod:`tfopt.conversion.store`).
3. :func:`emit_artifact` — one target x precision: emit, count int8 kernels, verify; into ``result``.
4. :func:`finish` — ``manifest.json``, ``layers.json`` and the report, from every artifact.

Each stage's code is ``convert()``'s, moved unchanged: the artifacts are byte-identical whichever
way the stages run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tfopt._io import digest
from tfopt.conversion.calibration_batches import CalibrationBatches
from tfopt.conversion.checks import check_options
from tfopt.conversion.failures import check_built, record_failure
from tfopt.conversion.parts import (
    Artifact,
    ConvertResult,
    ReferenceOutputs,
    accuracy_control,
    emit,
    emit_engine,
    int8_measure,
    is_quantization_aware,
    keep_float_search,
    manifest_options,
    verify,
    write_manifest,
)
from tfopt.emitters.rewrite_record import rewrites_recorded
from tfopt.errors import ConversionError, OptionError, TfoptError, VerificationError, VerificationTimeoutError, stage
from tfopt.graph import Model
from tfopt.options import CompressOptions, ConvertOptions, LoadOptions
from tfopt.quantizing.engine.plan import engine_builds
from tfopt.runtimes.bounded_stage import Stage, within
from tfopt.targets import NEEDS_CALIBRATION, NO_CALIBRATION, TABLE, EmitJob
from tfopt.verification.deadline import verify_timeout
from tfopt.verification.fidelity_bound import artifact_bounds
from tfopt.verification.nonfinite import finite_samples, to_json

Say = Callable[[Any], None]


@dataclass
class ConvertPlan:
    """What :func:`plan` decided: the options, the (target, precision) pairs and the gates."""

    options: ConvertOptions
    load: LoadOptions  # with the compression built from the compress options, when any
    pairs: list[tuple[str, str]]
    skipped: list[tuple[str, str, str]]
    gates: list[Any]
    outdir: str = ""

    def for_loaded_model(self) -> ConvertPlan:
        """This plan for the model it loads (:attr:`load`, its compression included) once loaded by
        the caller (the CLI: loading is its own stage in the terminal): no load options left, and no
        compress options (they were applied as the model loaded; ``--finetune-data`` alone stays:
        it is int8's quantization-aware fine-tune)."""
        o = self.options
        compress = CompressOptions() if self.load.compress is not None else o.compress
        return dataclasses.replace(self, load=LoadOptions(),
                                   options=dataclasses.replace(o, load=LoadOptions(), compress=compress))


@dataclass
class Prepared:
    """What :func:`prepare` made once for every artifact.

    ``int8`` is a :class:`tfopt.quantizing.engine.plan.Int8Plan`, or anything with its ``model_for(target)``,
    ``kept_float()``, ``ranking`` and ``record()`` (:class:`tfopt.conversion.store.StoredInt8`, read back from a directory).
    """

    portable: Model
    runtime: Model
    freeze_report: Any
    optimize_report: Any
    qat: bool
    samples: Any  # calibration samples (a list of {input: array}), or None
    verified_at: Any  # tfopt.verification.verify_inputs.VerifyInputs, at batch 1
    int8: Any = None
    control: Any = None  # OpenVINO's accuracy control (tfopt.emitters.openvino.AccuracyControl), or None
    stages: dict[str, float] = field(default_factory=dict)
    verify_data: Any = None  # tfopt.verification.verify_inputs.VerifyData freezing was verified with (not stored: it holds a loader)
    reference_outputs: Any = None  # ReferenceOutputs on verified_at, shared by the artifacts (not stored)
    data: Any = None  # tfopt.conversion.inputs.InputData: the data files, read and checked once (not stored)
    report_reference: Any = None  # the report's original part, when the original was released (tfopt.conversion.release)
    sizes: Any = None  # tfopt.conversion.sizes.BackgroundSizes of this run's artifacts, or None: at once (not stored)
    calibration: Any = None  # CalibrationBatches every converter that calibrates steps through (not stored)

    @property
    def ranges(self) -> Any:
        """What the quantizers calibrate on (the report measures on every sample)."""
        return finite_samples(self.samples)


def plan(model: Model | str, outdir: str, options: ConvertOptions | None = None, **kwargs: Any) -> ConvertPlan:
    """Every check that needs no model: options, outputs (:mod:`tfopt.conversion.output_paths`), gates, ``--metric``'s module."""
    from tfopt.conversion.output_paths import check_convert_outputs
    from tfopt.loaders.compressing import compression
    from tfopt.report.gates import parse_gate

    o = ConvertOptions.from_kwargs(options, **kwargs)
    q, r, c = o.quantize, o.report, o.compress
    check_convert_outputs(outdir, r.junit, [model, q.calibration, r.eval_data, c.finetune_data], overwrite=o.overwrite)
    pairs, skipped = check_options(model, outdir, o)
    gates = [parse_gate(g) for g in r.fail_if]
    compress = compression(c.cluster, c.cluster_init, c.prune, c.exclude, c.finetune_data, c.finetune_epochs)
    load = o.load if compress is None else dataclasses.replace(o.load, compress=compress)
    if r.metric:  # the user's module, imported before any conversion work, not after it
        from tfopt._user_code import import_function

        import_function(r.metric, "--metric")
    return ConvertPlan(o, load, list(pairs), list(skipped), gates, outdir)


def prepare(model: Model | str, p: ConvertPlan, say: Say) -> Prepared:
    """Load, freeze and optimize once; the calibration samples; the int8 engine's plan."""
    prepared = prepare_graphs(model, p)
    prepare_statistics(p, prepared, say)
    return prepared


def prepare_graphs(model: Model | str, p: ConvertPlan) -> Prepared:
    """Load, freeze and optimize (verified on the eval or calibration data when given); the data
    files, each read and checked once (:mod:`tfopt.conversion.inputs`), for every later stage."""
    from tfopt.conversion.inputs import InputData
    from tfopt.conversion.pipeline import run_optimize
    from tfopt.verification.verify_inputs import VerifyData

    o = p.options
    q, r = o.quantize, o.report
    stages: dict[str, float] = {}
    start = time.perf_counter()
    data = InputData(o)
    data.count_nonfinite()  # NaN/Inf are refused (or counted) before any work; names are checked after loading
    # Verification compares on finite data only: with --allow-nonfinite, what holds NaN/Inf is measured
    # in the report, not used to decide whether freezing kept the model.
    verify_data = VerifyData(eval_data=None if r.allow_nonfinite or not r.eval_data else
                             (lambda specs: data.eval(specs).inputs),  # type: ignore[union-attr]
                             eval_source=r.eval_data,
                             calibration=(lambda specs: finite_samples(data.calibration(specs)))
                             if q.calibration else None,
                             calibration_source=q.calibration, shapes=dict(o.freeze.verify_shape))
    portable, runtime, freeze_report, optimize_report = run_optimize(model, p.load, o.freeze, o.optimize,
                                                                     verify_data=verify_data)
    stages["load+freeze+optimize"] = time.perf_counter() - start
    qat = is_quantization_aware(portable)
    check_calibration(p, qat)
    labeled = data.eval(portable.inputs)  # names and format refused before any artifact is built
    control = accuracy_control(q.accuracy_control, labeled) if q.accuracy_control is not None else None
    samples = data.calibration(portable.inputs)
    verified_at = (freeze_report.verified_at.with_batch(portable.inputs, 1, r.seed, portable.graph_def)
                   if freeze_report.verified_at else None)
    return Prepared(portable, runtime, freeze_report, optimize_report, qat, samples, verified_at, control=control,
                    stages=stages, verify_data=verify_data, data=data)


def inputs_of(p: ConvertPlan, prepared: Prepared) -> Any:
    """``prepared``'s :class:`tfopt.conversion.inputs.InputData`; one read back from the fleet's cache
    gets its own, which reads each file at most once in this process (the samples are stored)."""
    from tfopt.conversion.inputs import InputData

    if prepared.data is None:
        prepared.data = InputData(p.options, samples=prepared.samples)
    return prepared.data


def check_calibration(p: ConvertPlan, qat: bool) -> None:
    """int8/int16x8 without calibration data (and not a QAT model, whose ranges are its own): refused."""
    if not qat and any(pr in NEEDS_CALIBRATION for _, pr in p.pairs) and not p.options.quantize.calibration:
        raise OptionError(NO_CALIBRATION)


def prepare_statistics(p: ConvertPlan, prepared: Prepared, say: Say) -> None:
    """The calibration samples (when not read yet) and tfopt's int8 engine's plan, into ``prepared``."""
    q, r = p.options.quantize, p.options.report
    data = inputs_of(p, prepared)
    if prepared.samples is None and q.calibration:
        prepared.samples = data.calibration(prepared.portable.inputs)
    if any(engine_builds(q, t, pr, prepared.qat) for t, pr in p.pairs):  # one fake-quant graph the int8 artifacts all execute
        from tfopt.quantizing.engine.plan import Int8Plan, scratch_evaluator

        ranges = prepared.ranges
        labeled = data.eval(prepared.portable.inputs)
        measure = (int8_measure(prepared.portable, prepared.runtime, ranges, q, r, labeled)
                   if q.int8_recipe == "auto" or q.auto_keep_float is not None else None)
        evaluate = scratch_evaluator(measure, p.gates) if q.int8_recipe == "auto" and measure is not None else None
        scored = {"inputs": labeled.inputs, "labels": labeled.labels} \
            if q.auto_keep_float is not None and labeled is not None else None
        with verify_timeout(p.options.freeze.verify_timeout), within(_engine_stage(prepared.portable)):
            prepared.int8 = Int8Plan(prepared.portable, ranges, q, evaluate=evaluate, measure=measure, labels=scored,
                                     targets=engine_targets(p, prepared.qat), progress=say, gates=p.gates)
        if p.options.compress.finetune_data and p.load.compress is None:
            # int8 by quantization-aware fine-tune from the engine's ranges (a Keras 2 model)
            from tfopt.quantizing.qat.finetune import qat_plan

            prepared.int8 = qat_plan(prepared.int8, p.options, data.finetune(prepared.portable.inputs), labeled,
                                     verify_data=prepared.verify_data, progress=say)


def _engine_stage(portable: Model) -> Stage:
    """The int8 engine's runs (its statistics pass, and the candidates ``--int8-recipe auto`` and
    ``--auto-keep-float`` measure in their runtimes) as a bounded stage: a timeout names the engine, not
    verification, whose ``--no-verify`` would not skip them."""
    return Stage("the statistics and candidate runs (--int8-recipe auto, --auto-keep-float)",
                 model=portable.provenance.get("path") or "",
                 inputs="pass --calibration (and --eval-data) data the model ends on",
                 skip="skip the candidates' runs (not the statistics pass) with a fixed --int8-recipe and no --auto-keep-float")


def engine_targets(p: ConvertPlan, qat: bool) -> list[str]:
    """The targets whose int8 artifact is tfopt's engine's graph."""
    q = p.options.quantize
    return sorted({t for t, pr in p.pairs if engine_builds(q, t, pr, qat)})


def emit_artifact(p: ConvertPlan, prepared: Prepared, result: ConvertResult, tmp: str, target: str, precision: str,
                  say: Say, *, last: bool) -> None:
    """One artifact into ``tmp``: emitted, counted, verified, recorded in ``result``. A requested one that fails is
    recorded in ``result.failed`` (:func:`record_failure`); from the default target list, one its converter cannot
    express is skipped with the reason (``last``: the last pair, a failure when nothing else was built)."""
    q, ranges, control = p.options.quantize, prepared.ranges, prepared.control
    portable, runtime, qat, int8 = prepared.portable, prepared.runtime, prepared.qat, prepared.int8
    start, record = time.perf_counter(), TABLE[target]
    rel = record.artifact_path(precision)
    engine = int8 is not None and engine_builds(q, target, precision, qat)
    native = not (engine or qat or keep_float_search(q, target, precision, engine=engine, qat=qat))  # others: bounded
    prepared.calibration = prepared.calibration or CalibrationBatches(portable, ranges, p.options.freeze.verify_timeout)
    try:  # whole batches; a converter's own calibration runs them in process: the graph runs them first (once), bounded
        calibration = prepared.calibration(target, precision, calibrates=native) if precision in NEEDS_CALIBRATION else ranges
    except VerificationTimeoutError as exc:  # this target fails alone, as the keep-float search's does
        record_failure(p, result, target, precision, "converting", exc, os.path.join(tmp, rel), portable)
        return
    job = native_job = EmitJob(portable, runtime, os.path.join(tmp, rel), precision, calibration, q, qat,
                               accuracy_control=control)
    if engine and int8 is not None:
        try:  # the engine's statistics and search run here, on the first target that asks
            with stage(f"quantizing for {target} int8 (tfopt engine)"), \
                    verify_timeout(p.options.freeze.verify_timeout), within(_engine_stage(portable)):
                job = dataclasses.replace(job, portable=int8.model_for(target), quantization_aware=True)
        except VerificationTimeoutError as exc:  # this target fails alone; the float ones are still written
            record_failure(p, result, target, precision, "converting", exc, os.path.join(tmp, rel), portable)
            return
        if int8.kept_float() or q.auto_keep_float is not None:  # no fake quants on them: float in every target
            result.keep_float[f"{target}/{precision}"] = list(int8.kept_float())
        if int8.ranking:  # --auto-keep-float's ranking of the engine's groups (the same for every target)
            result.layer_errors[f"{target}/{precision}"] = int8.ranking
    try:
        with rewrites_recorded() as rewrites:  # the lowerings made for its converter: the artifact's record
            written = _emit_one(p, prepared, result, job, native_job, target, precision, engine, say)
    except ConversionError as exc:
        # From the default list (no --to), a target that cannot be built is skipped with the
        # converter's reason; asked for by name, it is a failure (recorded, or fatal with
        # all_or_nothing); when nothing at all is built, convert() raises (see check_built).
        if q.to is None and not (last and not result.artifacts and not result.failed):
            result.skipped.append((target, precision, str(exc)))
            return
        record_failure(p, result, target, precision, "converting", exc, os.path.join(tmp, rel), portable)
        return
    except VerificationTimeoutError as exc:  # the keep-float search's runs: this target fails alone, as in verifying
        record_failure(p, result, target, precision, "converting", exc, os.path.join(tmp, rel), portable)
        return
    full = os.path.join(tmp, rel)
    from tfopt.report.build import artifact_sizes  # its companion files too (an ONNX model's external data)

    later = prepared.sizes is not None  # gzip in a thread while the next artifacts are built (conversion.sizes)
    artifact = Artifact(target, precision, os.path.relpath(written, tmp),
                        *((0, 0) if later else artifact_sizes(target, full)), digest(full), rewrites=rewrites or None)
    if later:
        prepared.sizes.measure(artifact, target, full)
    if record.fixed_shapes:
        artifact.fixed_shapes = record.call("fixed_shapes", written, job.portable)
    if precision == "int8":  # which layers really run int8 kernels (int16x8's are int16: not counted)
        from tfopt.quantizing.int8_ops import count_quantized_ops

        artifact.int8_ops = count_quantized_ops(target, written)
        artifact.quantizer = "native" if not engine or target in result.engine_fallbacks else "tfopt"
    if p.options.freeze.verify:  # a QAT model's float artifacts already quantize (QDQ/FakeQuantize): measure only
        # the original runs once per input set for all artifacts, not once per artifact
        prepared.reference_outputs = prepared.reference_outputs or ReferenceOutputs(portable)
        try:
            with verify_timeout(p.options.freeze.verify_timeout):  # a run past it fails this artifact alone
                verify(artifact, portable, written, prepared.verified_at, bounded=not qat,
                       preprocess=q.ov_preprocess if record.takes_preprocess else None,
                       reference=prepared.reference_outputs)
        except (ConversionError, VerificationError) as exc:
            record_failure(p, result, target, precision, "verifying", exc, full, portable)
            return
    result.artifacts.append(artifact)
    prepared.stages[f"{target} {precision}"] = time.perf_counter() - start


def _emit_one(p: ConvertPlan, prepared: Prepared, result: ConvertResult, job: EmitJob, native_job: EmitJob,
              target: str, precision: str, engine: bool, say: Say) -> str:
    """Write one artifact (the keep-float search, tfopt's int8 engine, or the converter): its path."""
    q = p.options.quantize
    portable, qat, record = prepared.portable, prepared.qat, TABLE[target]
    if keep_float_search(q, target, precision, engine=engine, qat=qat):
        from tfopt.quantizing.native.keep_float import selective

        def emit_kept(path: str, kept: list[str], converted: Any) -> str:
            return emit(target, dataclasses.replace(job, path=path, keep_float=kept, converted=converted,
                                                    accuracy_control=None))

        to_raw = q.ov_preprocess.to_raw if q.ov_preprocess is not None and record.takes_preprocess else None
        with verify_timeout(p.options.freeze.verify_timeout):  # its runs of the original and of the candidates
            written, kept, ranking = selective(target, precision, portable, job.path, job.calibration, q.keep_float,
                                               q.auto_keep_float, inputs_of(p, prepared).eval(portable.inputs), say,
                                               emit_kept, opset=q.opset, to_raw=to_raw)
        result.layer_errors[f"{target}/{precision}"] = ranking
        result.keep_float[f"{target}/{precision}"] = kept
        return str(written)
    with stage(f"converting to {target} {precision}"):
        return emit(target, job) if not engine else emit_engine(target, job, native_job, say, result)


def finish(p: ConvertPlan, prepared: Prepared, result: ConvertResult, tmp: str, say: Say) -> None:
    """``manifest.json``, ``layers.json`` (keep-float) and the report, into ``tmp``."""
    q, r, c = p.options.quantize, p.options.report, p.options.compress
    portable, optimize_report = prepared.portable, prepared.optimize_report
    result.int8 = prepared.int8.record() if prepared.int8 is not None else None
    if prepared.sizes is not None:
        prepared.sizes.settle(result.artifacts)
    write_manifest(tmp, result, portable, manifest_options(q, prepared.qat, r.allow_nonfinite, portable),
                   prepared.verified_at)
    if p.options.freeze.verify:
        say("measuring every artifact for the report")
        from tfopt.report.build import build_report

        with verify_timeout(p.options.freeze.verify_timeout):
            result.report = build_report(
                tmp, portable, eval_data=inputs_of(p, prepared).eval(portable.inputs), samples=prepared.samples,
                seed=r.seed, runs=r.report_runs, threads=r.threads, gates=p.gates,
                passes=[x.as_dict() for x in (optimize_report.passes if optimize_report else [])],
                stages=prepared.stages, preprocess=q.ov_preprocess,
                layers={"layer_errors": result.layer_errors, "keep_float": result.keep_float}, progress=say,
                metric=r.metric, allow_nonfinite=r.allow_nonfinite, verified_at=prepared.verified_at,
                converted_here=True, recorded=prepared.report_reference, write_to=None,
                bounds=artifact_bounds(result.artifacts, prepared.qat, compressed=c.cluster is not None or c.prune is not None))
        fail_beyond_bound(p, prepared, result, result.report, tmp)
        from tfopt.report import write_reports

        write_reports(tmp, result.report)
    if result.layer_errors:  # after every failure is recorded (record_failure drops a failed artifact's entry)
        with open(os.path.join(tmp, "layers.json"), "w") as f:
            json.dump(to_json({"layer_errors": result.layer_errors, "keep_float": result.keep_float}), f, indent=2,
                      allow_nan=False)


def fail_beyond_bound(p: ConvertPlan, prepared: Prepared, result: ConvertResult, report: dict[str, Any],
                      tmp: str) -> None:
    """Each artifact whose report samples exceed its verification bound (:mod:`tfopt.verification.fidelity_bound`),
    or whose runtime did not end within its time bound on them (``report["timed_out"]``), fails as verification
    fails (:func:`record_failure`: removed, or raised with ``all_or_nothing``); the manifest, the report's rows,
    failures and gates then hold the artifacts kept (none: :func:`check_built` raises)."""
    from tfopt.report import evaluate_gates
    from tfopt.verification.conditioning import reconsider
    from tfopt.verification.fidelity_bound import KEY

    beyond = [row for row in report["artifacts"] if row.get(KEY)]
    timed_out = report.pop("timed_out", [])
    if not beyond and not timed_out:
        return
    for row in [*timed_out, *beyond]:  # a timed-out artifact has no row of its own in the report: no numbers
        error: TfoptError | None
        if "reason" in row:
            error = VerificationTimeoutError(row["reason"])
        # an ill-conditioned original on made-up rows does not fail the artifact (conditioning)
        elif (error := reconsider(row, report["samples"], prepared.verified_at, prepared.portable, tmp,
                                  p.options.report.seed, getattr(prepared.reference_outputs, "self_disagreements",
                                                                 None))) is None:
            for artifact in result.artifacts:  # the manifest keeps the record too, as verification's are kept
                if artifact.path == row["path"]:
                    artifact.conditioning = row["conditioning"]
            continue
        record_failure(p, result, row["format"], row["precision"], "verifying", error, os.path.join(tmp, row["path"]),
                       prepared.portable)
        result.artifacts = [a for a in result.artifacts if a.path != row["path"]]
    check_built(result)
    q, r = p.options.quantize, p.options.report
    write_manifest(tmp, result, prepared.portable, manifest_options(q, prepared.qat, r.allow_nonfinite, prepared.portable),
                   prepared.verified_at)
    report["artifacts"] = [row for row in report["artifacts"] if not row.get(KEY)]
    report["failed"] = [dataclasses.asdict(f) for f in result.failed]
    report.update(layer_errors=result.layer_errors, keep_float=result.keep_float)
    report["gates"] = evaluate_gates(report, p.gates)
