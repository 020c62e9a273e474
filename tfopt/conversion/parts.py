"""The pieces of ``tfopt convert`` its stages share (:mod:`tfopt.conversion.stages`): the result
records, how one artifact is emitted and verified, and what ``manifest.json`` holds.

Moved here unchanged from :mod:`tfopt.conversion.convert` so that the stages can run one by one (the fleet
runs them in separate processes) while ``convert()`` runs them in sequence.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tfopt._io import gzip_size, tree_size
from tfopt.errors import ConversionError, VerificationTimeoutError, one_line
from tfopt.graph import Model
from tfopt.options import QuantizeOptions
from tfopt.runtimes import runner_for
from tfopt.targets import TABLE, EmitJob
from tfopt.verification.nonfinite import to_json
from tfopt.verification.tolerances import ARTIFACT


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
    fixed_shapes: dict[str, list[int]] | None = None  # inputs whose open batch the file fixes (TFLite's pinned retry)
    conditioning: dict[str, Any] | None = None  # verified at a smaller made-up rung (tfopt.verification.conditioning)
    rewrites: dict[str, list[str]] | None = None  # its converter's graph rewritten for it (tfopt.emitters.converter_lower)


@dataclass
class Failure:
    """A requested target x precision that could not be built or verified (the others still are)."""

    format: str
    precision: str
    stage: str  # "converting" or "verifying"
    error: str  # the error's class, e.g. "ConversionError"
    exit_code: int  # what it alone would exit with (see tfopt.errors)
    reason: str  # the error's message, with the `tfopt debug` command to run next


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
    verified_at: Any = None  # tfopt.verification.verify_inputs.VerifyInputs the artifacts were verified on
    int8: dict[str, Any] | None = None  # what tfopt's int8 engine did (tfopt.quantizing.engine.plan.Int8Plan.record)
    engine_fallbacks: dict[str, str] = field(default_factory=dict)  # target -> why its converter took the native path
    failed: list[Failure] = field(default_factory=list)  # requested, not built: the others were (exit 11)
    errors: list[Any] = field(default_factory=list, repr=False, compare=False)  # the exceptions behind ``failed``

    @property
    def partial(self) -> bool:
        """Some requested artifacts failed and the others were written (the CLI exits 11)."""
        return bool(self.failed)


def is_quantization_aware(model: Model) -> bool:
    """A QAT model: its fake-quant ops carry the int8 ranges, so int8 needs no calibration."""
    return any(n.op.startswith("FakeQuantWithMinMax") for n in model.graph_def.node)


def accuracy_control(max_drop: float, labeled: Any) -> Any:
    """OpenVINO's accuracy control at ``max_drop`` on the eval data (``labeled``, a
    :class:`tfopt.verification.input_data.LabeledData`: ``check_options`` requires it)."""
    from tfopt.emitters.openvino import AccuracyControl
    from tfopt.verification.classes import top1_fraction

    return AccuracyControl(max_drop, labeled.inputs, labeled.labels, top1_fraction)


def int8_measure(portable: Model, runtime: Model, samples: Any, q: QuantizeOptions, r: Any, labeled: Any = None) -> Any:
    """``measure(target, model) -> row`` for ``--int8-recipe auto`` and ``--auto-keep-float``: an engine
    graph's real artifact, run in its runtime on the eval data (``labeled``), else the calibration
    data, scored by agreement with the float model. The data is fed as the report feeds it, in whole
    batches the graph takes (:func:`tfopt.verification.data_batches.batched`), and the original's part
    is recorded once for every candidate."""
    from tfopt.quantizing.engine.plan import LATENCY_RUNS, scratch_measure
    from tfopt.report.measure import measure, record_reference
    from tfopt.verification.data_batches import batched, join_samples
    from tfopt.verification.verify import reference_runner

    inputs, labels = (labeled.inputs, labeled.labels) if labeled is not None else (join_samples(samples, portable.inputs), None)
    original = reference_runner(portable)
    bindings = portable.bindings if portable.reference is not None and portable.baseline is None else {}
    recorded: list[Any] = []  # the original's outputs and latency, once

    def reference(feeds: Any) -> Any:
        return original({**feeds, **bindings})

    def build(target: str, model: Model, scratch: str) -> str:
        path = os.path.join(scratch, TABLE[target].artifact_path("int8"))
        return emit(target, EmitJob(model, runtime, path, "int8", samples, q, quantization_aware=True))

    def measure_row(target: str, scratch: str, path: str) -> dict[str, Any]:
        if not recorded:
            given = batched(reference, portable.inputs, inputs, portable.graph_def, seed=r.seed)
            recorded.append(record_reference(reference, portable, given.inputs, given.axes, LATENCY_RUNS, labels,
                                             given.rows, given.padded))
        full = os.path.join(scratch, path)
        artifact = {"format": target, "precision": "int8", "path": path, "bytes": tree_size(full),
                    "gzip_bytes": gzip_size(full)}
        report = measure(scratch, None, portable, [artifact], inputs=recorded[0].inputs, labels=labels,
                         runs=LATENCY_RUNS, threads=r.threads, converted_here=True,
                         batch_axes=recorded[0].batch_axes, recorded=recorded[0])
        if report.get("timed_out"):  # its runtime did not end in the bound (tfopt.verification.deadline)
            raise VerificationTimeoutError(report["timed_out"][0]["reason"])
        row: dict[str, Any] = report["artifacts"][0]
        return row

    return scratch_measure(build, measure_row)


def emit_engine(target: str, job: EmitJob, native: EmitJob, say: Callable[[Any], None], result: ConvertResult) -> str:
    """The engine's int8 artifact; when the target's converter cannot express the engine's graph
    (an op its int8 path lacks once fake quants split a fused pattern), the converter's own int8,
    said as it happens and recorded (``engine_fallbacks``, the artifact's ``quantizer``)."""
    try:
        return emit(target, job)
    except ConversionError as exc:
        reason = one_line(exc)
        say(f"{target} int8: its converter cannot express tfopt's int8 graph ({reason}); "
            f"building it with {target}'s own quantizer")
        result.engine_fallbacks[target] = reason
        return emit(target, native)


def emit(target: str, job: EmitJob) -> str:
    """Write one artifact through its target's record. For a quantization-aware graph, a target
    whose converter turns fake quants into its own quantize ops builds int8 as that conversion."""
    record = TABLE[target]
    if job.quantization_aware and job.precision == "int8" and record.qat_int8_as:
        job = dataclasses.replace(job, precision=record.qat_int8_as)
    if job.portable.external is not None and record.graph != "runtime":  # converters read it as a SavedModel
        from tfopt.external.emit import emit_large

        return emit_large(target, job)
    written: str = record.call("emit", job)
    return written


class ReferenceOutputs:
    """The original model's outputs on each set of verification inputs, run once per set: every
    artifact of one conversion is verified on the same inputs against the same original.
    ``runs`` counts the original's runs (one per input set, however many artifacts ask); ``seconds`` is the
    longest of them (None: none ran here), what an artifact's time bound scales (:mod:`tfopt.verification.deadline`).
    ``self_disagreements``: the original's, measured once per made-up input set when checks fail on them
    (:class:`tfopt.verification.self_disagreement.SelfDisagreements`)."""

    def __init__(self, original: Model):
        from tfopt.verification.self_disagreement import SelfDisagreements

        self.original, self.runs = original, 0
        self.self_disagreements = SelfDisagreements()
        self._runner: Any = None
        self._done: list[tuple[Any, dict[str, Any]]] = []  # (VerifyInputs, outputs), by identity: it holds arrays

    def __call__(self, inputs_at: Any) -> dict[str, Any]:
        from tfopt.verification.verify import reference_outputs, reference_runner

        for done, outputs in self._done:
            if done is inputs_at:
                return outputs
        self._runner = self._runner or reference_runner(self.original)
        self._done.append((inputs_at, reference_outputs(self.original, inputs_at, self._runner)))
        self.runs += 1
        return self._done[-1][1]

    @property
    def seconds(self) -> float | None:
        return getattr(self._runner, "seconds", None) or None

    def release(self, model: Model) -> None:
        """Keep the outputs computed so far; run ``model`` (the frozen graph) for any other input set (its
        self-disagreements measured anew: another original)."""
        from tfopt.verification.self_disagreement import SelfDisagreements

        self.original, self._runner = model, None
        self.self_disagreements = SelfDisagreements()

    def on(self, sets: list[Any]) -> list[dict[str, Any]]:
        """The outputs on each of ``sets`` (computed now for a set not seen yet), in their order."""
        return [self(inputs_at) for inputs_at in sets]

    @classmethod
    def recorded(cls, model: Model, sets: list[Any], outputs: list[dict[str, Any]]) -> ReferenceOutputs:
        """The original's ``outputs`` on each of ``sets``, recorded earlier (:meth:`on`); ``model``
        (the frozen graph) runs any other input set."""
        reference = cls(model)
        reference._done = list(zip(sets, outputs, strict=True))
        return reference


def verify(artifact: Artifact, portable: Model, path: str, inputs: Any, *, bounded: bool = True,
           preprocess: Any = None, reference: ReferenceOutputs | None = None) -> None:
    """``reference``: the original's outputs, shared by every artifact of the conversion. Each runtime call is
    held to the time bound (:mod:`tfopt.verification.deadline`), scaled by the original's time when known."""
    from tfopt.verification.deadline import artifact_bound, describe_bound
    from tfopt.verification.verify import verify_artifact

    def open_runner() -> Any:  # after the original ran on the first input set: its time is known
        return runner_for(artifact.format, path, portable, describe_bound=describe_bound,
                          timeout=artifact_bound(reference.seconds if reference is not None else None))

    verify_artifact(artifact, open_runner, portable, inputs,
                    bound=ARTIFACT.get(artifact.precision) if bounded else None, preprocess=preprocess,
                    reference=reference)


def manifest_options(q: QuantizeOptions, qat: bool, allow_nonfinite: bool, model: Model) -> dict[str, Any]:
    """The options ``manifest.json`` records (what the artifacts depend on, not where output went)."""
    return dict(to=q.to, quantize=list(q.quantize), calibration=q.calibration, calibration_samples=q.calibration_samples,
                mean=list(q.mean), scale=list(q.scale), int8_io=q.int8_io, allow_tf_ops=q.allow_tf_ops, opset=q.opset,
                quantization_aware=qat, ov_preprocess=q.ov_preprocess, accuracy_control=q.accuracy_control,
                quantizer=q.quantizer, int8_recipe=q.int8_recipe, calibration_method=q.calibration_method,
                per_tensor=q.per_tensor,
                allow_nonfinite=allow_nonfinite, compression=model.provenance.get("compression"))


def target_quantization(result: ConvertResult, qat: bool) -> dict[str, dict[str, Any]]:
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


def write_manifest(tmp: str, result: ConvertResult, model: Model, options: dict[str, Any], verified_at: Any) -> None:
    """manifest.json: options, tool versions and artifacts - no timestamps, so it is deterministic."""
    from importlib.metadata import PackageNotFoundError, version

    from tfopt._version import __version__
    from tfopt.conversion.manifest import spec_records

    tools = {"tfopt": __version__}
    for dist in dict.fromkeys(d for record in TABLE.values() for d in record.distributions):
        try:
            tools[dist] = version(dist)
        except PackageNotFoundError:
            continue
    manifest = {
        "source": model.provenance.get("path"), "source_format": model.provenance.get("format"),
        **spec_records(model),  # with each input's and output's batch axis
        "options": options, "tools": tools, "artifacts": [asdict(a) for a in result.artifacts],
        "skipped": [{"format": f, "precision": p, "reason": r} for f, p, r in result.skipped],
        "failed": [asdict(f) for f in result.failed],
        "verification": verified_at.as_dict() if verified_at is not None else None,
        **target_quantization(result, options.get("quantization_aware", False)),
        "runtime_settings": {t.name: t.call("runtime_settings") for t in TABLE.values()
                             if t.runtime_settings and any(a.format == t.name for a in result.artifacts)},
        "int8_engine": None if result.int8 is None else {**result.int8, "fallbacks": result.engine_fallbacks},
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(to_json(manifest), f, indent=2, sort_keys=True, default=str, allow_nan=False)


def keep_float_search(q: QuantizeOptions, target: str, precision: str, *, engine: bool, qat: bool) -> bool:
    """Whether ``target``'s ``precision`` artifact is the native keep-float search's
    (:func:`tfopt.quantizing.native.keep_float.selective`: ``--keep-float``/``--auto-keep-float``)."""
    return (not engine and not qat and bool(q.keep_float or q.auto_keep_float is not None)
            and precision in TABLE[target].keep_float)
