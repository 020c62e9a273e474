"""``tfopt convert``: load, freeze and optimize once, then emit every target x precision, verify
each artifact against the original model, and write them all atomically with a manifest.

Which graph each target gets: TFLite, ONNX and OpenVINO read the *portable* graph (folded, no
``_Fused*`` ops: they fuse for themselves); ``pb`` and ``savedmodel`` get the *runtime* graph.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tfopt._io import atomic_path
from tfopt.conversion.parts import Artifact, ConvertResult, is_quantization_aware
from tfopt.errors import GateFailure
from tfopt.graph import Model
from tfopt.options import ConvertOptions
from tfopt.targets import TABLE

__all__ = ["Artifact", "ConvertResult", "convert", "is_quantization_aware"]


def convert(model: Model | str, outdir: str, options: ConvertOptions | None = None, *,
            progress: Callable[[Any], None] | None = None, **kwargs: Any) -> ConvertResult:
    """Convert one model to every requested target and precision.

    Args:
        model: a loaded model or a path.
        outdir: output directory, replaced atomically as a whole (``overwrite``: see :mod:`tfopt.conversion.output_paths`).
        options: a :class:`tfopt.options.ConvertOptions`, one object per stage. The keywords below
            (and every load, freeze and optimize option: see :func:`tfopt.options.flat_names`)
            build the same object, or change the given one.
        to: formats (default: every format whose extra is installed; from that default list, a
            format whose converter cannot express the model is skipped with the reason, not fatal).
        quantize: precisions: ``fp32`` (``none`` is accepted as an alias), ``fp16``, ``dynamic``, ``int8``, ``int16x8``.
        calibration: ``.npz``/``.npy``/``module:fn`` (see :mod:`tfopt.verification.calibration`); required for
            int8 and int16x8.
        ov_preprocess: :class:`tfopt.emitters.openvino.Preprocess` baked into OpenVINO IRs.
        accuracy_control: OpenVINO int8 through NNCF's accuracy control with this maximal top-1
            drop (absolute, e.g. 0.01), measured on ``eval_data`` (``.npz`` of inputs + ``labels``).
        keep_float: layers the int8 artifacts (TFLite, ONNX, OpenVINO; ONNX int16x8 too) keep in
            float: a TF node name, or the target's own layer name (see :mod:`tfopt.quantizing.native.ranking`).
        auto_keep_float: rank the layers (each quantized alone, worst first), then keep the worst in
            float, one at a time, until the top-1 agreement drop (accuracy drop with ``eval_data``)
            is within this many points; for every quantizing target.
        cluster / cluster_init / prune / exclude / finetune_data / finetune_epochs: TFMOT weight
            clustering and magnitude pruning of a Keras 2 model before freezing (see
            :mod:`tfopt.loaders.compressing`); the report then measures against the uncompressed model.
        verify_shape: input name -> a concrete shape to verify every stage at (the artifacts keep
            their dynamic dimensions); without it, and without ``eval_data``/``calibration``, the
            inputs are made up at a size the original model answers (see :mod:`tfopt.verification.verify`).
        metric: ``module:fn`` scoring ``fn(first_output, labels) -> float`` (higher is better) on
            ``eval_data``, in place of top-1/top-5 (integer labels) or MAE/RMSE (float labels).
        fail_if: gates over the report (see :mod:`tfopt.report.gates`); ``junit`` writes them as XML.
            A tripped gate raises :class:`GateFailure` after everything is written.
        allow_nonfinite: accept NaN/Inf in ``calibration``/``eval_data`` (else OptionError); the report counts them.
        all_or_nothing: a requested target that fails (cannot be converted, or differs from the
            original) fails the whole run and nothing is written. By default the others are
            written and verified, and each failure is recorded with its reason in
            ``result.failed``, ``manifest.json`` and ``report.json`` (the CLI exits 11).
        progress: called with a ``str`` as each stage starts and a :class:`tfopt.terminal.progress.Step`
            inside long stages (``progress=print`` works). Each call is a safe point for an interrupt.

    Returns:
        A :class:`ConvertResult`; ``result.failed`` lists the requested targets that failed
        (``result.partial``), when others were built.

    Raises:
        OptionError: an option or a data file is wrong (checked before any work).
        OutputPathError: ``outdir`` cannot be written.
        ConversionError: nothing could be built, or the first failure with ``all_or_nothing``.
        VerificationError: an fp32/fp16 artifact differs, when nothing could be built or with ``all_or_nothing``.
    """
    from tfopt.conversion.stages import plan

    return convert_planned(model, plan(model, outdir, options, **kwargs), progress=progress)


def convert_planned(model: Model | str, p: Any, *, progress: Callable[[Any], None] | None = None,
                    release: bool = False) -> ConvertResult:
    """:func:`convert` after its plan (:func:`tfopt.conversion.stages.plan`, a ``ConvertPlan``): the CLI
    plans once, loads the model itself, and hands both here. ``release``: a ``model`` with tensors
    outside its graph may be released once its outputs are recorded (its fields that run the
    original are cleared in place: :mod:`tfopt.conversion.release`); always so for a path."""
    from tfopt.conversion import ahead
    from tfopt.conversion import stages as convert_stages
    from tfopt.conversion.sizes import BackgroundSizes
    from tfopt.emitters.onnx_worker import shared_child
    from tfopt.terminal.progress import Step
    from tfopt.terminal.signals import checkpoint

    outdir = p.outdir

    def say(event: Any) -> None:  # every progress event is a safe point for an interrupt
        checkpoint()
        if progress is not None:
            progress(event)

    say("loading, freezing and optimizing (once for every target)")
    # one tf2onnx child process for every ONNX conversion of this run (see emitters.onnx_worker)
    with shared_child() as child:
        if any("tf2onnx" in TABLE[t].distributions for t, _ in p.pairs):
            # before any TensorFlow work: with the child's hash seed (the tfopt command), a fork of this
            # process after TensorFlow's import; else a new one, whose import overlaps loading and freezing
            child.start(fork=may_fork(model))
        prepared = convert_stages.prepare_graphs(model, p)
        ahead.send_ahead(p, prepared)  # tf2onnx works while the other targets are built
        convert_stages.prepare_statistics(p, prepared, say)
        ahead.send_engine_ahead(p, prepared)  # the int8 engine's graph too, queued behind it
        if release or not isinstance(model, Model):
            from tfopt.conversion.release import record_and_release

            record_and_release(p, prepared, model if isinstance(model, Model) else None)
        from tfopt.conversion.release import record_given_data

        record_given_data(p, prepared)  # a sample of given data the original refuses: said before any artifact
        result = ConvertResult(outdir=outdir, skipped=p.skipped, freeze_report=prepared.freeze_report,
                               optimize_report=prepared.optimize_report, verified_at=prepared.verified_at)
        with atomic_path(outdir, directory=True) as tmp, BackgroundSizes() as prepared.sizes:
            os.makedirs(tmp)
            for index, (target, precision) in enumerate(p.pairs):
                say(Step("artifacts", index + 1, len(p.pairs)))
                say(f"{target} {precision}")
                convert_stages.emit_artifact(p, prepared, result, tmp, target, precision, say,
                                             last=index == len(p.pairs) - 1)
            convert_stages.check_built(result)  # nothing built: raise, and nothing is written
            convert_stages.finish(p, prepared, result, tmp, say)
    from tfopt.report.build import finish_gates

    try:
        finish_gates(result.report, p.options.report.junit)
    except GateFailure as exc:  # everything is written; let callers show the result too
        exc.result = result
        raise
    return result


def may_fork(model: Model | str) -> bool:
    """Whether the tf2onnx child may be a fork of this process: not when it holds a loaded model with
    tensors outside its graph (the CLI loads before converting). The fork would keep that model's
    memory for the whole run: copy-on-write pages the parent frees stay the child's (measured: 4.6 GB
    of the 2.2 GB-table model in the tf2onnx child, after this process had released it)."""
    return not (isinstance(model, Model) and model.external is not None)
