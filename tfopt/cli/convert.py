"""``tfopt convert``: every target and precision from one load/freeze/optimize, verified and reported."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tfopt.cli.args import (
    COUNT,
    EPILOG,
    TOLERANCE,
    binding_options,
    freeze_of,
    load_of,
    model_options,
    optimize_of,
    optimize_options,
    report_of,
    report_options,
)
from tfopt.options import CompressOptions, ConvertOptions, QuantizeOptions


def add_parser(sub: Any) -> None:
    p = sub.add_parser("convert", help="freeze, optimize and emit TFLite, ONNX, OpenVINO, .pb and SavedModel",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output directory: one file per target x precision, manifest.json and the reports")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing -o directory that tfopt did not write (refused without it)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    binding_options(p)
    model_options(p)
    g = p.add_argument_group("targets")
    g.add_argument("--to", type=lambda v: [x for x in v.split(",") if x], metavar="LIST",
                   help="pb,savedmodel,tflite,onnx,openvino (default: every one whose extra is installed)")
    g.add_argument("--all-or-nothing", action="store_true",
                   help="a target that fails fails the run and nothing is written (default: the others are "
                        "written and verified, the failures listed in manifest.json, and the exit code is 11)")
    g.add_argument("--quantize", type=lambda v: [x for x in v.split(",") if x], default=["fp32"], metavar="MODES",
                   help="fp32, fp16, dynamic, int8, int16x8; a comma-separated list builds each ('none' = fp32)")
    g.add_argument("--calibration", metavar="DATA",
                   help=".npz keyed by input name, .npy, .tfrecord, an image directory, or module:function")
    g.add_argument("--calibration-samples", type=COUNT, default=100, metavar="N")
    floats = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    g.add_argument("--mean", type=floats, default=[0.0], metavar="M[,M,M]", help="image calibration: subtract")
    g.add_argument("--scale", type=floats, default=[1.0], metavar="S[,S,S]", help="image calibration: divide by")
    g.add_argument("--int8-io", action="store_true", help="TFLite int8: integer-only inputs and outputs")
    g.add_argument("--allow-tf-ops", action="store_true", help="TFLite: keep unsupported ops as Select TF ops")
    g.add_argument("--opset", type=COUNT, help="ONNX opset (default: 17)")
    g.add_argument("--ov-layout", default="NHWC", metavar="LAYOUT", help="OpenVINO input layout (default: %(default)s)")
    g.add_argument("--ov-mean-values", type=floats, metavar="M[,M,M]", help="OpenVINO IR subtracts these from its input")
    g.add_argument("--ov-scale-values", type=floats, metavar="S[,S,S]", help="... then divides by these")
    g.add_argument("--ov-reverse-input-channels", action="store_true", help="... after reversing channels (RGB<->BGR)")
    g.add_argument("--accuracy-control", type=TOLERANCE, metavar="DROP",
                   help="OpenVINO int8 via NNCF accuracy control: max top-1 drop, e.g. 0.01 (needs --eval-data)")
    g.add_argument("--eval-data", metavar="DATA.npz",
                   help="inputs by name plus 'labels': accuracy in the report, and for --accuracy-control")
    g.add_argument("--keep-float", type=lambda v: [x for x in v.split(",") if x], default=[], metavar="LAYERS",
                   help="int8 (TFLite, ONNX, OpenVINO): keep these layers in float (TF node or target layer names)")
    g.add_argument("--auto-keep-float", type=TOLERANCE, metavar="DROP",
                   help="int8: rank layers by quantization error, keep the worst in float until the drop <= DROP points")
    g = p.add_argument_group("int8 quantization (tfopt's engine: decided once in the TF graph, run by every target)")
    g.add_argument("--quantizer", default="tfopt",
                   help="tfopt: one set of int8 ranges and weights for every target; native: each converter's own "
                        "(default: %(default)s)")
    g.add_argument("--int8-recipe", metavar="RECIPE",
                   help="METHOD[+equalize][+adaround][+bias_correction][+per_tensor] (default: "
                        "mse+equalize+bias_correction), or auto: measure each candidate's drop and latency per target, "
                        "keep the fastest within 0.5 points of float (or of a --fail-if accuracy_drop gate)")
    g.add_argument("--calibration-method", metavar="METHOD",
                   help="activation ranges: minmax, percentile[:99.99], entropy or mse (overrides the recipe's)")
    g.add_argument("--per-tensor", action="store_true", help="one weight range per tensor (for accelerators/DSPs)")
    g.add_argument("--adaround-budget", type=TOLERANCE, metavar="SECONDS", help="time AdaRound may spend (+adaround)")
    g = p.add_argument_group("post-training compression (TFMOT, Keras 2 / tf_keras models)")
    g.add_argument("--cluster", type=COUNT, metavar="N", help="snap each layer's weights to N shared values")
    g.add_argument("--cluster-init", default="kmeans++",
                   help="centroid initialisation: kmeans++, linear, density or random (default: %(default)s)")
    g.add_argument("--prune", type=TOLERANCE, metavar="SPARSITY", help="zero this fraction of each layer's weights, e.g. 0.5")
    g.add_argument("--exclude", type=lambda v: [x for x in v.split(",") if x], default=[], metavar="LAYERS",
                   help="Keras layer names to leave untouched, e.g. conv1,probs")
    g.add_argument("--finetune-data", metavar="DATA.npz", help="inputs by name plus 'labels': fine-tune after "
                   "compressing (TFMOT's way to recover accuracy); without it, compression is post-training only. "
                   "With --quantize int8 and no --cluster/--prune: int8 by a quantization-aware fine-tune "
                   "started from tfopt's ranges (Keras 2 models)")
    g.add_argument("--finetune-epochs", type=COUNT, default=2, metavar="K")
    report_options(p)
    optimize_options(p)


def _ov_preprocess(args: argparse.Namespace) -> Any:
    if not (args.ov_mean_values or args.ov_scale_values or args.ov_reverse_input_channels):
        return None
    from tfopt.emitters.openvino import Preprocess

    return Preprocess(layout=args.ov_layout, mean=tuple(args.ov_mean_values or ()),
                      scale=tuple(args.ov_scale_values or ()), reverse_channels=args.ov_reverse_input_channels)


def quantize_of(args: argparse.Namespace) -> QuantizeOptions:
    """:class:`QuantizeOptions` from the "targets" group."""
    return QuantizeOptions(to=args.to, quantize=args.quantize, calibration=args.calibration,
                           calibration_samples=args.calibration_samples, mean=args.mean, scale=args.scale,
                           int8_io=args.int8_io, allow_tf_ops=args.allow_tf_ops, opset=args.opset,
                           ov_preprocess=_ov_preprocess(args), accuracy_control=args.accuracy_control,
                           keep_float=args.keep_float, auto_keep_float=args.auto_keep_float,
                           quantizer=args.quantizer, int8_recipe=args.int8_recipe,
                           calibration_method=args.calibration_method, per_tensor=args.per_tensor,
                           adaround_budget=args.adaround_budget, all_or_nothing=args.all_or_nothing)


def compress_of(args: argparse.Namespace) -> CompressOptions:
    """:class:`CompressOptions` from the "post-training compression" group."""
    return CompressOptions(cluster=args.cluster, cluster_init=args.cluster_init, prune=args.prune,
                           exclude=args.exclude, finetune_data=args.finetune_data,
                           finetune_epochs=args.finetune_epochs)


def options_of(args: argparse.Namespace) -> ConvertOptions:
    """Every argument group as its options object: what ``tfopt convert`` hands :func:`tfopt.convert`."""
    return ConvertOptions(load=load_of(args), freeze=freeze_of(args), optimize=optimize_of(args),
                          compress=compress_of(args), quantize=quantize_of(args), report=report_of(args),
                          overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    from tfopt.conversion.stages import plan

    # Before TensorFlow is even imported: the output rule (tfopt.conversion.output_paths: never the user's
    # data), then every option the model is not needed for, once (convert_planned does not plan again).
    p = plan(args.model, args.output, options_of(args))
    from tfopt.conversion.convert import convert_planned
    from tfopt.conversion.pipeline import load_kwargs
    from tfopt.errors import PARTIAL_EXIT_CODE, GateFailure, stage
    from tfopt.loaders import load
    from tfopt.report.console import print_convert
    from tfopt.report.hints import PROVENANCE_KEY, load_flags

    # Loaded here (its own stage in the terminal), compressed as it loads; convert gets the model.
    with args.capture.stage("loading"), stage("loading"):
        model = load(args.model, **load_kwargs(p.load))
    model.provenance[PROVENANCE_KEY] = load_flags(p.load)  # what a suggested `tfopt debug` repeats
    loaded = p.for_loaded_model()
    try:
        with args.capture.stage("converting"):
            result = _run_convert(args, model, lambda progress: convert_planned(model, loaded, progress=progress,
                                                                                release=True))
    except GateFailure as exc:
        print_convert(args.output, exc.result, as_json=args.json)
        if exc.result is None or not exc.result.failed:
            raise
        print(f"tfopt: error: {exc}", file=sys.stderr)
        result = exc.result  # a missing target outranks a tripped gate: exit 11
    else:
        print_convert(args.output, result, as_json=args.json, verified=args.verify)
    if result.failed:
        built = len({(a.format, a.precision) for a in result.artifacts})
        print(f"tfopt: error: {len(result.failed)} of {built + len(result.failed)} requested artifacts failed "
              f"({', '.join(f'{f.format} {f.precision}' for f in result.failed)}); the others are written and "
              f"verified in {args.output} (manifest.json lists each failure)", file=sys.stderr)
        return PARTIAL_EXIT_CODE
    return 0


def _run_convert(args: argparse.Namespace, model: Any, convert: Any) -> Any:
    from tfopt.report.console import ProgressPrinter

    display = None if args.json else ProgressPrinter(args.capture.console)
    try:
        return convert(args.capture.progress(display))
    finally:
        if display is not None:
            display.close()  # a bar left running by a failure would garble the error below it
