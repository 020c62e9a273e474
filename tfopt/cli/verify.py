"""``tfopt verify OUTDIR|ARTIFACT --reference MODEL``: measure artifacts against the original model."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from tfopt.cli.args import EPILOG, load_options, model_options, report_options, verify_timeout_option


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="measure a conversion's artifacts against the original model",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", metavar="OUTDIR|ARTIFACT",
                   help="a directory written by `tfopt convert`, or one artifact (.tflite, .onnx, OpenVINO .xml, .pb)")
    p.add_argument("--report-dir", metavar="DIR", help="ARTIFACT: write report.json/md/html here (default: print only)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --report-dir: replace report files there that tfopt did not write")
    p.add_argument("--reference", required=True, metavar="MODEL", help="the original model")
    p.add_argument("--eval-data", metavar="DATA.npz", help="inputs by name plus 'labels', for accuracy")
    verify_timeout_option(p)
    report_options(p)
    model_options(p)


def run(args: argparse.Namespace) -> int:
    from tfopt.conversion.output_paths import check_output
    from tfopt.errors import GateFailure
    from tfopt.report.build import verify_artifact, verify_outdir
    from tfopt.report.console import print_report

    # What verify reads must survive what it writes; an OUTDIR may hold the report (it is tfopt's).
    is_outdir = os.path.exists(os.path.join(args.outdir, "manifest.json"))
    inputs = [args.reference, args.eval_data] + ([] if is_outdir else [args.outdir])
    if args.report_dir:
        check_output(args.report_dir, inputs=inputs, kind="report-dir", overwrite=args.overwrite,
                     option="--report-dir")
    if args.junit:
        check_output(args.junit, inputs=inputs, kind="file", option="--junit")
    options = load_options(args)
    common = dict(eval_data=args.eval_data, fail_if=args.fail_if, junit=args.junit, runs=args.report_runs,
                  threads=args.threads, metric=args.metric, allow_nonfinite=args.allow_nonfinite,
                  verify_timeout=args.verify_timeout, **options)
    if not is_outdir:
        try:
            with args.capture.stage("verifying"):
                report = verify_artifact(args.outdir, args.reference, report_dir=args.report_dir, **common)
        except GateFailure as exc:
            print_report(exc.report)
            raise
        print_report(report)
        if args.report_dir:
            print(f"wrote    {args.report_dir}/report.json, report.md, report.html")
        return 0
    try:
        with args.capture.stage("verifying"):
            report = verify_outdir(args.outdir, args.reference, **common)
    except GateFailure:
        from tfopt.verification.nonfinite import from_json

        with open(os.path.join(args.outdir, "report.json")) as f:
            print_report(from_json(json.load(f)))
        raise
    print_report(report)
    print(f"wrote    {args.outdir}/report.json, report.md, report.html")
    return 0

