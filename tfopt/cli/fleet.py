"""``tfopt fleet MANIFEST``: every model of a YAML manifest converted on a local process pool or on
Ray (see :mod:`tfopt.fleet`). Exit status: 0 all converted and passed their gates, 10 a gate failed
(reports written), 11 a model partial (some targets failed, the others written: as `tfopt convert`),
1 a model failed, 2 an output refused, 130/143 interrupted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
manifest (paths relative to it; keys are tfopt convert's options):
  defaults: {to: [tflite, onnx], quantize: [fp32, int8]}
  models:
    - {name: digits, path: models/digits.keras, calibration: data/calib.npz}
    - {name: legacy, path: ckpt/, outputs: [probs]}

examples:
  tfopt fleet fleet.yaml -o out --jobs 4
  tfopt fleet fleet.yaml -o /shared/out --executor ray --address auto --cache /shared/tfopt-cache
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fleet", help="convert a manifest of models, locally or on Ray, cached and resumable",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="YAML: defaults + models")
    p.add_argument("-o", "--output", metavar="OUTROOT", help="output root (default: fleet_out next to the manifest)")
    g = p.add_argument_group("execution")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process per task (default); ray: Ray tasks (pip install tfopt[ray])")
    g.add_argument("--address", metavar="A", help="Ray: auto or ray://HOST:PORT (default: a local Ray instance)")
    g.add_argument("--jobs", type=int, metavar="N", help="tasks at a time (default: the cores)")
    g.add_argument("--cache", metavar="DIR", help="the content-addressed cache (default: OUTROOT/.tfopt-cache)")
    g.add_argument("--task-timeout", type=float, metavar="S", help="kill a task running longer than S seconds")
    g.add_argument("--retries", type=int, default=1, metavar="N",
                   help="run a task whose worker died again, N times (default: %(default)s)")
    g.add_argument("--cancel", action="store_true", help="on Ctrl-C, kill the running tasks (default: let them finish)")
    g.add_argument("--latency-under-load", action="store_true",
                   help="time each model's artifacts while other tasks run (faster; the reports then say the "
                        "latency was measured under load). Default: one model at a time, nothing else running")
    g = p.add_argument_group("which models")
    g.add_argument("--force", action="store_true", help="convert models that are up to date too")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUTROOT/NAME that tfopt did not write (refused without it)")
    g.add_argument("--only", nargs="+", metavar="NAME", default=[], help="convert only these models")
    p.add_argument("--junit", metavar="FILE", help="the fleet's JUnit XML (default: OUTROOT/fleet-junit.xml)")


def run(args: argparse.Namespace) -> int:
    from tfopt.fleet.run import run_fleet

    result = run_fleet(args.manifest, args.output, executor=args.executor, address=args.address, jobs=args.jobs,
                       cache=args.cache, task_timeout=args.task_timeout, retries=args.retries, cancel=args.cancel,
                       force=args.force, overwrite=args.overwrite, only=args.only,
                       isolate_latency=not args.latency_under_load, progress=_printer())
    if args.junit:  # run_fleet wrote OUTROOT/fleet-junit.xml; this puts the JUnit file where asked too
        from tfopt.fleet.report import write_fleet_report

        write_fleet_report(result, junit=args.junit)
    print_summary(result)
    return result.exit_code


def _printer() -> Any:
    from tfopt.fleet.progress import ProgressPrinter

    return ProgressPrinter()


def print_summary(result: Any) -> None:
    """One line per model, then each failure's error and log tail."""
    if result.exit_code == 2:
        print("nothing converted:\n  " + "\n  ".join(f"{m.name}: {m.error}" for m in result.models), file=sys.stderr)
        return
    print(f"\n{'model':<20} {'status':<12} {'artifacts':>9}")
    for m in result.models:
        print(f"{m.name:<20} {m.status:<12} {len((m.report or {}).get('artifacts', [])):>9}")
    for m in result.models:
        if m.error:
            print(f"{m.name}: {m.error}")
    for t in result.tasks:
        if t.log_tail:
            print(f"--- {t.model} {t.kind} {t.target or ''} {t.precision or ''}: {t.status}, last lines of its log:")
            print("\n".join(f"    {line}" for line in t.log_tail))
    counts = {s: sum(m.status == s for m in result.models) for s in ("converted", "up-to-date", "gate-failed",
                                                                     "failed", "cancelled")}
    from tfopt.fleet.rows import latency_line, summary

    print(f"\n{', '.join(f'{k} {v}' for k, v in counts.items())}; {result.seconds:.1f} s; outputs in {result.outroot}")
    print(latency_line(summary(result)))
