"""``tfopt convert``: load, freeze and optimize once, then emit every target x precision, verify
each artifact against the original model, and write them all atomically with a manifest.

Which graph each target gets: TFLite, ONNX and OpenVINO read the *portable* graph (folded, no
``_Fused*`` ops: they fuse for themselves); ``pb`` and ``savedmodel`` get the *runtime* graph.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tfopt._io import atomic_path, digest, gzip_size, tree_size
from tfopt.convert_options import check_options
from tfopt.errors import ConversionError, GateFailure, OptionError, stage
from tfopt.graph import Model
from tfopt.nonfinite import check_finite, finite_samples, to_json
from tfopt.options import ConvertOptions, QuantizeOptions
from tfopt.quantizing.int8_plan import engine_builds
from tfopt.runtimes import runner_for
from tfopt.targets import NEEDS_CALIBRATION, TABLE, EmitJob
from tfopt.tolerances import ARTIFACT


@dataclass
class Artifact:
    format: str
    precision: str
    path: str
    bytes: int
    gzip_bytes: int
    sha256: str
    max_abs_err: float | None = None
    mean_abs_err: float | None = None
    int8_ops: dict[str, Any] | None = None  # quantized: layers running int8 kernels (tfopt.quantizing.int8_ops)
    quantizer: str | None = None  # quantized: "tfopt" (the engine's graph) or "native" (the converter's own)


@dataclass
class ConvertResult:
    outdir: str
    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (format, precision, reason)
    freeze_report: Any = None
    optimize_report: Any = None
    report: dict[str, Any] | None = None
    layer_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "format/precision" -> worst first
    keep_float: dict[str, list[str]] = field(default_factory=dict)
    verified_at: Any = None  # tfopt.verify.VerifyInputs the artifacts were verified on
    int8: dict[str, Any] | None = None  # what tfopt's int8 engine did (tfopt.quantizing.int8_plan.Int8Plan.record)
    engine_fallbacks: dict[str, str] = field(default_factory=dict)  # target -> why its converter took the native path


def artifact_path(outdir: str, target: str, precision: str) -> str:
    """The artifact's path relative to ``outdir`` (see :attr:`tfopt.targets.Target.file`)."""
    return TABLE[target].artifact_path(precision)


