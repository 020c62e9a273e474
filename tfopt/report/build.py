"""Build the report for a conversion directory, evaluate its gates, and ``tfopt verify``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.errors import OptionError, OutputMismatchError, VerificationTimeoutError
from tfopt.graph import Model
from tfopt.targets import PRECISIONS, target, target_of_file
from tfopt.verification import deadline
from tfopt.verification.data_batches import batched, describe, join_samples, rows_of
from tfopt.verification.fidelity_bound import manifest_bounds
from tfopt.verification.input_data import LabeledData, read_labeled
from tfopt.verification.nonfinite import count_nonfinite


def verify_outdir(outdir: str, reference: str, *, eval_data: str | None = None, fail_if: Sequence[str] = (),
                  junit: str | None = None, runs: int = 20, threads: int | None = None, metric: str | None = None,
                  allow_nonfinite: bool = False, verify_timeout: float | None = None, **load_options: Any) -> dict[str, Any]:
    """``tfopt verify``: measure an existing conversion's artifacts against the reference model; each run
    held to ``verify_timeout`` (:mod:`tfopt.verification.deadline`)."""
    from tfopt.conversion.manifest import manifest_model
    from tfopt.freezing import freeze
    from tfopt.loaders import load
    from tfopt.report import write_reports
    from tfopt.report.gates import parse_gate

    gates = [parse_gate(g) for g in fail_if]
    _check_options(runs, threads, metric, eval_data, verify_timeout)
    if not os.path.exists(os.path.join(outdir, "manifest.json")):
        raise OptionError(f"{outdir}: no manifest.json; verify a directory written by `tfopt convert`")
    frozen, _ = freeze(load(reference, **load_options), verify=False)
    recorded = manifest_model(outdir)
    if [s.name for s in recorded.inputs] != [s.name for s in frozen.inputs]:
        raise OptionError(f"--reference {reference}: inputs {[s.name for s in frozen.inputs]} do not match the "
                          f"conversion's {[s.name for s in recorded.inputs]}")
    _check_outputs(outdir, reference, [s.name for s in frozen.outputs], [s.name for s in recorded.outputs])
    labeled = _read_eval(eval_data, frozen, allow_nonfinite)
    with open(os.path.join(outdir, "manifest.json")) as f:
        manifest = json.load(f)
    with deadline.verify_timeout(verify_timeout):
        report = build_report(outdir, frozen.replace(outputs=recorded.outputs), eval_data=labeled, runs=runs,
                              threads=threads, gates=gates, metric=metric, allow_nonfinite=allow_nonfinite,
                              manifest=manifest, write_to=None, bounds=manifest_bounds(manifest))
    beyond = _beyond_bound(report)
    write_reports(outdir, report)
    _finish(report, junit, beyond)
    return report


def _finish(report: dict[str, Any], junit: str | None, beyond: Exception | None) -> None:
    """Gates and the JUnit file as :func:`finish_gates`; an artifact beyond its bound raises first (exit 7:
    it is wrong, whatever the gates say), the JUnit file written all the same."""
    if beyond is None:
        finish_gates(report, junit)
        return
    if junit:
        from tfopt.report import write_junit

        write_junit(junit, report.get("gates", []))
    raise beyond


def _beyond_bound(report: dict[str, Any]) -> Exception | None:
    """The report's rows beyond their verification bound (:mod:`tfopt.verification.fidelity_bound`, as
    ``tfopt convert`` holds them): each recorded in ``failed`` (stage "verifying"), and the error to raise
    (None when every row is within its bound). ``tfopt verify`` removes no file: it fails."""
    import dataclasses

    from tfopt.conversion.parts import Failure
    from tfopt.verification.fidelity_bound import KEY, fidelity_error

    errors: list[Exception] = []
    for row in [*report.pop("timed_out", []), *report["artifacts"]]:  # a timed-out artifact has no row: no numbers
        if "reason" in row or row.get(KEY):
            errors.append(VerificationTimeoutError(row["reason"]) if "reason" in row else
                          fidelity_error(row, report["samples"], None))
            row.pop(KEY, None)
            failure = Failure(row["format"], row["precision"], "verifying", type(errors[-1]).__name__,
                              errors[-1].exit_code, str(errors[-1]))  # type: ignore[attr-defined]
            report["failed"] = [*report.get("failed", []), dataclasses.asdict(failure)]
    if not errors:
        return None
    if len(errors) > 1:
        errors[0].args = ("\n".join(str(e) for e in errors),)
    return errors[0]


def _check_outputs(outdir: str, reference: str, theirs: list[str], ours: list[str]) -> None:
    """The reference must answer every output the conversion recorded (it may have more)."""
    missing = [name for name in ours if name not in theirs]
    if not missing:
        return
    with open(os.path.join(outdir, "manifest.json")) as f:
        source = json.load(f).get("source")
    flag = " ".join(["--outputs", *ours])
    raise OutputMismatchError(
        f"--reference {reference}: its outputs {theirs} are not the conversion's {ours} ({outdir}/manifest.json; "
        f"missing: {', '.join(missing)}). Verify against the model {outdir} was converted from"
        f"{f' ({source})' if source else ''} with the conversion's load options; for a TF1 checkpoint or "
        f"GraphDef: {flag}")


def verify_artifact(path: str, reference: str, *, eval_data: str | None = None, fail_if: Sequence[str] = (),
                    junit: str | None = None, runs: int = 20, threads: int | None = None,
                    report_dir: str | None = None, metric: str | None = None, allow_nonfinite: bool = False,
                    verify_timeout: float | None = None, **load_options: Any) -> dict[str, Any]:
    """``tfopt verify ARTIFACT``: measure one file (``.tflite``, ``.onnx``, an OpenVINO ``.xml`` or
    its directory, ``.pb``, a SavedModel directory) against the reference model. The report is
    written to ``report_dir`` when given; nothing is written next to the artifact. Both hold every
    sample to the artifact's verification bound (:mod:`tfopt.verification.fidelity_bound`), as
    ``tfopt convert`` does: one beyond it is a :class:`~tfopt.errors.VerificationError`."""
    from tfopt.conversion.parts import is_quantization_aware
    from tfopt.freezing import freeze
    from tfopt.loaders import load
    from tfopt.report import write_reports
    from tfopt.report.gates import parse_gate

    gates = [parse_gate(g) for g in fail_if]
    _check_options(runs, threads, metric, eval_data, verify_timeout)
    fmt, path = artifact_format(path)
    frozen, _ = freeze(load(reference, **load_options), verify=False)
    name = os.path.basename(path)
    match = next((p for p in PRECISIONS if f".{p}." in f".{name}."), None)
    size, gzipped = artifact_sizes(fmt, path)
    manifest = {"source": reference, "artifacts": [{"format": fmt, "precision": match or "unknown",
                                                     "path": os.path.abspath(path), "bytes": size,
                                                     "gzip_bytes": gzipped}]}
    with deadline.verify_timeout(verify_timeout):
        report = build_report(os.path.dirname(os.path.abspath(path)), frozen, runs=runs,
                              eval_data=_read_eval(eval_data, frozen, allow_nonfinite),
                              threads=threads, gates=gates, manifest=manifest, write_to=None, metric=metric,
                              allow_nonfinite=allow_nonfinite,
                              bounds=manifest_bounds(manifest, quantization_aware=is_quantization_aware(frozen)))
    beyond = _beyond_bound(report)
    if report_dir is not None:
        os.makedirs(report_dir, exist_ok=True)
        write_reports(report_dir, report)
    _finish(report, junit, beyond)  # a GateFailure carries the report: the caller shows it too
    return report


def artifact_sizes(fmt: str, path: str) -> tuple[int, int]:
    """``(bytes, gzip bytes)`` of one artifact as :func:`artifact_format` returns it (an IR is its
    ``.xml`` plus its ``.bin``)."""
    from tfopt._io import gzip_size, tree_size

    files = [f for f in (path, *target(fmt, "format").companion_files(path)) if os.path.exists(f)]
    return sum(tree_size(f) for f in files), sum(gzip_size(f) for f in files)


def artifact_format(path: str) -> tuple[str, str]:
    """``(format, path to run)`` of a single artifact, from its name."""
    if os.path.exists(path):
        record = target_of_file(path)
        if record is not None:
            return record.name, os.path.join(path, record.run_file) if os.path.isdir(path) else path
    else:
        from tfopt.errors import ModelNotFoundError

        raise ModelNotFoundError(f"{path}: no such file or directory")
    raise OptionError(f"{path}: not an artifact tfopt can run (.tflite, .onnx, an OpenVINO .xml or its directory, "
                      ".pb, a SavedModel directory) nor a `tfopt convert` directory (manifest.json)")


def build_report(outdir: str, model: Model, *, eval_data: LabeledData | None = None, samples: Any = None, seed: int = 0,
                 runs: int = 20, threads: int | None = None, gates: Sequence[Any] = (),
                 passes: list[dict[str, Any]] | None = None, stages: dict[str, float] | None = None,
                 preprocess: Any = None, layers: dict[str, Any] | None = None, progress: Any = None,
                 manifest: dict[str, Any] | None = None, write_to: str | None = "",
                 metric: str | None = None, allow_nonfinite: bool = False, verified_at: Any = None,
                 converted_here: bool = False, runtime_default_precision: str | None = None,
                 recorded: Any = None, bounds: dict[str, float] | None = None) -> dict[str, Any]:
    """Measure every artifact of ``outdir/manifest.json`` (or of ``manifest``) against the original
    model; write report.json/md/html into ``write_to`` ("" means ``outdir``; None: not written).
    Made-up inputs take the shape of ``verified_at`` (a :class:`tfopt.verification.verify_inputs.VerifyInputs`), else
    of the manifest's ``verification`` record, at batch 8. ``eval_data``: the inputs and labels, read and
    checked by the caller (:func:`tfopt.verification.input_data.read_labeled`). The inputs measured on are counted for
    NaN/Inf (``nonfinite_inputs``). ``converted_here``: :func:`tfopt.convert` built the artifacts
    from ``model`` just now, so a runtime failing where the original runs is the runtime's fault.
    ``recorded``: the original's part (:func:`record_original`), measured before the original was
    released; the inputs, labels and reference numbers are then its. ``bounds``: as for
    :func:`tfopt.report.measure.measure` (artifact path -> the verification bound over every sample)."""
    from tfopt.report import evaluate_gates, measure, write_reports

    if manifest is None:
        with open(os.path.join(outdir, "manifest.json")) as f:
            manifest = json.load(f)
    if recorded is None:
        recorded = record_original(model, eval_data=eval_data, samples=samples, seed=seed, runs=runs,
                                   manifest=manifest, verified_at=verified_at, allow_nonfinite=allow_nonfinite)
    elif recorded.untimed:  # recorded before the artifacts: its outputs kept, its latency timed now the converters are idle
        recorded = recorded.timed_again(_original_run(model), runs)
    inputs, labels = recorded.inputs, recorded.labels
    score = None
    if metric:
        from tfopt._user_code import import_function
        score = import_function(metric, "--metric")
    artifacts = [a for a in manifest["artifacts"] if not (preprocess is not None and target(a["format"], "format").takes_preprocess)]
    report = measure(outdir, None, model, artifacts, inputs=inputs, labels=labels, runs=runs, threads=threads,
                     progress=progress, metric=score, converted_here=converted_here, batch_axes=recorded.batch_axes,
                     runtime_default_precision=runtime_default_precision, recorded=recorded, bounds=bounds)
    measured = {row["path"] for row in report["artifacts"]}  # not those that timed out (report["timed_out"])
    for row, artifact in zip(report["artifacts"], [a for a in artifacts if a["path"] in measured], strict=True):
        row["int8_ops"] = _int8_ops(outdir, artifact)
        row["fixed_shapes"] = artifact.get("fixed_shapes")
        row["rewrites"] = artifact.get("rewrites")
        if artifact.get("conditioning"):  # verified at a smaller made-up scale (tfopt.verification.conditioning)
            row["conditioning"] = artifact["conditioning"]
    # what the artifacts were verified on (the report's own measurement uses batch 8 of the same shape)
    report.update({"verification": manifest.get("verification") or (verified_at.as_dict() if verified_at else None),
                   "onnx_quantization": manifest.get("onnx_quantization"),
                   "runtime_settings": manifest.get("runtime_settings"), "source": manifest.get("source"), "source_format": manifest.get("source_format"),
                   "inputs": manifest.get("inputs"), "outputs": manifest.get("outputs"),  # with their batch axes
                   "tools": manifest.get("tools"), "passes": passes or [], "stage_seconds": stages or {},
                   "metric": metric or ("top1/top5" if labels is not None and np.issubdtype(labels.dtype, np.integer)
                                        else "mae/rmse" if labels is not None else None),
                   "nonfinite_inputs": count_nonfinite(inputs),
                   "failed": manifest.get("failed") or [],  # requested, not built (tfopt convert's partial result)
                   **(layers or {"layer_errors": {}, "keep_float": {}})})
    compression = model.provenance.get("compression")
    report["compression"] = compression
    if compression:  # where clustering and pruning show: unique values and zeros per weight tensor
        from tfopt.report.weights import weight_stats

        for row in report["artifacts"]:
            row["weights"] = weight_stats(row["format"], os.path.join(outdir, row["path"]))
    report["gates"] = evaluate_gates(report, gates)
    if write_to is not None:
        os.makedirs(write_to or outdir, exist_ok=True)
        write_reports(write_to or outdir, report)
    return report


def record_original(model: Model, *, eval_data: LabeledData | None = None, samples: Any = None, seed: int = 0,
                    runs: int = 20, manifest: dict[str, Any] | None = None, verified_at: Any = None,
                    allow_nonfinite: bool = False, timed: bool = True) -> Any:
    """The original model's part of the report (:class:`tfopt.report.measure.RecordedReference`):
    the inputs measured on (see :func:`_report_inputs`), the original's outputs on them and its latency
    (``timed=False``: left to the report, :meth:`~tfopt.report.measure.RecordedReference.timed_again`)."""
    from tfopt.report.measure import record_reference

    run = _original_run(model)
    inputs, labels, axes, rows, padded = _report_inputs(model, run, eval_data, samples, manifest or {}, verified_at,
                                                        seed, allow_nonfinite)
    batching = describe(len(labels) if labels is not None else rows_of(inputs, axes) - padded, rows, padded) \
        if eval_data or samples else ""
    given = eval_data.where if eval_data else "--calibration" if samples else ""
    return record_reference(run, model, inputs, axes, runs, labels, rows, padded, batching, given=given, timed=timed)


def _original_run(model: Model) -> Any:
    """The report's original on feeds keyed by input name: the model before post-training compression
    when there was some (the accuracy a clustered or pruned model gives up is part of the trade it reports)."""
    from tfopt.verification.verify import reference_runner

    original = model.baseline or reference_runner(model)
    bindings = model.bindings if model.reference is not None and model.baseline is None else {}

    def run(feeds: Any) -> Any:
        return original({**feeds, **bindings})
    return run


def _int8_ops(outdir: str, artifact: dict[str, Any]) -> dict[str, Any] | None:
    """An int8 artifact's kernels as its runtime runs them (:mod:`tfopt.quantizing.int8_ops`): the
    count ``tfopt convert`` recorded in the manifest, else (``tfopt verify`` of one file, or a
    manifest written before fusion was counted) counted now. None for other precisions."""
    from tfopt.quantizing.int8_ops import count_quantized_ops, counted

    if artifact.get("precision") != "int8" or not counted(artifact["format"]):
        return None
    recorded = artifact.get("int8_ops")
    if recorded and "fused" in recorded:
        return dict(recorded)
    return count_quantized_ops(artifact["format"], os.path.join(outdir, artifact["path"]))


def finish_gates(report: dict[str, Any] | None, junit: str | None) -> None:
    """Write the JUnit XML and raise :class:`GateFailure` listing every tripped gate."""
    from tfopt.errors import GateFailure
    from tfopt.report import write_junit

    results = (report or {}).get("gates", [])
    if junit:
        write_junit(junit, results)
    failed = [r for r in results if r["failed"]]
    if failed:
        listed = "; ".join(f"{r['format']}/{r['precision']}: {r['gate']} ({r['metric']} = {r['value']:.4g})"
                           for r in failed)
        raise GateFailure(f"{len(failed)} gate check(s) failed: {listed}", report=report or {})


def _check_options(runs: int, threads: int | None, metric: str | None, eval_data: str | None,
                   verify_timeout: float | None = None) -> None:
    """``tfopt verify``'s options, before any work (``convert``'s are :func:`tfopt.conversion.checks.check_options`')."""
    from tfopt._checks import check_ranges
    from tfopt.options import ReportOptions

    ReportOptions(eval_data=eval_data, metric=metric, report_runs=runs, threads=threads).check()
    check_ranges({"--verify-timeout": verify_timeout})


