"""Argument groups shared by the commands, and the parsers of option values.

One function per concern (loading, freezing, optimizing, reporting); each command's module adds
the groups it uses, so ``tfopt COMMAND --help`` lists only the options that command reads.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from tfopt.errors import OptionError
from tfopt.options import FreezeOptions, LoadOptions, OptimizeOptions, ReportOptions
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL, OPTIMIZE_RTOL

EPILOG = """exit codes: 0 ok, 1 internal error, 2 bad option, 3 model not found, 4 corrupt model,
5 unsafe model refused, 6 graph cannot be frozen as asked, 7 verification failed,
8 output not writable, 9 a target converter cannot express the model, 10 a --fail-if gate tripped,
11 some targets failed, the others are written and verified (convert; --all-or-nothing: none written),
130/143 interrupted by SIGINT/SIGTERM (nothing replaced)"""


def number(*, integer: bool = False) -> Any:
    """An argparse ``type=``: parses an integer (or a number); its range is the option's rule
    (:data:`tfopt._checks.RANGES`), checked where the API checks it, with the same message."""
    def parse(text: str) -> float | int:
        try:
            return int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if integer else 'a number'}") from None
    parse.__name__ = "integer" if integer else "number"  # argparse names the type in its messages
    return parse


def byte_size(text: str) -> int:
    """An argparse ``type=``: bytes, with an optional K/M/G suffix (powers of 1024; ``B``/``iB`` optional)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    body = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = body[-1:] if body[-1:] in units else ""
    try:
        return int(float(body[: len(body) - len(unit)]) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 4096, 64MB, 1GB)") from None


COUNT = number(integer=True)  # runs, samples, threads (their ranges: tfopt._checks.RANGES)
TOLERANCE = number()  # tolerances and allowed drops


def model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loading")
    g.add_argument("--signature", default="serving_default", help="SavedModel signature key (default: %(default)s)")
    g.add_argument("--tags", nargs="+", help="SavedModel MetaGraph tags (default: serve)")
    g.add_argument("--outputs", nargs="+", default=[], metavar="NODE",
                   help="output nodes of a TF1 checkpoint or GraphDef (default: the forward graph's single sink)")
    g.add_argument("--unsafe", action="store_true", help="allow Keras Lambda layers (runs code stored in the file)")
    g.add_argument("--custom-objects", metavar="MODULE", help="module imported before the model loads: its custom Keras objects, ops (tf.load_op_library), registered types")
    g.add_argument("--model-fn", metavar="MODULE:FN", help="builds the model for a TF2 object checkpoint")
    g.add_argument("--input-format", dest="format", metavar="FORMAT",
                   help="skip detection: savedmodel, keras, tf1-checkpoint, tf2-checkpoint, graphdef")
    g.add_argument("--external-threshold", type=byte_size, metavar="BYTES",
                   help="weights of at least this size (e.g. 64MB) stay outside the frozen graph, memory-mapped "
                        "(default: 1GB, and the largest others until the graph holds at most 1GB: a protobuf "
                        "stops at 2GB)")


def report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report and CI gates")
    g.add_argument("--fail-if", action="append", default=[], metavar="EXPR",
                   help="exit 10 if any artifact meets EXPR: [FORMAT[/PRECISION]:]METRIC OP VALUE, "
                        "e.g. 'max_abs_err>1e-3' or 'tflite/int8:accuracy_drop>1.0' (repeatable)")
    g.add_argument("--junit", metavar="PATH", help="write the gate results as JUnit XML")
    g.add_argument("--report-runs", type=COUNT, default=20, metavar="N", help="timed runs per artifact (default 20)")
    g.add_argument("--threads", type=COUNT, metavar="N", help="threads for every runtime (default: all cores)")
    g.add_argument("--allow-nonfinite", action="store_true",
                   help="accept NaN/Inf in --calibration and --eval-data (refused by default); the report counts them, "
                        "and a metric they turn into NaN fails every gate that reads it")
    g.add_argument("--metric", metavar="MODULE:FN", help="score outputs against --eval-data labels with "
                   "FN(predictions, labels) -> float, higher is better (default: top-1/top-5, or MAE/RMSE)")


def freeze_options(p: argparse.ArgumentParser) -> None:
    """``freeze``/``optimize``: the model, one output file or directory, and the freeze options."""
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="OUT.pb, OUT.pbtxt, or a directory for a serving SavedModel")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing -o directory that tfopt did not write (refused without it)")
    p.add_argument("--output-format", choices=["pb", "pbtxt", "savedmodel"], help="override the format -o implies")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    binding_options(p)
    model_options(p)


