"""``tfopt debug compare MODEL ARTIFACT... [--data DATA.npz] [--html OUT] [-o OUTDIR]``, with the load and
freeze options of ``tfopt convert`` (``--outputs``, ``--inputs NAME[:SHAPE]``, ``--set`` ...), so that the
graph compared is the one the conversion froze."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tfopt.cli.args import EPILOG, binding_options, model_options, optimize_options


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare every layer of artifacts with the TF graph",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run the TF graph and each artifact (.tflite, .onnx, OpenVINO .xml; fp32 or "
                                   "quantized) on the same inputs keeping intermediate tensors, align the tensors "
                                   "with TF's nodes, and name the first layer where the error jumps. A quantized "
                                   "artifact given with a float one of the same format gets its error split into "
                                   "conversion and quantization.")
    p.add_argument("model", help="the model the artifacts were converted from (anything tfopt loads)")
    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help=".tflite, .onnx, OpenVINO .xml (or its directory)")
    p.add_argument("--to", metavar="TARGETS", help="build the artifacts here instead (tflite,onnx,openvino; unverified, "
                   "into OUTDIR/artifacts): what `tfopt convert` suggests when an artifact fails verification")
    p.add_argument("--quantize", metavar="PRECISIONS", default="fp32",
                   help="with --to: the precisions to build (fp32, fp16, dynamic, int8, int16x8; default fp32)")
    p.add_argument("--calibration", metavar="DATA", help="with --to and int8/int16x8: the calibration data")
    p.add_argument("--data", metavar="DATA.npz", help=".npz of inputs by name (first 8 rows used; `--inputs DATA.npz` "
                   "is read the same way); default: made-up inputs at a shape the model answers")
    p.add_argument("--html", metavar="OUT", help="also write an HTML page with the error curves")
    p.add_argument("-o", "--outdir", default=".", help="where compare.json goes (default: the current directory)")
    binding_options(p)
    model_options(p)
    optimize_options(p)


def run(args: argparse.Namespace) -> int:
    from tfopt.cli.args import freeze_of, load_of
    from tfopt.conversion.pipeline import run_optimize
    from tfopt.debug.compare import compare
    from tfopt.debug.inputs import debug_inputs
    from tfopt.debug.report import table, write_html, write_json
    from tfopt.errors import ModelNotFoundError, OptionError
    from tfopt.options import OptimizeOptions

    data_from_inputs(args)
    if bool(args.artifacts) == bool(args.to):
        raise OptionError("tfopt debug compare: give the ARTIFACT files, or --to TARGETS to build them (not both)")
    for path in args.artifacts:
        if not os.path.exists(path):
            raise ModelNotFoundError(f"{path}: no such file or directory")
    if args.to:
        with bounded(args, "tfopt debug compare"):  # building them runs the model too (a converter's calibration)
            args.artifacts = _build(args)
    with args.capture.stage("loading"):
        portable, *_ = run_optimize(args.model, load_of(args), freeze_of(args),
                                     OptimizeOptions(passes=args.passes, skip=list(args.skip), grappler=args.grappler))
    with bounded(args, "tfopt debug compare"):  # its runs of the model and of each artifact
        samples, source = debug_inputs(portable, args.data, "--data")
        with args.capture.stage("running"):
            result = compare(portable, args.artifacts, samples)
    result["model"], result["inputs"] = args.model, source
    os.makedirs(args.outdir, exist_ok=True)
    out = os.path.join(args.outdir, "compare.json")
    write_json(result, out)
    print(table(result))
    for a in result["artifacts"]:
        for note in a["notes"]:
            print(f"note: {note}")
        if a["unaligned"]:
            print(f"note: {a['target']}: {len(a['unaligned'])} tensor(s) not aligned (see compare.json)")
    print(f"wrote    {out}")
    if args.html:
        write_html(result, args.html)
        print(f"wrote    {args.html}")
    return 0


def _build(args: argparse.Namespace) -> list[str]:
    """``--to``: the artifacts, converted without verification into OUTDIR/artifacts (every
    requested fp32 artifact too, so a quantized one gets its conversion/quantization split), each run of the model
    held to ``--verify-timeout`` (a converter's own calibration first runs it, :mod:`tfopt.conversion.parts`).

    Raises:
        VerificationTimeoutError: a build's run did not end within the bound.
    """
    import dataclasses

    from tfopt.cli.args import freeze_of, load_of
    from tfopt.conversion.convert import convert
    from tfopt.errors import VerificationTimeoutError
    from tfopt.options import ConvertOptions

    targets = [t.strip() for t in args.to.split(",") if t.strip()]
    precisions = [p.strip() for p in args.quantize.split(",") if p.strip()]
    if any(p != "fp32" for p in precisions) and "fp32" not in precisions:
        precisions.insert(0, "fp32")
    outdir = os.path.join(args.outdir, "artifacts")
    os.makedirs(args.outdir, exist_ok=True)
    with args.capture.stage("converting"):
        options = ConvertOptions(load=load_of(args), freeze=dataclasses.replace(freeze_of(args), verify=False))
        result = convert(args.model, outdir, options, to=targets, quantize=precisions, calibration=args.calibration,
                         overwrite=True)
    for artifact in result.artifacts:
        print(f"wrote    {os.path.join(outdir, artifact.path)}")
    for error in result.errors:  # a build that did not end within the bound: nothing asked for is compared past it
        if isinstance(error, VerificationTimeoutError):
            raise error
    return [os.path.join(outdir, a.path) for a in result.artifacts]


@contextlib.contextmanager
def bounded(args: argparse.Namespace, command: str) -> Iterator[None]:
    """Inside, each run of the model (TensorFlow) and of an artifact (its runtime) is held to ``--verify-timeout``
    (:mod:`tfopt.verification.deadline`), one past it a :class:`~tfopt.errors.VerificationTimeoutError` naming
    ``command`` and the model (:mod:`tfopt.runtimes.bounded_stage`)."""
    from tfopt.runtimes.bounded_stage import Stage, within
    from tfopt.verification.deadline import verify_timeout

    stage = Stage(command, model=args.model, skip="",
                  inputs="pass --data DATA.npz of inputs it ends on, bind the input with --set NAME=VALUE or fix its "
                         "shape with --inputs")
    with verify_timeout(args.verify_timeout), within(stage):
        yield


def data_from_inputs(args: argparse.Namespace) -> None:
    """``--inputs DATA.npz`` (the debug commands' name for ``--data`` before they took the freeze
    options): read as ``--data``, since no input is named like an ``.npz`` file."""
    if len(args.inputs) == 1 and args.inputs[0].endswith(".npz") and not args.data:
        args.data, args.inputs = args.inputs[0], []
