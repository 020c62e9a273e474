"""``tfopt debug reduce MODEL --target T``: the smallest subgraph that still fails to convert, or
still mismatches, written with its inputs and a standalone ``repro.py`` (see :mod:`tfopt.debug.reduce`)."""

from __future__ import annotations

import argparse
from typing import Any

from tfopt.cli.args import COUNT, EPILOG, binding_options, model_options


def add_parser(debug_subparsers: Any) -> None:
    """Add ``reduce`` to ``tfopt debug``'s subcommands."""
    p = debug_subparsers.add_parser(
        "reduce", help="bisect a model to the smallest subgraph that still fails to convert or still mismatches",
        description="Bisects the frozen graph over its topological order (keep the prefix, then the suffix, that "
                    "still shows the problem), then drops single ops until none can go. Cut points become "
                    "placeholders fed with the values TensorFlow computed there. Writes OUT/reduced.pb, "
                    "inputs.npz, converter_call.txt, repro.py (runs with only TensorFlow and the converter) "
                    "and reduce.json.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--target", required=True, choices=reduce_targets(), help="the converter to reduce against")
    p.add_argument("--precision", default="fp32",
                   help="fp32 (default), fp16, dynamic, int8 (calibrated on each cut's real inputs), int16x8")
    p.add_argument("--check", default="fails", metavar="fails|mismatch[:TOL]",
                   help="fails: the converter raises or the artifact does not load or run, in the same way as the "
                        "full model; mismatch[:TOL]: outputs off by more than TOL of their scale (default TOL: "
                        "fp32 1e-3, fp16 1e-2, quantized 0.1)")
    p.add_argument("--data", metavar="DATA.npz", help="inputs by name (first row used; `--inputs DATA.npz` is read "
                   "the same way); default: made-up inputs the model answers")
    p.add_argument("--max-steps", type=COUNT, default=200, metavar="N",
                   help="conversions to try at most, the full model's included (default %(default)s)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT that tfopt did not write")
    binding_options(p)  # the graph tfopt convert froze: --inputs NAME[:SHAPE], --set, --verify-shape
    model_options(p)


def reduce_targets() -> list[str]:
    """The targets ``--target`` takes: those whose record names a ``repro`` (the standalone repro.py)."""
    from tfopt.targets import with_role

    return [t.name for t in with_role("repro")]


def run(args: argparse.Namespace) -> int:
    from tfopt.cli.args import freeze_of, load_of
    from tfopt.cli.debug_compare import bounded, data_from_inputs
    from tfopt.conversion.output_paths import check_output
    from tfopt.conversion.pipeline import run_optimize
    from tfopt.debug.check import Check
    from tfopt.debug.reduce import reduce
    from tfopt.debug.repro import write_repro
    from tfopt.options import OptimizeOptions
    from tfopt.targets import TABLE, Precision

    precision = Precision.parse(args.precision, "--precision").value
    record = TABLE[args.target]
    if precision not in record.precisions:
        from tfopt.errors import OptionError

        raise OptionError(f"--precision {precision}: {args.target} builds {', '.join(record.precisions)}")
    check = Check.parse(args.check, precision)
    data_from_inputs(args)
    check_output(args.output, inputs=[args.model, args.data], overwrite=args.overwrite)
    with args.capture.stage("loading"):
        portable, _, _, _ = run_optimize(args.model, load_of(args), freeze_of(args), OptimizeOptions())
    with bounded(args, "tfopt debug reduce"):  # its runs of the model and of each trial's artifact
        feeds = _inputs(args, portable)
    print(f"reducing {len(portable.graph_def.node)} nodes for {args.target} {precision}, --check {check.describe()}")
    with args.capture.stage("converting"), bounded(args, "tfopt debug reduce"):
        # Trial lines go to the terminal's stderr: fds 1 and 2 are captured during the stage.
        result = reduce(portable, feeds, args.target, precision=precision, check=check, max_steps=args.max_steps,
                        say=lambda line: args.capture.console.write(line + "\n"))
        write_repro(result, args.output, args.target, precision, check)
    state = "" if result.complete else f" (stopped at --max-steps {args.max_steps}: may reduce further)"
    print(f"reduced  {result.ops_before} -> {len(result.cut.kept)} op(s): {', '.join(result.cut.kept)}{state}")
    print(f"         {result.outcome.describe()}")
    print(f"tried    {result.conversions} conversions in {result.seconds:.1f} s")
    print(f"wrote    {args.output}/reduced.pb, inputs.npz, converter_call.txt, repro.py, reduce.json")
    return 0


def _inputs(args: argparse.Namespace, portable: Any) -> dict[str, Any]:
    """One set of inputs of the portable (frozen, optimized) graph the converters read."""
    from tfopt.verification.verify import check_inputs, choose_inputs, reference_runner

    if args.data:
        given = check_inputs(reference_runner(portable), _npz_inputs(args.data, portable.inputs),
                             f"--data {args.data}", None)
        return {name: value[:1] for name, value in given.feeds.items()}
    # made up at batch 1 already (a time-major input's axis 0 is its time, not a batch to cut)
    return choose_inputs(reference_runner(portable), portable.inputs, batch=1, graph_def=portable.graph_def).feeds


def _npz_inputs(path: str, specs: Any) -> Any:
    """The first row of each input in ``--data`` (the one ``.npz`` reader)."""
    from tfopt.verification.input_data import npz_arrays
    from tfopt.verification.verify_inputs import VerifyInputs

    return VerifyInputs(npz_arrays(path, specs, option="--data", rows=1), "inputs")
