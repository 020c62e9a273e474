#!/usr/bin/env python
"""The model coverage matrix: every coverage model x {pb, tflite fp32/int8, onnx fp32, openvino
fp32/int8}, converted with tfopt as users do, verified, measured.

    python scripts/coverage.py [--fast | --models NAME ...] [--markdown PATH] [--json PATH] [--runs N]

``--fast`` is the subset ``make test`` runs; the full matrix takes about 15 minutes on 2 cores.
``--json docs/data/coverage.json`` stores the cells the documentation renders (docs/coverage.md, at
``make docs``); ``--markdown`` writes the table itself (between coverage markers when PATH has them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BEGIN, END = "<!-- coverage:begin -->", "<!-- coverage:end -->"


def main(argv: list[str] | None = None) -> int:
    from tfopt.coverage.matrix import run_matrix, to_markdown
    from tfopt.coverage.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fast", action="store_true", help="only the small models (the CI subset)")
    group.add_argument("--models", nargs="+", choices=sorted(MODELS), metavar="NAME",
                       help=f"choose from: {', '.join(MODELS)}")
    parser.add_argument("--markdown", metavar="PATH", help="write the Markdown matrix (between the file's coverage markers when it has them)")
    parser.add_argument("--json", metavar="PATH", help="write every cell as JSON")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per artifact (default %(default)s)")
    args = parser.parse_args(argv)

    names = args.models or [n for n, m in MODELS.items() if m.fast or not args.fast]
    rows = run_matrix(names, runs=args.runs, say=lambda msg: print(f"  ... {msg}", file=sys.stderr, flush=True))
    text = to_markdown(rows)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if args.markdown:
        write_markdown(args.markdown, text)
    return 0


def write_markdown(path: str, text: str) -> None:
    """Replace the text between the coverage markers (a README), or write the whole file."""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            text = head + BEGIN + "\n" + text + END + rest.split(END, 1)[1]
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main())
