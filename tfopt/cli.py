"""``tfopt`` command line: a thin layer over :mod:`tfopt.pipeline`.

Only ``argparse`` and tfopt's error types are imported at start-up; each command imports what it
needs, so ``tfopt --help`` and ``tfopt inspect model.pb`` never pay for TensorFlow's import.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from tfopt.errors import OptionError, TfoptError

EPILOG = """exit codes: 0 ok, 1 internal error, 2 bad option, 3 model not found, 4 corrupt model,
5 unsafe model refused, 6 graph cannot be frozen as asked, 7 verification failed,
8 output not writable, 9 a target converter cannot express the model, 10 a --fail-if gate tripped"""


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loading")
    g.add_argument("--signature", default="serving_default", help="SavedModel signature key (default: %(default)s)")
    g.add_argument("--tags", nargs="+", help="SavedModel MetaGraph tags (default: serve)")
    g.add_argument("--outputs", nargs="+", default=[], metavar="NODE",
                   help="output nodes of a TF1 checkpoint or GraphDef (default: the forward graph's single sink)")
    g.add_argument("--unsafe", action="store_true", help="allow Keras Lambda layers (runs code stored in the file)")
    g.add_argument("--custom-objects", metavar="MODULE", help="module defining the model's custom Keras objects")
    g.add_argument("--model-fn", metavar="MODULE:FN", help="builds the model for a TF2 object checkpoint")
    g.add_argument("--input-format", dest="format", metavar="FORMAT",
                   help="skip detection: savedmodel, keras, tf1-checkpoint, tf2-checkpoint, graphdef")


def _report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report and CI gates")
    g.add_argument("--fail-if", action="append", default=[], metavar="EXPR",
                   help="exit 10 if any artifact meets EXPR: [FORMAT[/PRECISION]:]METRIC OP VALUE, "
                        "e.g. 'max_abs_err>1e-3' or 'tflite/int8:accuracy_drop>1.0' (repeatable)")
    g.add_argument("--junit", metavar="PATH", help="write the gate results as JUnit XML")
    g.add_argument("--report-runs", type=int, default=20, metavar="N", help="timed runs per artifact (default 20)")
    g.add_argument("--threads", type=int, metavar="N", help="threads for every runtime (default: all cores)")
    g.add_argument("--metric", metavar="MODULE:FN", help="score outputs against --eval-data labels with "
                   "FN(predictions, labels) -> float, higher is better (default: top-1/top-5, or MAE/RMSE)")


def _freeze_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="OUT.pb, OUT.pbtxt, or a directory for a serving SavedModel")
    p.add_argument("--output-format", choices=["pb", "pbtxt", "savedmodel"], help="override the format -o implies")
    p.add_argument("--inputs", nargs="+", default=[], metavar="NAME[:SHAPE]",
                   help="the model's inputs, optionally fixing shapes, e.g. x:1x28x28x1 (? for dynamic)")
    p.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", dest="set_values",
                   help="bind a placeholder to a constant, e.g. keep_prob=1.0")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the original-vs-result check")
    p.add_argument("--atol", type=float, default=1e-5, help="verification absolute tolerance (default: %(default)g)")
    p.add_argument("--rtol", type=float, default=None,
                   help="verification relative tolerance (default: 1e-5 frozen, 1e-4 optimized)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _model_options(p)


def _optimize_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimization")
    g.add_argument("--passes", default="default", metavar="SPEC",
                   help="default, none, or a comma-separated list of passes (run in tfopt's order)")
    g.add_argument("--skip", nargs="+", default=[], metavar="PASS", help="leave these passes out")
    g.add_argument("--grappler", metavar="LIST", type=lambda v: [x for x in v.split(",") if x],
                   help="also run TensorFlow's Grappler offline with these optimizers, e.g. constfold,arithmetic")


def build_parser() -> argparse.ArgumentParser:
    from tfopt import __version__

    parser = argparse.ArgumentParser(prog="tfopt", description="Freeze, optimize and verify TensorFlow models.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tfopt {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inspect", help="inputs, outputs, op histogram, variables, training-only nodes")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--passes", dest="dry_run", nargs="?", const="default", metavar="SPEC",
                   help="dry run: freeze and optimize in memory, print what each pass would do")
    p.add_argument("--skip", nargs="+", default=[], metavar="PASS", help="with --passes: leave these passes out")
    _model_options(p)

    p = sub.add_parser("freeze", help="variables to constants, training nodes pruned, verified",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _freeze_options(p)
    p.add_argument("--optimize", action="store_true", help="also run the optimization passes (as `tfopt optimize`)")
    _optimize_options(p)

    p = sub.add_parser("convert", help="freeze, optimize and emit TFLite, ONNX, OpenVINO, .pb and SavedModel",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _freeze_options(p)
    p.set_defaults(output_format=None)
    g = p.add_argument_group("targets")
    g.add_argument("--to", type=lambda v: [x for x in v.split(",") if x], metavar="LIST",
                   help="pb,savedmodel,tflite,onnx,openvino (default: every one whose extra is installed)")
    g.add_argument("--quantize", type=lambda v: [x for x in v.split(",") if x], default=["none"], metavar="MODES",
                   help="none (fp32), fp16, dynamic, int8, int16x8; a comma-separated list builds each")
    g.add_argument("--calibration", metavar="DATA",
                   help=".npz keyed by input name, .npy, .tfrecord, an image directory, or module:function")
    g.add_argument("--calibration-samples", type=int, default=100, metavar="N")
    floats = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    g.add_argument("--mean", type=floats, default=[0.0], metavar="M[,M,M]", help="image calibration: subtract")
    g.add_argument("--scale", type=floats, default=[1.0], metavar="S[,S,S]", help="image calibration: divide by")
    g.add_argument("--int8-io", action="store_true", help="TFLite int8: integer-only inputs and outputs")
    g.add_argument("--allow-tf-ops", action="store_true", help="TFLite: keep unsupported ops as Select TF ops")
    g.add_argument("--opset", type=int, help="ONNX opset (default: 17)")
    g.add_argument("--ov-layout", default="NHWC", metavar="LAYOUT", help="OpenVINO input layout (default: %(default)s)")
    g.add_argument("--ov-mean-values", type=floats, metavar="M[,M,M]", help="OpenVINO IR subtracts these from its input")
    g.add_argument("--ov-scale-values", type=floats, metavar="S[,S,S]", help="... then divides by these")
    g.add_argument("--ov-reverse-input-channels", action="store_true", help="... after reversing channels (RGB<->BGR)")
    g.add_argument("--accuracy-control", type=float, metavar="DROP",
                   help="OpenVINO int8 via NNCF accuracy control: max top-1 drop, e.g. 0.01 (needs --eval-data)")
    g.add_argument("--eval-data", metavar="DATA.npz",
                   help="inputs by name plus 'labels': accuracy in the report, and for --accuracy-control")
    g.add_argument("--keep-float", type=lambda v: [x for x in v.split(",") if x], default=[], metavar="LAYERS",
                   help="int8 (TFLite, ONNX, OpenVINO): keep these layers in float (TF node or target layer names)")
    g.add_argument("--auto-keep-float", type=float, metavar="DROP",
                   help="int8: rank layers by quantization error, keep the worst in float until the drop <= DROP points")
    g = p.add_argument_group("post-training compression (TFMOT, Keras 2 / tf_keras models)")
    g.add_argument("--cluster", type=int, metavar="N", help="snap each layer's weights to N shared values")
    g.add_argument("--cluster-init", default="kmeans++", choices=["kmeans++", "linear", "density", "random"],
                   help="centroid initialisation (default: %(default)s)")
    g.add_argument("--prune", type=float, metavar="SPARSITY", help="zero this fraction of each layer's weights, e.g. 0.5")
    g.add_argument("--exclude", type=lambda v: [x for x in v.split(",") if x], default=[], metavar="LAYERS",
                   help="Keras layer names to leave untouched, e.g. conv1,probs")
    g.add_argument("--finetune-data", metavar="DATA.npz", help="inputs by name plus 'labels': fine-tune after "
                   "compressing (TFMOT's way to recover accuracy); without it, compression is post-training only")
    g.add_argument("--finetune-epochs", type=int, default=2, metavar="K")
    _report_options(p)
    _optimize_options(p)

    p = sub.add_parser("verify", help="measure a conversion's artifacts against the original model",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", metavar="OUTDIR|ARTIFACT",
                   help="a directory written by `tfopt convert`, or one artifact (.tflite, .onnx, OpenVINO .xml, .pb)")
    p.add_argument("--report-dir", metavar="DIR", help="ARTIFACT: write report.json/md/html here (default: print only)")
    p.add_argument("--reference", required=True, metavar="MODEL", help="the original model")
    p.add_argument("--eval-data", metavar="DATA.npz", help="inputs by name plus 'labels', for accuracy")
    _report_options(p)
    _model_options(p)

    p = sub.add_parser("optimize", help="freeze, then fold BatchNorm/constants/pads and fuse activations",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _freeze_options(p)
    _optimize_options(p)
    return parser


def parse_inputs(items: Sequence[str]) -> dict[str, tuple[int | None, ...] | None]:
    out: dict[str, tuple[int | None, ...] | None] = {}
    for item in items:
        name, sep, shape = item.rpartition(":") if ":" in item else (item, "", "")
        if not sep:
            out[item] = None
            continue
        try:
            dims = tuple(None if d in ("?", "-1", "None", "") else int(d) for d in shape.lower().split("x"))
        except ValueError:
            raise OptionError(f"--inputs {item}: shape must look like 1x224x224x3 (? for a dynamic dimension)") from None
        out[name] = dims
    return out


def parse_set(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise OptionError(f"--set {item}: expected NAME=VALUE, e.g. is_training=false")
        out[name] = value
    return out


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("signature", "tags", "outputs", "unsafe", "custom_objects", "model_fn", "format")
            if getattr(args, k) not in (None, [], False)}


def cmd_inspect(args: argparse.Namespace) -> int:
    from tfopt.inspect_model import inspect_model
    from tfopt.report.console import format_bytes

    if args.dry_run is not None:
        return _inspect_passes(args)

    info = inspect_model(args.model, **_load_options(args))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    if "weight_table" in info:
        from tfopt.report.console import print_artifact_info

        print_artifact_info(info)
        return 0
    print(f"{info['format']}  {info['path']}")
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            shape = "x".join("?" if d is None else str(d) for d in s["shape"]) if s.get("shape") is not None else "?"
            print(f"  {kind[:-1]:<6} {s['name']}" + (f"  {s['dtype']}[{shape}]" if "dtype" in s else ""))
    print(f"  nodes {info['nodes']}, variables {info['variables']} ({format_bytes(info['variable_bytes'])}), "
          f"training-only nodes {info['training_nodes']}")
    if info.get("training_flags"):
        print(f"  training flags (bound to False when freezing): {', '.join(info['training_flags'])}")
    if len(info.get("output_candidates", [])) > 1:
        print(f"  candidate outputs: {', '.join(info['output_candidates'])}")
    top = list(info["ops"].items())[:12]
    print("  ops: " + ", ".join(f"{op} {n}" for op, n in top) + (" ..." if len(info["ops"]) > 12 else ""))
    return 0


def _inspect_passes(args: argparse.Namespace) -> int:
    from tfopt.pipeline import optimize_model
    from tfopt.report.console import print_pass_table

    _, _, report, opt_report = optimize_model(args.model, passes=args.dry_run, skip=args.skip, **_load_options(args))
    if args.json:
        print(json.dumps({"freeze": report.as_dict(), "optimize": opt_report.as_dict()}, indent=2, default=str))
        return 0
    print(f"dry run on {args.model}: nothing is written")
    print(f"freeze   {report.nodes_before} -> {report.nodes_after} nodes")
    print_pass_table(report.passes, max_skips=1000)
    print(f"optimize {opt_report.nodes_before} -> {opt_report.nodes_portable} nodes (portable), "
          f"{opt_report.nodes_runtime} with TF-runtime fusion")
    print_pass_table(opt_report.passes, max_skips=1000)
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    from tfopt._io import check_writable
    from tfopt.loaders import load
    from tfopt.pipeline import freeze_model, infer_format, optimize_model, save_model
    from tfopt.report.console import format_bytes, format_value, path_size, print_pass_table

    check_writable(args.output)
    infer_format(args.output, args.output_format)
    model = load(args.model, **_load_options(args))
    freeze_opts = {"set_values": parse_set(args.set_values), "inputs": parse_inputs(args.inputs),
                   "verify": args.verify, "atol": args.atol, "rtol": args.rtol if args.rtol is not None else 1e-5}
    optimizing = args.command == "optimize" or args.optimize
    if optimizing:
        _, result, report, opt_report = optimize_model(
            model, passes=args.passes, skip=args.skip, grappler=args.grappler, opt_atol=args.atol,
            opt_rtol=args.rtol if args.rtol is not None else 1e-4, **freeze_opts)
    else:
        result, report = freeze_model(model, **freeze_opts)
        opt_report = None
    path = save_model(result, args.output, format=args.output_format, source=args.model)
    if args.json:
        payload = {"output": path, **report.as_dict()}  # the freeze report, flat, as before
        if opt_report is not None:
            payload["optimize"] = opt_report.as_dict()
        print(json.dumps(payload, indent=2, default=str))
        return 0
    prov = model.provenance
    print(f"loaded   {prov['format']}  {args.model}  ({prov.get('source_nodes', '?')} nodes, "
          f"{prov.get('variables', 0)} variables, {format_bytes(prov.get('variable_bytes', 0))})")
    for name, (value, why) in report.bindings.items():
        print(f"bound    {name} = {format_value(value)} ({why})")
    removed = sorted(report.removed_ops().items(), key=lambda kv: -kv[1])
    print(f"frozen   {report.nodes_before} -> {report.nodes_after} nodes; removed "
          + (", ".join(f"{n} {op}" for op, n in removed[:10]) + (" ..." if len(removed) > 10 else "") if removed else "nothing"))
    for p in report.passes:
        for skip in p.skips:
            print(f"skipped  {p.name}: {skip}")
    if opt_report is not None:
        print(f"optimized {opt_report.nodes_before} -> {opt_report.nodes_portable} nodes (portable), "
              f"{opt_report.nodes_runtime} with TF-runtime fusion")
        print_pass_table(opt_report.passes)
    for d in report.verification:
        print(f"verified {d.name}: max abs err {d.max_abs_err:.3g} (frozen vs original)")
    if opt_report is not None:
        for label, diffs in opt_report.verification.items():
            for d in diffs:
                print(f"verified {d.name}: max abs err {d.max_abs_err:.3g} ({label} vs original)")
    if not args.verify:
        print("verified skipped (--no-verify)")
    print(f"wrote    {path}  ({format_bytes(path_size(path))})")
    return 0


def _ov_preprocess(args: argparse.Namespace) -> Any:
    if not (args.ov_mean_values or args.ov_scale_values or args.ov_reverse_input_channels):
        return None
    from tfopt.emitters.openvino import Preprocess

    return Preprocess(layout=args.ov_layout, mean=tuple(args.ov_mean_values or ()),
                      scale=tuple(args.ov_scale_values or ()), reverse_channels=args.ov_reverse_input_channels)


def cmd_convert(args: argparse.Namespace) -> int:
    from tfopt._io import check_writable
    from tfopt.converting import convert
    from tfopt.errors import GateFailure
    from tfopt.loaders import load
    from tfopt.report.console import print_convert

    check_writable(args.output)
    from tfopt.compressing import compression

    compress = compression(args.cluster, args.cluster_init, args.prune, args.exclude, args.finetune_data,
                           args.finetune_epochs)
    model = load(args.model, compress=compress, **_load_options(args))
    try:
        result = _run_convert(args, model, convert)
    except GateFailure as exc:
        print_convert(args.output, exc.result, as_json=args.json)  # type: ignore[attr-defined]
        raise
    print_convert(args.output, result, as_json=args.json, verified=args.verify)
    return 0


def _run_convert(args: argparse.Namespace, model: Any, convert: Any) -> Any:
    from tfopt.report.console import ProgressPrinter

    return convert(model, args.output, to=args.to, quantize=args.quantize, calibration=args.calibration,
                     calibration_samples=args.calibration_samples, mean=args.mean, scale=args.scale,
                     int8_io=args.int8_io, ov_preprocess=_ov_preprocess(args), accuracy_control=args.accuracy_control,
                     eval_data=args.eval_data,
                     allow_tf_ops=args.allow_tf_ops, opset=args.opset, verify=args.verify,
                     set_values=parse_set(args.set_values), inputs=parse_inputs(args.inputs),
                     passes=args.passes, skip=args.skip, grappler=args.grappler,
                     fail_if=args.fail_if, junit=args.junit, report_runs=args.report_runs, threads=args.threads,
                     keep_float=args.keep_float, auto_keep_float=args.auto_keep_float, metric=args.metric,
                     progress=None if args.json else ProgressPrinter())


def cmd_verify(args: argparse.Namespace) -> int:
    from tfopt.errors import GateFailure
    from tfopt.report.build import verify_artifact, verify_outdir
    from tfopt.report.console import print_report

    options = _load_options(args)
    common = dict(eval_data=args.eval_data, fail_if=args.fail_if, junit=args.junit, runs=args.report_runs,
                  threads=args.threads, metric=args.metric, **options)
    if not os.path.exists(os.path.join(args.outdir, "manifest.json")):
        try:
            report = verify_artifact(args.outdir, args.reference, report_dir=args.report_dir, **common)
        except GateFailure as exc:
            print_report(exc.report)  # type: ignore[attr-defined]
            raise
        print_report(report)
        if args.report_dir:
            print(f"wrote    {args.report_dir}/report.json, report.md, report.html")
        return 0
    try:
        report = verify_outdir(args.outdir, args.reference, **common)
    except GateFailure:
        with open(os.path.join(args.outdir, "report.json")) as f:
            print_report(json.load(f))
        raise
    print_report(report)
    print(f"wrote    {args.outdir}/report.json, report.md, report.html")
    return 0


COMMANDS = {"inspect": cmd_inspect, "freeze": cmd_freeze, "optimize": cmd_freeze, "convert": cmd_convert,
            "verify": cmd_verify}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Converters log advice and deprecations at WARNING; the user sees tfopt's own messages only.
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, format="%(name)s: %(message)s")
    logging.getLogger("tfopt").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except TfoptError as exc:
        if args.debug:
            raise
        print(f"tfopt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tfopt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(f"tfopt: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
