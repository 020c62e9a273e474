"""``tfopt convert``: load, freeze and optimize once, then emit every target x precision, verify
each artifact against the original model, and write them all atomically with a manifest.

Which graph each target gets: TFLite, ONNX and OpenVINO read the *portable* graph (folded, no
``_Fused*`` ops: they fuse for themselves); ``pb`` and ``savedmodel`` get the *runtime* graph.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tfopt._io import atomic_path, digest, gzip_size, tree_size
from tfopt.convert_options import (  # noqa: F401  (re-exported: converting is where callers look)
    EXTRA_MODULE,
    NEEDS_CALIBRATION,
    PRECISION_ALIASES,
    PRECISIONS,
    SUPPORTED,
    TARGETS,
    available_targets,
    check_options,
    plan,
)
from tfopt.errors import ConversionError, GateFailure, OptionError, stage
from tfopt.graph import Model
from tfopt.manifest import manifest_model  # noqa: F401  (re-exported: moved there)
from tfopt.nonfinite import check_finite, finite_samples, to_json
from tfopt.runtimes import runner_for

# Verification bounds (max |artifact - original|, plus the same relative part); quantized
# artifacts are measured and reported, not bounded: their error is the trade being made.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


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


def artifact_path(outdir: str, target: str, precision: str) -> str:
    tag = PRECISION_ALIASES.get(precision, precision)
    return {"pb": "model.pb", "savedmodel": "savedmodel", "tflite": f"model.{tag}.tflite",
            "onnx": f"model.{tag}.onnx", "openvino": f"openvino.{tag}"}[target]


def convert(model: Model | str, outdir: str, *, to: Sequence[str] | None = None,
            quantize: Sequence[str] = ("fp32",), calibration: str | None = None, calibration_samples: int = 100,
            mean: Sequence[float] = (0.0,), scale: Sequence[float] = (1.0,),
            int8_io: bool = False, allow_tf_ops: bool = False, opset: int | None = None, verify: bool = True,
            ov_preprocess: Any = None, accuracy_control: float | None = None, eval_data: str | None = None,
            fail_if: Sequence[str] = (), junit: str | None = None, report_runs: int = 20, threads: int | None = None,
            keep_float: Sequence[str] = (), auto_keep_float: float | None = None, metric: str | None = None,
            cluster: int | None = None, cluster_init: str = "kmeans++", prune: float | None = None,
            exclude: Sequence[str] = (), finetune_data: str | None = None, finetune_epochs: int = 2,
            seed: int = 0, allow_nonfinite: bool = False, verify_shape: Mapping[str, Sequence[int]] | None = None,
            progress: Callable[[Any], None] | None = None, overwrite: bool = False,
            **options: Any) -> ConvertResult:
    """Convert one model to every requested target and precision.

    Args:
        model: a loaded model or a path (load/freeze/optimize options may be passed too).
        outdir: output directory, replaced atomically as a whole (``overwrite``: see :mod:`tfopt.outputs`).
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
    from tfopt.pipeline import optimize_model
    from tfopt.progress import Step
    from tfopt.report.gates import parse_gate
    from tfopt.signals import checkpoint

    check_convert_outputs(outdir, junit, [model, calibration, eval_data, finetune_data], overwrite=overwrite)
    pairs, skipped = check_options(model, outdir, to=to, quantize=quantize, calibration=calibration,
                                   calibration_samples=calibration_samples, accuracy_control=accuracy_control,
                                   eval_data=eval_data, keep_float=keep_float, auto_keep_float=auto_keep_float,
                                   metric=metric, fail_if=fail_if, junit=junit, report_runs=report_runs,
                                   threads=threads, opset=opset, finetune_data=finetune_data)
    gates = [parse_gate(g) for g in fail_if]
    compress = compression(cluster, cluster_init, prune, exclude, finetune_data, finetune_epochs)
    if compress is not None:
        options["compress"] = compress
    if metric:  # the user's module, imported before any conversion work, not after it
        from tfopt._user_code import import_function

        import_function(metric, "--metric")
        if not eval_data:
            raise OptionError(f"--metric {metric}: needs --eval-data DATA.npz holding the labels it scores against")

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
        loaded[:] = loaded or [load_calibration(calibration or "", specs, samples=calibration_samples, mean=mean,
                                                scale=scale, allow_nonfinite=allow_nonfinite)]
        return loaded[0]

    if eval_data:  # NaN/Inf are refused (or counted) before any work; names are checked after loading
        import numpy as np

        with np.load(eval_data, allow_pickle=False) as arrays:
            check_finite({k: arrays[k] for k in arrays.files}, f"--eval-data {eval_data}", allow=allow_nonfinite)
    # Verification compares on finite data only: with --allow-nonfinite, what holds NaN/Inf is measured
    # in the report, not used to decide whether freezing kept the model.
    verify_data = VerifyData(eval_data=None if allow_nonfinite else eval_data,
                             calibration=(lambda specs: finite_samples(calibration_samples_for(specs))) if calibration else None,
                             calibration_source=calibration, shapes=dict(verify_shape or {}))
    portable, runtime, freeze_report, optimize_report = optimize_model(model, verify=verify, verify_data=verify_data,
                                                                       **options)
    stages["load+freeze+optimize"] = time.perf_counter() - start
    qat = is_quantization_aware(portable)
    if not qat and any(p in NEEDS_CALIBRATION for _, p in pairs) and not calibration:
        raise OptionError("--quantize int8/int16x8 needs calibration data: pass --calibration DATA "
                          "(.npz keyed by input name, .npy, .tfrecord, an image directory, or module:function)")
    if eval_data:  # its NaN/Inf, names and format are refused before any artifact is built
        eval_arrays(eval_data, portable, allow_nonfinite=allow_nonfinite)
    control = _accuracy_control(accuracy_control, eval_data, portable) if accuracy_control is not None else None
    samples = calibration_samples_for(portable.inputs) if calibration else None
    ranges = finite_samples(samples)  # what the quantizers calibrate on (the report measures on every sample)
    result = ConvertResult(outdir=outdir, skipped=skipped, freeze_report=freeze_report, optimize_report=optimize_report)
    verified_at = freeze_report.verified_at.with_batch(portable.inputs, 1, seed, portable.graph_def) if freeze_report.verified_at else None
    result.verified_at = verified_at
    with atomic_path(outdir, directory=True) as tmp:
        os.makedirs(tmp)
        for index, (target, precision) in enumerate(pairs):
            say(Step("artifacts", index + 1, len(pairs)))
            say(f"{target} {precision}")
            start = time.perf_counter()
            rel = artifact_path(outdir, target, precision)
            if _selective(target, precision, qat, keep_float, auto_keep_float):
                from tfopt.quantizing.keep_float import selective

                def emit(path: str, kept: list[str], converted: Any, target: str = target, precision: str = precision) -> str:
                    return _emit(target, precision, portable, runtime, path, ranges, int8_io=int8_io,
                                 allow_tf_ops=allow_tf_ops, opset=opset, ov_preprocess=ov_preprocess,
                                 keep_float=kept, converted=converted)

                written, kept, ranking = selective(
                    target, precision, portable, os.path.join(tmp, rel), ranges, keep_float, auto_keep_float,
                    eval_data, say, emit, opset=opset,
                    to_raw=ov_preprocess.to_raw if ov_preprocess is not None and target == "openvino" else None)
                result.layer_errors[f"{target}/{precision}"] = ranking
                result.keep_float[f"{target}/{precision}"] = kept
            else:
                try:
                    with stage(f"converting to {target} {precision}"):
                        written = _emit(target, precision, portable, runtime, os.path.join(tmp, rel), ranges,
                                        int8_io=int8_io, allow_tf_ops=allow_tf_ops, opset=opset, qat=qat,
                                        ov_preprocess=ov_preprocess, accuracy_control=control)
                except ConversionError as exc:
                    # Asked for by name (--to), a target that cannot be built is an error; from the
                    # default list, it is skipped with the converter's reason and the rest are built.
                    if to is not None or (index == len(pairs) - 1 and not result.artifacts):
                        raise
                    result.skipped.append((target, precision, str(exc)))
                    continue
            full = os.path.join(tmp, rel)
            artifact = Artifact(target, precision, os.path.relpath(written, tmp), tree_size(full), gzip_size(full),
                                digest(full))
            if verify:  # a QAT model's float artifacts already quantize (QDQ/FakeQuantize): measure only
                _verify(artifact, portable, written, verified_at, bounded=not qat,
                        preprocess=ov_preprocess if target == "openvino" else None)
            result.artifacts.append(artifact)
            stages[f"{target} {precision}"] = time.perf_counter() - start
        _write_manifest(tmp, result, portable, dict(to=to, quantize=list(quantize), calibration=calibration,
                                                    calibration_samples=calibration_samples, mean=list(mean),
                                                    scale=list(scale), int8_io=int8_io,
                                                    allow_tf_ops=allow_tf_ops, opset=opset,
                                                    quantization_aware=qat, ov_preprocess=ov_preprocess,
                                                    accuracy_control=accuracy_control, allow_nonfinite=allow_nonfinite,
                                                    compression=portable.provenance.get("compression")),
                        verified_at)
        if result.layer_errors:
            with open(os.path.join(tmp, "layers.json"), "w") as f:
                json.dump(to_json({"layer_errors": result.layer_errors, "keep_float": result.keep_float}), f, indent=2,
                          allow_nan=False)
        if verify:
            say("measuring every artifact for the report")
            from tfopt.report.build import build_report

            result.report = build_report(tmp, portable, eval_data=eval_data, samples=samples, seed=seed,
                                         runs=report_runs, threads=threads, gates=gates,
                                         passes=[p.as_dict() for p in (optimize_report.passes if optimize_report else [])],
                                         stages=stages, preprocess=ov_preprocess,
                                         layers={"layer_errors": result.layer_errors, "keep_float": result.keep_float},
                                         progress=say, metric=metric, allow_nonfinite=allow_nonfinite,
                                         verified_at=verified_at, converted_here=True)
    from tfopt.report.build import finish_gates

    try:
        finish_gates(result.report, junit)
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


