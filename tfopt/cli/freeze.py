"""``tfopt freeze`` and ``tfopt optimize``: one model in, one verified graph out (.pb, .pbtxt or SavedModel)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tfopt.cli.args import EPILOG, freeze_of, freeze_options, load_of, optimize_of, optimize_options
from tfopt.options import LoadOptions


def add_parser(sub: Any, command: str) -> None:
    """``freeze`` (``--optimize`` adds the passes) and ``optimize`` (always runs them)."""
    helps = {"freeze": "variables to constants, training nodes pruned, verified",
             "optimize": "freeze, then fold BatchNorm/constants/pads and fuse activations"}
    p = sub.add_parser(command, help=helps[command], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    freeze_options(p)
    if command == "freeze":
        p.add_argument("--optimize", action="store_true", help="also run the optimization passes (as `tfopt optimize`)")
    optimize_options(p)


def run(args: argparse.Namespace) -> int:
    from tfopt._io import tree_size
    from tfopt.conversion.output_paths import check_output
    from tfopt.conversion.pipeline import infer_format, load_kwargs, output_kind, run_freeze, run_optimize, save_model
    from tfopt.errors import stage
    from tfopt.loaders import load
    from tfopt.report.console import format_bytes, format_value, print_pass_table

    fmt = infer_format(args.output, args.output_format)
    check_output(args.output, inputs=[args.model], kind=output_kind(fmt),
                 overwrite=args.overwrite)
    load_opts, freeze_opts, optimize_opts = load_of(args), freeze_of(args), optimize_of(args)
    for group in (load_opts, freeze_opts, optimize_opts):
        group.check()  # before the load, once
    with args.capture.stage("loading"), stage("loading"):
        model = load(args.model, **load_kwargs(load_opts))
    optimizing = args.command == "optimize" or args.optimize
    with args.capture.stage("optimizing" if optimizing else "freezing"):
        if optimizing:
            _, result, report, opt_report = run_optimize(model, LoadOptions(), freeze_opts, optimize_opts)
        else:
            result, report = run_freeze(model, LoadOptions(), freeze_opts)
            opt_report = None
        path = save_model(result, args.output, format=args.output_format, source=args.model,
                          overwrite=args.overwrite)
    if args.json:
        payload = {"output": path, **report.as_dict()}  # the freeze report, flat, as before
        if opt_report is not None:
            payload["optimize"] = opt_report.as_dict()
        from tfopt.verification.nonfinite import to_json

        print(json.dumps(to_json(payload), indent=2, default=str, allow_nan=False))
        return 0
    prov = model.provenance
    print(f"loaded   {prov['format']}  {args.model}  ({prov.get('source_nodes', '?')} nodes, "
          f"{prov.get('variables', 0)} variables, {format_bytes(prov.get('variable_bytes', 0))})")
    if prov.get("variables_from"):  # a checkpoint state file pointed outside the path given
        print(f"read     variables from {prov['variables_from']} (where the checkpoint state file points)")
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
    if report.verified_at is not None:
        print(f"verified at {report.verified_at.summary()}")
    if not args.verify:
        print("verified skipped (--no-verify)")
    print(f"wrote    {path}  ({format_bytes(tree_size(path))})")
    return 0