def convert(model: Model | str, outdir: str, options: ConvertOptions | None = None, *,
            progress: Callable[[Any], None] | None = None, **kwargs: Any) -> ConvertResult:
    """Convert one model to every requested target and precision.

    Args:
        model: a loaded model or a path.
        outdir: output directory, replaced atomically as a whole (``overwrite``: see :mod:`tfopt.outputs`).
        options: a :class:`tfopt.options.ConvertOptions`, one object per stage. The keywords below
            (and every load, freeze and optimize option: see :func:`tfopt.options.flat_names`)
            build the same object, or change the given one.
        to: formats (default: every format whose extra is installed; from that default list, a
            format whose converter cannot express the model is skipped with the reason, not fatal).
        quantize: precisions: ``fp32`` (``none`` is accepted as an alias), ``fp16``, ``dynamic``, ``int8``, ``int16x8``.
        calibration: ``.npz``/``.npy``/``module:fn`` (see :mod:`tfopt.calibration`); required for
            int8 and int16x8.
        ov_preprocess: :class:`tfopt.emitters.openvino.Preprocess` baked into OpenVINO IRs.
        accuracy_control: OpenVINO int8 through NNCF's accuracy control with this maximal top-1
            drop (absolute, e.g. 0.01), measured on ``eval_data`` (``.npz`` of inputs + ``labels``).
        keep_float: layers the int8 artifacts (TFLite, ONNX, OpenVINO; ONNX int16x8 too) keep in
            float: a TF node name, or the target's own layer name (see :mod:`tfopt.quantizing.layers`).
        auto_keep_float: rank the layers (each quantized alone, worst first), then keep the worst in
            float, one at a time, until the top-1 agreement drop (accuracy drop with ``eval_data``)
            is within this many points; for every quantizing target.
        cluster / cluster_init / prune / exclude / finetune_data / finetune_epochs: TFMOT weight
            clustering and magnitude pruning of a Keras 2 model before freezing (see
            :mod:`tfopt.compressing`); the report then measures against the uncompressed model.
        verify_shape: input name -> a concrete shape to verify every stage at (the artifacts keep
            their dynamic dimensions); without it, and without ``eval_data``/``calibration``, the
            inputs are made up at a size the original model answers (see :mod:`tfopt.verify`).
        metric: ``module:fn`` scoring ``fn(first_output, labels) -> float`` (higher is better) on
            ``eval_data``, in place of top-1/top-5 (integer labels) or MAE/RMSE (float labels).
        fail_if: gates over the report (see :mod:`tfopt.report.gates`); ``junit`` writes them as XML.
            A tripped gate raises :class:`GateFailure` after everything is written.
        allow_nonfinite: accept NaN/Inf in ``calibration``/``eval_data`` (else OptionError); the report counts them.
        progress: called with a ``str`` as each stage starts and a :class:`tfopt.progress.Step`
            inside long stages (``progress=print`` works). Each call is a safe point for an interrupt.

    Raises:
        OptionError, OutputPathError, ConversionError, VerificationError (an fp32/fp16 artifact that differs).
    """
    import time

    from tfopt.calibration import eval_arrays, load_calibration
    from tfopt.compressing import compression
    from tfopt.outputs import check_convert_outputs
    from tfopt.pipeline import run_optimize
    from tfopt.progress import Step
    from tfopt.report.gates import parse_gate
    from tfopt.signals import checkpoint

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

    def say(event: Any) -> None:  # every progress event is a safe point for an interrupt
        checkpoint()
        if progress is not None:
            progress(event)

    say("loading, freezing and optimizing (once for every target)")
    stages: dict[str, float] = {}
    start = time.perf_counter()
    from tfopt.verify import VerifyData

    loaded: list[Any] = []

    def calibration_samples_for(specs: Sequence[Any]) -> Any:  # loaded once, for the frozen inputs
        loaded[:] = loaded or [load_calibration(q.calibration or "", specs, samples=q.calibration_samples,
                                                mean=q.mean, scale=q.scale, allow_nonfinite=r.allow_nonfinite)]
        return loaded[0]

    if r.eval_data:  # NaN/Inf are refused (or counted) before any work; names are checked after loading
        import numpy as np

        with np.load(r.eval_data, allow_pickle=False) as arrays:
            check_finite({k: arrays[k] for k in arrays.files}, f"--eval-data {r.eval_data}", allow=r.allow_nonfinite)
    # Verification compares on finite data only: with --allow-nonfinite, what holds NaN/Inf is measured
    # in the report, not used to decide whether freezing kept the model.
    verify_data = VerifyData(eval_data=None if r.allow_nonfinite else r.eval_data,
                             calibration=(lambda specs: finite_samples(calibration_samples_for(specs)))
                             if q.calibration else None,
                             calibration_source=q.calibration, shapes=dict(o.freeze.verify_shape))
    portable, runtime, freeze_report, optimize_report = run_optimize(model, load, o.freeze, o.optimize,
                                                                     verify_data=verify_data)
    stages["load+freeze+optimize"] = time.perf_counter() - start
    verify = o.freeze.verify
    qat = is_quantization_aware(portable)
    if not qat and any(p in NEEDS_CALIBRATION for _, p in pairs) and not q.calibration:
        raise OptionError("--quantize int8/int16x8 needs calibration data: pass --calibration DATA "
                          "(.npz keyed by input name, .npy, .tfrecord, an image directory, or module:function)")
    if r.eval_data:  # its NaN/Inf, names and format are refused before any artifact is built
        eval_arrays(r.eval_data, portable, allow_nonfinite=r.allow_nonfinite)
    control = _accuracy_control(q.accuracy_control, r.eval_data, portable) if q.accuracy_control is not None else None
    samples = calibration_samples_for(portable.inputs) if q.calibration else None
    ranges = finite_samples(samples)  # what the quantizers calibrate on (the report measures on every sample)
    result = ConvertResult(outdir=outdir, skipped=skipped, freeze_report=freeze_report, optimize_report=optimize_report)
    verified_at = (freeze_report.verified_at.with_batch(portable.inputs, 1, r.seed, portable.graph_def)
                   if freeze_report.verified_at else None)
    result.verified_at = verified_at
    int8 = None  # tfopt's engine: one fake-quant graph the int8 artifacts all execute
    if any(engine_builds(q, t, p, qat) for t, p in pairs):
        from tfopt.quantizing.int8_plan import Int8Plan, scratch_evaluator

        measure = _int8_measure(portable, runtime, ranges, q, r) \
            if q.int8_recipe == "auto" or q.auto_keep_float is not None else None
        evaluate = scratch_evaluator(measure, gates) if q.int8_recipe == "auto" and measure is not None else None
        labeled = None
        if q.auto_keep_float is not None and r.eval_data:
            inputs, labels = eval_arrays(r.eval_data, portable, allow_nonfinite=r.allow_nonfinite)
            labeled = {"inputs": inputs, "labels": labels}
        int8 = Int8Plan(portable, ranges, q, evaluate=evaluate, measure=measure, labels=labeled, progress=say,
                        targets=[t for t, p in pairs if engine_builds(q, t, p, qat)])
        if c.finetune_data and compress is None:  # int8 by quantization-aware fine-tune from the engine's ranges
            from tfopt.quantizing.qat_finetune import qat_plan

            int8 = qat_plan(int8, o, verify_data=verify_data, progress=say)
    with atomic_path(outdir, directory=True) as tmp:
        os.makedirs(tmp)
        for index, (target, precision) in enumerate(pairs):
            say(Step("artifacts", index + 1, len(pairs)))
            say(f"{target} {precision}")
            start = time.perf_counter()
            record = TABLE[target]
            rel = record.artifact_path(precision)
            job = EmitJob(portable, runtime, os.path.join(tmp, rel), precision, ranges, q, qat, accuracy_control=control)
            engine = int8 is not None and engine_builds(q, target, precision, qat)
            native_job = job
            if engine and int8 is not None:
                with stage(f"quantizing for {target} int8 (tfopt engine)"):
                    job = dataclasses.replace(job, portable=int8.model_for(target), quantization_aware=True)
                if int8.engine.keep_float:  # no fake quants on them: float in every target
                    result.keep_float[f"{target}/{precision}"] = list(int8.engine.keep_float)
                if int8.ranking:
                    result.layer_errors[f"{target}/{precision}"] = int8.ranking
            if not engine and not qat and (q.keep_float or q.auto_keep_float is not None) and precision in record.keep_float:
                from tfopt.quantizing.keep_float import selective

                def emit(path: str, kept: list[str], converted: Any, job: EmitJob = job, target: str = target) -> str:
                    return _emit(target, dataclasses.replace(job, path=path, keep_float=kept, converted=converted,
                                                     accuracy_control=None))

                to_raw = q.ov_preprocess.to_raw if q.ov_preprocess is not None and record.takes_preprocess else None
                written, kept, ranking = selective(target, precision, portable, job.path, ranges, q.keep_float,
                                                   q.auto_keep_float, r.eval_data, say, emit, opset=q.opset,
                                                   to_raw=to_raw)
                result.layer_errors[f"{target}/{precision}"] = ranking
                result.keep_float[f"{target}/{precision}"] = kept
            else:
                try:
                    with stage(f"converting to {target} {precision}"):
                        written = _emit(target, job) if not engine else _emit_engine(target, job, native_job, say, result)
                except ConversionError as exc:
                    # Asked for by name (--to), a target that cannot be built is an error; from the
                    # default list, it is skipped with the converter's reason and the rest are built.
                    if q.to is not None or (index == len(pairs) - 1 and not result.artifacts):
                        raise
                    result.skipped.append((target, precision, str(exc)))
                    continue
            full = os.path.join(tmp, rel)
            artifact = Artifact(target, precision, os.path.relpath(written, tmp), tree_size(full), gzip_size(full),
                                digest(full))
            if precision == "int8":  # which layers really run int8 kernels (int16x8's are int16: not counted)
                from tfopt.quantizing.int8_ops import count_quantized_ops

                artifact.int8_ops = count_quantized_ops(target, written)
                artifact.quantizer = "native" if not engine or target in result.engine_fallbacks else "tfopt"
            if verify:  # a QAT model's float artifacts already quantize (QDQ/FakeQuantize): measure only
                _verify(artifact, portable, written, verified_at, bounded=not qat,
                        preprocess=q.ov_preprocess if record.takes_preprocess else None)
            result.artifacts.append(artifact)
            stages[f"{target} {precision}"] = time.perf_counter() - start
        result.int8 = int8.record() if int8 is not None else None
        _write_manifest(tmp, result, portable, _manifest_options(q, qat, r.allow_nonfinite, portable), verified_at)
        if result.layer_errors:
            with open(os.path.join(tmp, "layers.json"), "w") as f:
                json.dump(to_json({"layer_errors": result.layer_errors, "keep_float": result.keep_float}), f, indent=2,
                          allow_nan=False)
        if verify:
            say("measuring every artifact for the report")
            from tfopt.report.build import build_report

            result.report = build_report(tmp, portable, eval_data=r.eval_data, samples=samples, seed=r.seed,
                                         runs=r.report_runs, threads=r.threads, gates=gates,
                                         passes=[p.as_dict() for p in (optimize_report.passes if optimize_report else [])],
                                         stages=stages, preprocess=q.ov_preprocess,
                                         layers={"layer_errors": result.layer_errors, "keep_float": result.keep_float},
                                         progress=say, metric=r.metric, allow_nonfinite=r.allow_nonfinite,
                                         verified_at=verified_at, converted_here=True)
    from tfopt.report.build import finish_gates

    try:
        finish_gates(result.report, r.junit)
    except GateFailure as exc:  # everything is written; let callers show the result too
        exc.result = result
        raise
    return result