def binding_options(p: argparse.ArgumentParser) -> None:
    """What freezing binds and how it verifies: shared by freeze, optimize, convert and inspect --passes
    (the dry run is the same run without the writes)."""
    g = p.add_argument_group("freezing and verification")
    g.add_argument("--inputs", nargs="+", default=[], metavar="NAME[:SHAPE]",
                   help="the model's inputs, optionally fixing shapes, e.g. x:1x28x28x1 (? for dynamic)")
    g.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", dest="set_values",
                   help="bind a placeholder to a constant, e.g. keep_prob=1.0")
    g.add_argument("--verify-shape", nargs="+", default=[], metavar="NAME:SHAPE",
                   help="verify at this shape, e.g. input_1:1x10100x4 (the result keeps its dynamic dimensions; "
                        "default: real data when given, else a size the original model answers)")
    g.add_argument("--no-verify", dest="verify", action="store_false", help="skip the original-vs-result check")
    verify_timeout_option(g)
    g.add_argument("--atol", type=TOLERANCE, default=FREEZE_ATOL, help="verification absolute tolerance (default: %(default)g)")
    g.add_argument("--rtol", type=TOLERANCE, default=None,
                   help="verification relative tolerance (default: 1e-5 frozen, 1e-4 optimized)")


def freeze_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`tfopt.freeze` from :func:`binding_options`."""
    return {"set": parse_set(args.set_values), "inputs": parse_inputs(args.inputs), "verify": args.verify,
            "atol": args.atol, "rtol": args.rtol if args.rtol is not None else FREEZE_RTOL,
            "verify_shape": parse_verify_shapes(args.verify_shape), "verify_timeout": args.verify_timeout}


def verify_timeout_option(g: Any) -> None:
    """``--verify-timeout SECONDS``: freeze, optimize, convert (its native keep-float search and int8 engine
    too), verify and the debug commands."""
    g.add_argument("--verify-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds one verification run (the original model's, or an artifact's in its runtime; also "
                        "the native keep-float search's, the int8 engine's and tfopt debug's runs) may take before it is stopped and "
                        "reported; 0: no bound (default: max(60, 50x the original's time); the original's own runs: 600)")


def optimize_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimization")
    g.add_argument("--passes", default="default", metavar="SPEC",
                   help="default, none, or a comma-separated list of passes (run in tfopt's order)")
    g.add_argument("--skip", nargs="+", default=[], metavar="PASS", help="leave these passes out")
    g.add_argument("--grappler", metavar="LIST", type=lambda v: [x for x in v.split(",") if x],
                   help="also run TensorFlow's Grappler offline with these optimizers, e.g. constfold,arithmetic")


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
        if any(d is not None and d < 0 for d in dims):
            raise OptionError(f"--inputs {item}: dimensions must be >= 0 (? or -1 for a dynamic dimension)")
        out[name] = dims
    return out


def parse_verify_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for name, dims in parse_inputs(items).items():
        if not dims or any(d is None for d in dims):
            raise OptionError(f"--verify-shape {name}: give a concrete shape, e.g. {name}:1x10100x4")
        out[name] = tuple(int(d) for d in dims if d is not None)
    return out


def parse_set(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise OptionError(f"--set {item}: expected NAME=VALUE, e.g. is_training=false")
        out[name] = value
    return out


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("signature", "tags", "outputs", "unsafe", "custom_objects", "model_fn", "format",
                                          "external_threshold")
            if getattr(args, k) not in (None, [], False)}


# One options object per argument group (see tfopt.options): what the commands hand the pipeline.

def load_of(args: argparse.Namespace) -> LoadOptions:
    """:class:`LoadOptions` from :func:`model_options`."""
    return LoadOptions(signature=args.signature, tags=args.tags, outputs=list(args.outputs), unsafe=args.unsafe,
                       custom_objects=args.custom_objects, model_fn=args.model_fn, input_format=args.format,
                       external_threshold=args.external_threshold)


def freeze_of(args: argparse.Namespace) -> FreezeOptions:
    """:class:`FreezeOptions` from :func:`binding_options` (``--rtol`` defaults per stage)."""
    return FreezeOptions(set=parse_set(args.set_values), inputs=parse_inputs(args.inputs), verify=args.verify,
                         verify_shape=parse_verify_shapes(args.verify_shape), atol=args.atol,
                         rtol=args.rtol if args.rtol is not None else FREEZE_RTOL, verify_timeout=args.verify_timeout)


def optimize_of(args: argparse.Namespace) -> OptimizeOptions:
    """:class:`OptimizeOptions` from :func:`optimize_options`, with :func:`binding_options`' tolerances."""
    return OptimizeOptions(passes=args.passes, skip=list(args.skip), grappler=args.grappler, atol=args.atol,
                           rtol=args.rtol if args.rtol is not None else OPTIMIZE_RTOL)


def report_of(args: argparse.Namespace) -> ReportOptions:
    """:class:`ReportOptions` from :func:`report_options`."""
    return ReportOptions(eval_data=getattr(args, "eval_data", None), metric=args.metric, fail_if=list(args.fail_if),
                         junit=args.junit, report_runs=args.report_runs, threads=args.threads,
                         allow_nonfinite=args.allow_nonfinite)