def _selective(target: str, precision: str, qat: bool, keep: Sequence[str], auto: float | None) -> bool:
    from tfopt.quantizing.layer_targets import KEEP_FLOAT_PRECISIONS

    return (not qat and bool(keep or auto is not None) and precision in KEEP_FLOAT_PRECISIONS.get(target, ()))


def _emit(target: str, precision: str, portable: Model, runtime: Model, path: str, samples: Any, *,
          int8_io: bool, allow_tf_ops: bool, opset: int | None, qat: bool = False, ov_preprocess: Any = None,
          accuracy_control: Any = None, keep_float: Sequence[str] = (), converted: Any = None) -> str:
    if qat and precision == "int8" and target in ("onnx", "openvino"):
        precision = "fp32"  # the fake-quant ops already become QDQ / FakeQuantize: real int8
    if target in ("pb", "savedmodel"):
        from tfopt.pipeline import save_model

        return save_model(runtime, path, format=target)
    if target == "tflite":
        from tfopt.emitters.tflite import emit_tflite

        # fp32 only: LiteRT's XNNPACK delegate rejects sparse int8 FULLY_CONNECTED (measured here)
        pruned = precision == "fp32" and bool((portable.provenance.get("compression") or {}).get("prune"))
        return emit_tflite(portable, path, precision=precision, calibration=samples, int8_io=int8_io,
                           allow_tf_ops=allow_tf_ops, quantization_aware=qat, keep_float=keep_float, sparse=pruned)
    if target == "onnx":
        from tfopt.emitters.onnx import emit_onnx

        return emit_onnx(portable, path, precision=precision, calibration=samples, opset=opset,
                         keep_float=keep_float, converted=converted)
    from tfopt.emitters.openvino import emit_openvino

    return emit_openvino(portable, path, precision=precision, calibration=samples, preprocess=ov_preprocess,
                         accuracy_control=accuracy_control if precision == "int8" else None,
                         keep_float=keep_float, converted=converted)