def is_quantization_aware(model: Model) -> bool:
    """A QAT model: its fake-quant ops carry the int8 ranges, so int8 needs no calibration."""
    return any(n.op.startswith("FakeQuantWithMinMax") for n in model.graph_def.node)


def _accuracy_control(max_drop: float, eval_data: str | None, model: Model) -> Any:
    from tfopt.calibration import eval_arrays
    from tfopt.emitters.openvino import AccuracyControl

    if not eval_data:
        raise OptionError("--accuracy-control needs --eval-data DATA.npz holding the inputs (by name) and 'labels'")

    inputs, labels = eval_arrays(eval_data, model, allow_nonfinite=True)  # refused, if so, by convert first
    return AccuracyControl(max_drop, inputs, labels)


def _int8_measure(portable: Model, runtime: Model, samples: Any, q: QuantizeOptions, r: Any) -> Any:
    """``measure(target, model) -> row`` for ``--int8-recipe auto`` and ``--auto-keep-float``: an engine
    graph's real artifact, run in its runtime on the eval data (else the calibration data, scored by
    agreement with the float model)."""
    import numpy as np

    from tfopt.calibration import eval_arrays
    from tfopt.quantizing.int8_plan import scratch_measure
    from tfopt.report.measure import measure
    from tfopt.verify import reference_runner

    if r.eval_data:
        inputs, labels = eval_arrays(r.eval_data, portable, allow_nonfinite=r.allow_nonfinite)
    else:
        inputs = {s.name: np.concatenate([np.asarray(x[s.name]) for x in samples]) for s in portable.inputs}
        labels = None
    reference = reference_runner(portable)

    def build(target: str, model: Model, scratch: str) -> str:
        path = os.path.join(scratch, TABLE[target].artifact_path("int8"))
        return _emit(target, EmitJob(model, runtime, path, "int8", samples, q, quantization_aware=True))

    def measure_row(target: str, scratch: str, path: str) -> dict[str, Any]:
        full = os.path.join(scratch, path)
        artifact = {"format": target, "precision": "int8", "path": path, "bytes": tree_size(full),
                    "gzip_bytes": gzip_size(full)}
        row: dict[str, Any] = measure(scratch, reference, portable, [artifact], inputs=inputs, labels=labels, runs=5,
                                      threads=r.threads, converted_here=True)["artifacts"][0]
        return row

    return scratch_measure(build, measure_row)


