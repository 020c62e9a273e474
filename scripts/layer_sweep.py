#!/usr/bin/env python
"""The Keras layer sweep: every public Keras 3 / Keras 2 layer in a tiny model, saved as users
save it, converted to TFLite, ONNX and OpenVINO at fp32 with verification.

    python scripts/layer_sweep.py [--layers NAME ...] [--match TEXT ...] [--apis keras3 keras2] [--formats keras h5 ...]
                                  [--chunk I/N] [--jsonl PATH] [--markdown PATH] [--table-only]

``--chunk I/N`` runs the I-th of N slices of the cases (run chunks in separate processes, appending
to one ``--jsonl``); ``--table-only`` writes ``--markdown`` from the ``--jsonl`` rows gathered so far.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    from tfopt.coverage import layer_cases, layer_sweep

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", metavar="NAME", help="only these layer classes")
    parser.add_argument("--match", nargs="+", metavar="TEXT", help="only cases whose name holds one of these, e.g. time_major")
    parser.add_argument("--apis", nargs="+", choices=sorted(layer_sweep.FORMATS), default=sorted(layer_sweep.FORMATS, reverse=True))
    parser.add_argument("--formats", nargs="+", metavar="FORMAT", help="only these save formats (keras, export, h5, savedmodel)")
    parser.add_argument("--chunk", default="1/1", metavar="I/N", help="run the I-th of N slices of the cases")
    parser.add_argument("--jsonl", metavar="PATH", help="append each row as a JSON line")
    parser.add_argument("--markdown", metavar="PATH", help="write the table (of every row in --jsonl when given)")
    parser.add_argument("--table-only", action="store_true", help="do not convert: only write --markdown from --jsonl")
    args = parser.parse_args(argv)

    rows = []
    if not args.table_only:
        index, total = (int(p) for p in args.chunk.split("/"))
        selected = [c for c in layer_cases.cases() if (not args.layers or c.layer in args.layers)
                    and (not args.match or any(text in c.name for text in args.match))]
        selected = selected[index - 1::total]
        formats = {api: [f for f in fmts if not args.formats or f in args.formats]
                   for api, fmts in layer_sweep.FORMATS.items()}
        def append(row: dict) -> None:
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")

        rows = layer_sweep.sweep(selected, args.apis, formats=formats, on_row=append,
                                 say=lambda m: print(f"  ... {m}", file=sys.stderr, flush=True))
    if args.jsonl and os.path.exists(args.jsonl):
        with open(args.jsonl) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    text = layer_sweep.to_markdown(rows, {api: layer_cases.uncovered(api) for api in args.apis})
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