def _verify(artifact: Artifact, portable: Model, path: str, inputs: Any, *, bounded: bool = True,
            preprocess: Any = None) -> None:
    from tfopt.verify import verify_artifact

    verify_artifact(artifact, lambda: runner_for(artifact.format, path, portable), portable, inputs,
                    bound=TOLERANCE.get(artifact.precision) if bounded else None, preprocess=preprocess)


def _onnx_quantization(result: ConvertResult, qat: bool) -> dict[str, Any]:
    """What each quantized ONNX artifact was built for (7-bit weights: see :mod:`tfopt.emitters.onnx`)."""
    from tfopt.emitters.onnx import quantization_settings

    return {a.precision: quantization_settings(a.precision) for a in result.artifacts
            if a.format == "onnx" and quantization_settings(a.precision) and not (qat and a.precision == "int8")}


def _write_manifest(tmp: str, result: ConvertResult, model: Model, options: dict[str, Any], verified_at: Any) -> None:
    """manifest.json: options, tool versions and artifacts - no timestamps, so it is deterministic."""
    from importlib.metadata import PackageNotFoundError, version

    import tfopt

    tools = {"tfopt": tfopt.__version__}
    for dist in ("tensorflow", "ai-edge-litert", "tf2onnx", "onnx", "onnxruntime", "openvino", "nncf"):
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
        "onnx_quantization": _onnx_quantization(result, options.get("quantization_aware", False)),
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(to_json(manifest), f, indent=2, sort_keys=True, default=str, allow_nan=False)