def _read_eval(path: str | None, model: Model, allow_nonfinite: bool) -> LabeledData | None:
    return read_labeled(path, model.inputs, option="--eval-data", allow_nonfinite=allow_nonfinite) if path else None


def _report_inputs(model: Model, run: Any, eval_data: LabeledData | None, samples: Any, manifest: dict[str, Any],
                   verified_at: Any, seed: int,
                   allow_nonfinite: bool) -> tuple[dict[str, np.ndarray], np.ndarray | None,
                                                   dict[str, int | None] | None, int, int]:
    """``--eval-data``, else calibration samples, else made-up data at the shape the conversion was
    verified at (``verified_at``, else the manifest's record, else searched), batch 8. Given data the
    original model cannot answer is an input problem (:class:`OptionError`), found before any
    artifact runs. Also each input's batch axis (None: axis 0), read from the shapes at batch 1
    (:func:`tfopt.verification.shapes.batch_axes`: a time-major input holds its samples on axis 1),
    and the rows of one sample there (a batch split into N towers: N), and the rows that complete given
    data's last batch (:mod:`tfopt.verification.data_batches`: a graph that takes whole batches of N rows)."""
    from tfopt.verification.testing import random_inputs
    from tfopt.verification.verify import check_inputs, choose_inputs
    from tfopt.verification.verify_inputs import VerifyInputs

    outputs = [s.name for s in model.outputs]
    if eval_data or samples:
        inputs, labels = ((eval_data.inputs, eval_data.labels) if eval_data else
                          (join_samples(samples[:32], model.inputs), None))
        ties = verified_at.ties if verified_at is not None else None
        given = batched(run, model.inputs, inputs, model.graph_def, ties=ties, seed=seed)  # towers: whole batches
        first = VerifyInputs(given.sample(0), "eval-data" if eval_data else "calibration")
        if not allow_nonfinite:  # data holding NaN/Inf gives NaN outputs: measured and reported, not refused
            check_inputs(run, first, eval_data.where if eval_data else "--calibration", outputs)
        return given.inputs, labels, given.axes, given.rows, given.padded
    recorded = (manifest.get("verification") or {}).get("shapes")
    if verified_at is None and recorded and set(recorded) == {s.name for s in model.inputs}:
        values = ((manifest.get("verification") or {}).get("values") or {}).get("floats", "standard normal")
        verified_at = VerifyInputs(random_inputs(model.inputs, seed=seed, shapes=recorded, graph_def=model.graph_def,
                                                 values=values), "made up", values=values)
    if verified_at is None:
        verified_at = choose_inputs(run, model.inputs, outputs=outputs, batch=1, seed=seed, graph_def=model.graph_def)
    from tfopt.verification.input_structure import fed_whole
    from tfopt.verification.shapes import batch_axes

    axes = fed_whole(model.graph_def, batch_axes(  # a ragged partition and its values: one sample
        model.inputs, verified_at.with_batch(model.inputs, 1, seed, model.graph_def).shapes(), verified_at.ties))
    rows = verified_at.ties.sample_rows() if verified_at.ties is not None else 1
    return verified_at.with_batch(model.inputs, 8, seed, model.graph_def).feeds, None, axes, rows, 0
