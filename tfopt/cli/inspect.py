"""``tfopt inspect MODEL``: inputs, outputs, ops, variables; ``--passes`` is a dry run of freeze + optimize."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tfopt.cli.args import binding_options, freeze_kwargs, load_options, model_options
from tfopt.verification.tolerances import OPTIMIZE_RTOL


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="inputs, outputs, op histogram, variables, training-only nodes")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--passes", dest="dry_run", nargs="?", const="default", metavar="SPEC",
                   help="dry run: freeze and optimize in memory, print what each pass would do")
    p.add_argument("--skip", nargs="+", default=[], metavar="PASS", help="with --passes: leave these passes out")
    p.add_argument("--grappler", metavar="LIST", type=lambda v: [x for x in v.split(",") if x],
                   help="with --passes: also run Grappler offline with these optimizers")
    binding_options(p)  # with --passes: the same freeze as `tfopt optimize`, without the writes
    model_options(p)


def run(args: argparse.Namespace) -> int:
    from tfopt.report.console import format_bytes
    from tfopt.report.inspect import inspect_path

    if args.dry_run is not None:
        return _inspect_passes(args)
    given = [opt for opt, on in (("--set", args.set_values), ("--inputs", args.inputs), ("--no-verify", not args.verify),
                                 ("--skip", args.skip), ("--grappler", args.grappler),
                                 ("--verify-timeout", args.verify_timeout is not None)) if on]
    if given:
        from tfopt.errors import OptionError

        raise OptionError(f"{', '.join(given)}: used only with --passes (the dry run of freeze and optimize)")

    with args.capture.stage("inspecting"):
        info = inspect_path(args.model, **load_options(args))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    if "weight_table" in info:
        from tfopt.report.console import print_artifact_info

        print_artifact_info(info)
        return 0
    print(f"{info['format']}  {info['path']}")
    if info.get("storage"):
        print(f"  large model: {info['storage']['message']}")
    if len(info.get("signatures", [])) > 1:
        others = [s for s in info["signatures"] if s != info["signature"]]
        print(f"  signature {info['signature']} (shown); also {', '.join(others)}: choose with --signature NAME")
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            shape = "x".join("?" if d is None else str(d) for d in s["shape"]) if s.get("shape") is not None else "?"
            where = s.get("from_pipeline")
            print(f"  {kind[:-1]:<6} {s['name']}" + (f"  {s['dtype']}[{shape}]" if "dtype" in s else "")
                  + (f"  <- {where['element']}" if where else ""))
    if info.get("pipeline_cut"):
        cut = info["pipeline_cut"]
        print(f"  tf.data iterator cut: {', '.join(cut['iterators'])}; its elements (<-) are the inputs tfopt feeds "
              "(name them in --inputs)" + (f"; not an input: {', '.join(cut['not_inputs'])} (fed only the iterator)"
                                           if cut["not_inputs"] else ""))
    print(f"  nodes {info['nodes']}, variables {info['variables']} ({format_bytes(info['variable_bytes'])}), "
          f"training-only nodes {info['training_nodes']}")
    if info.get("library"):  # the bodies of While/If/Case and tf.function calls, which the counts above stop at
        lib = info["library"]
        ops = list(lib["ops"].items())[:8]
        print(f"  function library: {lib['functions']} functions ({lib['reached']} called by the graph), nodes "
              f"{lib['nodes']}, training-only nodes {lib['training_nodes']}; ops: "
              + ", ".join(f"{op} {n}" for op, n in ops) + (" ..." if len(lib["ops"]) > 8 else ""))
        for name, found in lib["training_ops"].items():
            print(f"    training-only ops in {name}: {', '.join(found)}")
    if info.get("training_flags"):
        print(f"  training flags (bound to False when freezing): {', '.join(info['training_flags'])}")
    if info.get("dropout_knobs"):
        print("  dropout knobs (bound when freezing): "
              + ", ".join(f"{k} = {v}" for k, v in info["dropout_knobs"].items()))
    if len(info.get("output_candidates", [])) > 1:
        reasons = info.get("output_reasons", {})
        print("  candidate outputs: " + "; ".join(f"{c} ({reasons[c]})" if c in reasons else c
                                                  for c in info["output_candidates"]))
    top = list(info["ops"].items())[:12]
    print("  ops: " + ", ".join(f"{op} {n}" for op, n in top) + (" ..." if len(info["ops"]) > 12 else ""))
    return 0


def _inspect_passes(args: argparse.Namespace) -> int:
    from tfopt.conversion.pipeline import optimize_model
    from tfopt.report.console import print_pass_table

    with args.capture.stage("optimizing (dry run)"):
        _, _, report, opt_report = optimize_model(
            args.model, passes=args.dry_run, skip=args.skip, grappler=args.grappler,
            opt_atol=args.atol, opt_rtol=args.rtol if args.rtol is not None else OPTIMIZE_RTOL,
            **freeze_kwargs(args), **load_options(args))
    if args.json:
        print(json.dumps({"freeze": report.as_dict(), "optimize": opt_report.as_dict()}, indent=2, default=str))
        return 0
    print(f"dry run on {args.model}: nothing is written")
    from tfopt.report.console import format_value

    for name, (value, why) in report.bindings.items():
        print(f"bound    {name} = {format_value(value)} ({why})")
    print(f"freeze   {report.nodes_before} -> {report.nodes_after} nodes")
    print_pass_table(report.passes, max_skips=1000)
    print(f"optimize {opt_report.nodes_before} -> {opt_report.nodes_portable} nodes (portable), "
          f"{opt_report.nodes_runtime} with TF-runtime fusion")
    print_pass_table(opt_report.passes, max_skips=1000)
    return 0

