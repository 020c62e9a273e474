#!/usr/bin/env python
"""The op sweep: each case of tfopt.coverage.op_cases saved as SavedModel, TF1 checkpoint and frozen .pb,
converted to tflite, onnx and openvino at fp32 with verification (tfopt.coverage.op_sweep).

    python scripts/op_sweep.py [--cases NAME ... | --groups G ...] [--formats F ...] [--jsonl PATH]
                               [--markdown PATH]

Each case runs in its own child process (a converter that crashes costs one case, and TF1 control flow
stays the case's own); rows are appended to --jsonl, and cases already there are skipped, so the sweep
resumes where it stopped. --markdown writes the table of every row in --jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv: list[str] | None = None) -> int:
    from tfopt.coverage.op_cases import CASES, FORMATS
    from tfopt.coverage.op_sweep import to_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), metavar="NAME")
    parser.add_argument("--groups", nargs="+", metavar="GROUP",
                        help=f"choose from: {', '.join(sorted({c.group for c in CASES.values()}))}")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--jsonl", default="op_sweep.jsonl", help="rows, appended (default %(default)s)")
    parser.add_argument("--markdown", metavar="PATH", help="write the table of every row in --jsonl")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        from tfopt.coverage.op_sweep import sweep_case

        for row in sweep_case(CASES[args.child], formats=args.formats):
            print("ROW " + json.dumps(row), flush=True)
        return 0
    names = args.cases or [n for n, c in CASES.items() if not args.groups or c.group in args.groups]
    done = {(r["case"], r["format"]) for r in read_rows(args.jsonl)}
    for name in names:
        case = CASES[name]  # a case without weights has no checkpoint (sweep_case skips it: no row, no crash)
        formats = [f for f in args.formats if (name, f) not in done and f in case.formats
                   and (f != "checkpoint" or case.weights)]
        if not formats:
            continue
        print(f"... {name} {' '.join(formats)}", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--child", name, "--formats", *formats],
                               capture_output=True, text=True)
        rows = [json.loads(line[4:]) for line in child.stdout.splitlines() if line.startswith("ROW ")]
        if not rows:  # the child died: a crash in native code is an internal error of every cell
            tail = " ".join((child.stderr or "").split()[-60:])
            rows = [{"case": name, "group": CASES[name].group, "format": f, "target": t, "status": "internal",
                     "error": f"exit {child.returncode}", "message": tail[-500:]}
                    for f in formats for t in ("tflite", "onnx", "openvino")]
        with open(args.jsonl, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        for r in rows:
            print(f"    {r['format']:10} {r['target']:8} {r['status']:8} {r.get('max_abs_err', r.get('message', ''))!s:.160}",
                  file=sys.stderr, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(to_markdown(read_rows(args.jsonl)))
    return 0


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