def _emit_engine(target: str, job: EmitJob, native: EmitJob, say: Callable[[Any], None], result: ConvertResult) -> str:
    """The engine's int8 artifact; when the target's converter cannot express the engine's graph
    (an op its int8 path lacks once fake quants split a fused pattern), the converter's own int8,
    said as it happens and recorded (``engine_fallbacks``, the artifact's ``quantizer``)."""
    try:
        return _emit(target, job)
    except ConversionError as exc:
        reason = " ".join(str(exc).split())[:300]
        say(f"{target} int8: its converter cannot express tfopt's int8 graph ({reason}); "
            f"building it with {target}'s own quantizer")
        result.engine_fallbacks[target] = reason
        return _emit(target, native)


def _emit(target: str, job: EmitJob) -> str:
    """Write one artifact through its target's record. For a quantization-aware graph, a target
    whose converter turns fake quants into its own quantize ops builds int8 as that conversion."""
    record = TABLE[target]
    if job.quantization_aware and job.precision == "int8" and record.qat_int8_as:
        job = dataclasses.replace(job, precision=record.qat_int8_as)
    written: str = record.call("emit", job)
    return written


def _verify(artifact: Artifact, portable: Model, path: str, inputs: Any, *, bounded: bool = True,
            preprocess: Any = None) -> None:
    from tfopt.verify import verify_artifact

    verify_artifact(artifact, lambda: runner_for(artifact.format, path, portable), portable, inputs,
                    bound=ARTIFACT.get(artifact.precision) if bounded else None, preprocess=preprocess)


