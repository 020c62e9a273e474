#!/usr/bin/env python
"""Convert a fleet of models from a YAML manifest: parallel, resumable, one summary, gate-aware exit.

    python scripts/convert_fleet.py fleet.yaml [-o OUTROOT] [--jobs N] [--force] [--overwrite] [--only NAME ...]

A thin wrapper over :mod:`tfopt.fleet` (``tfopt fleet``, which adds the Ray executor, the cache
directory, timeouts and retries), kept for existing users with its command line and summary. The
manifest's format: :mod:`tfopt.fleet.manifest`. Each task runs in its own worker process
(``--jobs``, default 2). A model is skipped when its artifacts and report are up to date (same
options and input bytes as the run that wrote them, every artifact still there). Exit status: 0
when all converted and passed their gates, 10 when a gate failed (reports are written), 1 when a
model could not be converted, 2 when an output is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STATUS = {"converted": "converted", "up-to-date": "up to date", "gate-failed": "gate failed", "failed": "error",
          "cancelled": "error"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("manifest", help="YAML: defaults + models (see tfopt.fleet.manifest)")
    parser.add_argument("-o", "--output", help="output root (default: fleet_out next to the manifest)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="convert even when up to date")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUTROOT/NAME that tfopt did not write (refused without it)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=[], help="convert only these models")
    args = parser.parse_args(argv)

    from tfopt.errors import OptionError
    from tfopt.fleet.manifest import fingerprint, load_manifest
    from tfopt.fleet.plan import up_to_date
    from tfopt.fleet.run import run_fleet

    try:
        models = load_manifest(args.manifest)
    except OptionError as exc:
        print(f"convert_fleet: {exc}", file=sys.stderr)
        return 1
    if args.only:
        unknown = set(args.only) - {m.name for m in models}
        if unknown:
            parser.error(f"--only: no model named {', '.join(sorted(unknown))} in {args.manifest}")
        models = [m for m in models if m.name in args.only]
    root = os.path.abspath(args.output or os.path.join(os.path.dirname(os.path.abspath(args.manifest)), "fleet_out"))
    fresh = sum(not args.force and up_to_date(os.path.join(root, m.name), fingerprint(m.options)) for m in models)
    print(f"{len(models)} model(s): {len(models) - fresh} to convert, {fresh} up to date", flush=True)
    result = run_fleet(args.manifest, args.output, jobs=max(1, args.jobs), force=args.force, overwrite=args.overwrite,
                       only=args.only)
    if result.exit_code == 2:
        print("nothing converted:\n  " + "\n  ".join(f"{m.name}: {m.error}" for m in result.models), file=sys.stderr)
        return 2
    seconds: dict[str, float] = {}
    for t in result.tasks:
        seconds[t.model] = seconds.get(t.model, 0.0) + t.seconds
    rows = [{**summarise(m.report), "name": m.name, "status": STATUS[m.status], "message": m.error or "",
             "seconds": seconds.get(m.name, 0.0)} for m in result.models]
    print_summary(sorted(rows, key=lambda r: r["name"]), root)
    return result.exit_code


def summarise(report: dict[str, Any] | None) -> dict[str, Any]:
    """A summary row's numbers from a conversion's report.json."""
    if report is None:
        return {}
    artifacts = report["artifacts"]
    drops = [a["accuracy_drop"] for a in artifacts if a.get("accuracy_drop") is not None]
    return {"artifacts": len(artifacts), "worst_drop": max(drops) if drops else None,
            "worst_cosine": min((a["fidelity"]["cosine"] for a in artifacts), default=None),
            "gates_failed": sum(g["failed"] for g in report.get("gates", []))}


def print_summary(rows: list[dict[str, Any]], root: str) -> None:
    print(f"\n{'model':<20} {'status':<12} {'artifacts':>9} {'worst drop':>11} {'worst cosine':>13} {'seconds':>8}")
    for r in rows:
        drop = "-" if r.get("worst_drop") is None else f"{r['worst_drop']:+.2f}"
        cosine = "-" if r.get("worst_cosine") is None else f"{r['worst_cosine']:.6f}"
        print(f"{r['name']:<20} {r['status']:<12} {r.get('artifacts', 0):>9} {drop:>11} {cosine:>13} {r['seconds']:>8.1f}")
    for r in rows:
        if r.get("message"):
            print(f"{r['name']}: {r['message']}")
    converted = sum(r["status"] in ("converted", "gate failed") and r["seconds"] > 0 for r in rows)
    print(f"\nconverted {converted}, up to date {sum(r['status'] == 'up to date' for r in rows)}, "
          f"gate failures {sum(r['status'] == 'gate failed' for r in rows)}, "
          f"errors {sum(r['status'] == 'error' for r in rows)}; outputs in {root}")


if __name__ == "__main__":
    sys.exit(main())