def _manifest_options(q: QuantizeOptions, qat: bool, allow_nonfinite: bool, model: Model) -> dict[str, Any]:
    """The options ``manifest.json`` records (what the artifacts depend on, not where output went)."""
    return dict(to=q.to, quantize=list(q.quantize), calibration=q.calibration, calibration_samples=q.calibration_samples,
                mean=list(q.mean), scale=list(q.scale), int8_io=q.int8_io, allow_tf_ops=q.allow_tf_ops, opset=q.opset,
                quantization_aware=qat, ov_preprocess=q.ov_preprocess, accuracy_control=q.accuracy_control,
                quantizer=q.quantizer, int8_recipe=q.int8_recipe, calibration_method=q.calibration_method,
                per_tensor=q.per_tensor,
                allow_nonfinite=allow_nonfinite, compression=model.provenance.get("compression"))


def _target_quantization(result: ConvertResult, qat: bool) -> dict[str, dict[str, Any]]:
    """``{"<target>_quantization": {precision: settings}}`` for each target whose record names
    ``quantization_settings`` (ONNX: 7-bit weights, see :mod:`tfopt.emitters.onnx`). A QAT
    model's int8 is the model's own ranges: nothing to record."""
    out: dict[str, dict[str, Any]] = {}
    for record in TABLE.values():
        if record.quantization_settings is None:
            continue
        settings = {a.precision: record.call("quantization_settings", a.precision) for a in result.artifacts
                    if a.format == record.name and not (qat and a.precision == "int8")}
        out[f"{record.name}_quantization"] = {p: v for p, v in settings.items() if v}
    return out


def _write_manifest(tmp: str, result: ConvertResult, model: Model, options: dict[str, Any], verified_at: Any) -> None:
    """manifest.json: options, tool versions and artifacts - no timestamps, so it is deterministic."""
    from importlib.metadata import PackageNotFoundError, version

    import tfopt

    tools = {"tfopt": tfopt.__version__}
    for dist in dict.fromkeys(d for record in TABLE.values() for d in record.distributions):
        try:
            tools[dist] = version(dist)
        except PackageNotFoundError:
            continue
    manifest = {
        "source": model.provenance.get("path"), "source_format": model.provenance.get("format"),
        "inputs": [asdict(s) for s in model.inputs], "outputs": [asdict(s) for s in model.outputs],
        "options": options, "tools": tools, "artifacts": [asdict(a) for a in result.artifacts],
        "skipped": [{"format": f, "precision": p, "reason": r} for f, p, r in result.skipped],
        "verification": verified_at.as_dict() if verified_at is not None else None,
        **_target_quantization(result, options.get("quantization_aware", False)),
        "int8_engine": None if result.int8 is None else {**result.int8, "fallbacks": result.engine_fallbacks},
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(to_json(manifest), f, indent=2, sort_keys=True, default=str, allow_nan=False)
