#!/usr/bin/env python
"""Convert corpus models at two commits and compare every artifact byte for byte (sha256).

    python scripts/corpus_bytes.py compare BEFORE AFTER [--models NAME ...] [--variants V ...] [--out DIR]
                                           [--cache DIR] [--timeout S] [--markdown PATH] [--force]
    python scripts/corpus_bytes.py table BEFORE AFTER [--out DIR] [--hashes MORE.json ...]
    python scripts/corpus_bytes.py probe CHECKOUT --model NAME --variant V --like HASHES.json REV
                                         [--file REL] [--out DIR]

``compare``: BEFORE and AFTER are commits (a detached worktree of each is added under OUT/trees and
reused) or folders holding a checkout. Each conversion is ``tfopt convert MODEL -o DIR`` plus the
entry's flags (:func:`tfopt.coverage.corpus.convert_command`) and the variant's flags, run one at a
time in its own process with ``PYTHONPATH=<checkout>`` and ``PYTHONSAFEPATH=1`` (so the checkout's
tfopt is imported, not the installed one nor the working directory's) and ``PYTHONHASHSEED=0`` (tf2onnx's output depends on it). Every
file written is hashed except ``manifest.json``/``report.json`` (times and paths). Hashes go to
OUT/hashes.json after every conversion (a stopped run resumes; ``--force`` converts again); the
table (model x variant x artifact: identical / differs / only before / only after / failed) is
printed and written with ``--markdown``.

``probe`` is a ``git bisect run`` step: convert one model at CHECKOUT and exit 0 when its artifacts
(or the one ``--file``, present or absent) hash as REV's did in HASHES.json, 1 when they differ, 125
(skip) when the conversion wrote nothing::

    git -C TREE bisect start AFTER BEFORE
    git -C TREE bisect run python scripts/corpus_bytes.py probe TREE --model M --variant fp32 \\
        --like OUT/hashes.json BEFORE --file model.fp32.onnx

Bisect from the commit the branches fork from: a branch merged in parallel lacks the other branches'
changes, so a good side taken inside the range can blame a commit that merely lacks a change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfopt.coverage import corpus  # noqa: E402

VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (targets, extra flags)
    "fp32": (("pb", "tflite", "onnx", "openvino"), ("--no-verify",)),
    "int8-mse": (("tflite", "onnx", "openvino"), ("--quantize", "int8", "--int8-recipe", "mse", "--no-verify")),
    "int8": (("tflite", "onnx", "openvino"), ("--quantize", "int8", "--no-verify")),
}
"""Each variant's ``--to`` targets and flags; the seeds (PYTHONHASHSEED, tfopt's own) are the same on both sides."""

SKIPPED_FILES = frozenset({"manifest.json", "report.json"})
"""Written by every conversion with times and absolute paths in them: not artifacts."""


def say(msg: str) -> None:
    print(f"  ... {msg}", file=sys.stderr, flush=True)


def calibration_npz(manifest: str, out: str, *, samples: int = 16, seed: int = 0) -> str:
    """A seeded ``.npz`` of made-up calibration samples for the inputs a conversion's manifest lists
    (the batch axis ``samples`` long, any other unknown axis 8; floats ~ N(0, 1), integers in
    [0, 10)), written once to ``out`` and reused: both sides calibrate on the same bytes."""
    import numpy as np

    if not os.path.exists(out):
        with open(manifest) as f:
            inputs = json.load(f)["inputs"]
        rng = np.random.default_rng(seed)
        arrays: dict[str, Any] = {}
        for spec in inputs:
            shape = [samples] + [8 if d in (None, -1) else int(d) for d in spec["shape"][1:]]
            dtype = np.dtype(spec["dtype"])
            arrays[spec["name"]] = (rng.integers(0, 10, shape).astype(dtype) if dtype.kind in "iub"
                                    else rng.standard_normal(shape).astype(dtype))
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        np.savez(out + ".partial.npz", **arrays)
        os.replace(out + ".partial.npz", out)
    return out


def file_hashes(folder: str) -> dict[str, str]:
    """sha256 of every file under ``folder`` by its path relative to it ('/'-separated), but the
    manifest and report."""
    out = {}
    for where, _dirs, files in os.walk(folder):
        for name in files:
            if name in SKIPPED_FILES:
                continue
            path = os.path.join(where, name)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[os.path.relpath(path, folder).replace(os.sep, "/")] = digest.hexdigest()
    return dict(sorted(out.items()))


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, str]:
    """Each artifact's verdict from two conversion records (``{"exit": int|None, "files": {rel: sha}}``):
    ``identical``, ``differs``, ``only before``, ``only after``; a conversion that wrote nothing and
    failed is one ``*`` row, ``failed before``/``failed after``/``failed both``."""
    files_b, files_a = before.get("files", {}), after.get("files", {})
    failed = [side for side, rec in (("before", before), ("after", after)) if rec.get("exit") not in (0,)
              and not rec.get("files")]
    verdicts: dict[str, str] = {}
    if failed:
        verdicts["*"] = "failed " + ("both" if len(failed) == 2 else failed[0])
    for rel in sorted(set(files_b) | set(files_a)):
        if rel not in files_a:
            verdicts[rel] = "only before"
        elif rel not in files_b:
            verdicts[rel] = "only after"
        else:
            verdicts[rel] = "identical" if files_b[rel] == files_a[rel] else "differs"
    return verdicts


def checkout(rev_or_dir: str, trees: str) -> tuple[str, str]:
    """(folder, label): a folder holding a checkout as it is, or a detached worktree of the commit
    (added under ``trees`` once, reused). The label is the short commit hash."""
    if os.path.isdir(rev_or_dir):
        folder = os.path.abspath(rev_or_dir)
    else:
        sha = _git(ROOT, "rev-parse", "--short", rev_or_dir + "^{commit}")
        folder = os.path.join(os.path.abspath(trees), sha)
        if not os.path.isdir(folder):
            os.makedirs(trees, exist_ok=True)
            _git(ROOT, "worktree", "add", "--detach", folder, sha)
    return folder, _git(folder, "rev-parse", "--short", "HEAD")


def imported_from(tree: str) -> str:
    """The folder of the tfopt a child run as :func:`convert` runs it imports (must be ``tree``'s)."""
    env = dict(os.environ, PYTHONPATH=tree, PYTHONSAFEPATH="1")
    code = "import tfopt, os; print(os.path.dirname(os.path.dirname(os.path.abspath(tfopt.__file__))))"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                          cwd=ROOT).stdout.strip()


def _git(where: str, *args: str) -> str:
    return subprocess.run(["git", "-C", where, *args], check=True, capture_output=True, text=True).stdout.strip()


def convert(tree: str, entry: corpus.Entry, model: str, variant: str, out: str, *, cache: str,
            timeout: float, calibration: str | None = None) -> dict[str, Any]:
    """Convert ``model`` with the tfopt of ``tree`` into ``out`` (emptied first): ``{exit, seconds, files, error}``.
    An int8 variant calibrates on ``calibration`` (an ``.npz``)."""
    targets, flags = VARIANTS[variant]
    if "int8" in variant:
        if calibration is None:
            raise ValueError(f"the {variant} variant needs calibration data")
        flags = (*flags, "--calibration", calibration)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    env = corpus.child_env(entry, cache, seed=0)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH", "")) if p)
    env["PYTHONSAFEPATH"] = "1"  # `python -m` would put the working directory (another checkout) first
    cmd = corpus.convert_command(entry, model, out, targets) + list(flags)
    done = corpus.run_child(cmd, timeout=timeout, env=env, log=out + ".log")
    files = file_hashes(out) if os.path.isdir(out) else {}
    error = "" if done["exit"] == 0 else corpus.first_error(done["output"])
    return {"exit": done["exit"], "seconds": round(done["seconds"], 1), "files": files, "error": error}


def _run_compare(args: argparse.Namespace) -> int:
    entries = [corpus.BY_NAME[n] for n in args.models] if args.models else list(corpus.CORPUS)
    trees = os.path.join(args.out, "trees")
    sides = [checkout(args.before, trees), checkout(args.after, trees)]
    for tree, label in sides:
        if os.path.realpath(imported_from(tree)) != os.path.realpath(tree):
            raise SystemExit(f"a child would import tfopt from {imported_from(tree)}, not {tree} ({label})")
    store = os.path.join(args.out, "hashes.json")
    hashes: dict[str, Any] = _load(store)
    for entry in entries:
        try:
            model = corpus.fetch(entry, args.cache, download=not args.no_download)
        except corpus.Unavailable as exc:
            say(f"{entry.name}: skipped: {exc}")
            continue
        for variant in sorted(args.variants, key=lambda v: v != "fp32"):  # int8 calibrates on fp32's inputs
            calibration = None
            if "int8" in variant:
                manifest = os.path.join(args.out, sides[1][1], entry.name, "fp32", "manifest.json")
                if not os.path.exists(manifest):
                    say(f"{entry.name}/{variant}: skipped: convert fp32 first (its manifest lists the inputs)")
                    continue
                calibration = calibration_npz(manifest, os.path.join(args.out, "calibration", entry.name + ".npz"))
            for tree, label in sides:
                key = f"{label}/{entry.name}/{variant}"
                if key in hashes and not args.force:
                    continue
                say(f"{key}: converting")
                rec = convert(tree, entry, model, variant, os.path.join(args.out, label, entry.name, variant),
                              cache=args.cache, timeout=args.timeout, calibration=calibration)
                say(f"{key}: exit {rec['exit']}, {rec['seconds']} s")
                hashes = {**_load(store), key: rec}  # another run (a probe, a second list) may have added rows
                _save(store, hashes)
    text = to_markdown(hashes, sides[0][1], sides[1][1], [e.name for e in entries], args.variants)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


def artifact_kind(rel: str) -> str:
    """The table column of an artifact: its file name without the precision (``model.int8.onnx`` ->
    ``model.onnx``, ``openvino.fp32/model.bin`` -> ``openvino/model.bin``)."""
    parts = [".".join(p for p in part.split(".") if p not in PRECISIONS) for part in rel.split("/")]
    return "/".join(parts)


PRECISIONS = frozenset({"fp32", "fp16", "dynamic", "int8", "int16x8"})


def to_markdown(hashes: Mapping[str, Any], before: str, after: str, models: list[str], variants: list[str]) -> str:
    """One row per model x variant, one column per artifact (its verdict; ``–`` not written on
    either side), then the counts of each verdict over every artifact."""
    rows: list[tuple[str, str, dict[str, str], str]] = []
    counts: dict[str, int] = {}
    kinds: set[str] = set()
    for name in models:
        for variant in variants:
            b, a = hashes.get(f"{before}/{name}/{variant}"), hashes.get(f"{after}/{name}/{variant}")
            if b is None or a is None:
                continue
            verdicts = {artifact_kind(rel) if rel != "*" else "*": v for rel, v in compare(b, a).items()}
            for verdict in verdicts.values():
                counts[verdict] = counts.get(verdict, 0) + 1
            kinds |= set(verdicts) - {"*"}
            rows.append((name, variant, verdicts, f"{b.get('exit')} → {a.get('exit')}"))
    columns = sorted(kinds)
    lines = [f"| model | variant | exit {before} → {after} | " + " | ".join(columns) + " |",
             "| --- | --- | --- |" + " --- |" * len(columns)]
    for name, variant, verdicts, exits in rows:
        cells = [verdicts.get(c, verdicts.get("*", "–")) for c in columns]
        lines.append(f"| {name} | {variant} | {exits} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + " (artifacts)")
    return "\n".join(lines) + "\n"


def _run_probe(args: argparse.Namespace) -> int:
    entry = corpus.BY_NAME[args.model]
    reference = _load(args.like[0])[f"{args.like[1]}/{args.model}/{args.variant}"]
    label = _git(args.checkout, "rev-parse", "--short", "HEAD")
    calibration = os.path.join(args.out, "calibration", args.model + ".npz")
    rec = convert(os.path.abspath(args.checkout), entry, corpus.fetch(entry, args.cache, download=False),
                  args.variant, os.path.join(args.out, "probe", label), cache=args.cache, timeout=args.timeout,
                  calibration=calibration if "int8" in args.variant else None)
    files = {args.file: rec["files"].get(args.file)} if args.file else rec["files"]
    wanted = {args.file: reference["files"].get(args.file)} if args.file else reference["files"]
    if rec["exit"] != 0 and not rec["files"]:  # wrote nothing: this commit cannot say
        say(f"{label}: conversion failed ({rec['error']}): skip")
        return 125
    same = files == wanted
    say(f"{label}: {'same as' if same else 'differs from'} {args.like[1]}")
    return 0 if same else 1


def _load(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return dict(json.load(f))


def _save(path: str, hashes: Mapping[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".partial", "w") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)
    os.replace(path + ".partial", path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    cmp = sub.add_parser("compare", help="convert at two commits, compare the hashes")
    cmp.add_argument("before", help="commit or checkout folder")
    cmp.add_argument("after", help="commit or checkout folder")
    cmp.add_argument("--models", nargs="+", choices=sorted(corpus.BY_NAME), metavar="NAME")
    cmp.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["fp32"])
    cmp.add_argument("--markdown", metavar="PATH")
    cmp.add_argument("--force", action="store_true", help="convert again what OUT/hashes.json already holds")
    cmp.add_argument("--no-download", action="store_true", help="only models already in the cache")
    probe = sub.add_parser("probe", help="a `git bisect run` step (exit 0 same, 1 differs, 125 failed)")
    probe.add_argument("checkout")
    probe.add_argument("--model", required=True, choices=sorted(corpus.BY_NAME), metavar="NAME")
    probe.add_argument("--variant", choices=list(VARIANTS), default="fp32")
    probe.add_argument("--like", nargs=2, required=True, metavar=("HASHES", "REV"),
                       help="the hashes.json of `compare` and the label (short hash) of the good side")
    probe.add_argument("--file", help="compare only this artifact (relative path)")
    for p in (cmp, probe):
        p.add_argument("--out", default=os.path.join(corpus.DEFAULT_CACHE, "bytes"), help="default %(default)s")
        p.add_argument("--cache", default=corpus.DEFAULT_CACHE)
        p.add_argument("--timeout", type=float, default=1800, help="seconds per conversion")
    table = sub.add_parser("table", help="the table of what OUT/hashes.json holds, nothing converted")
    table.add_argument("before", help="label (short hash) of the first side")
    table.add_argument("after", help="label (short hash) of the second side")
    table.add_argument("--out", default=os.path.join(corpus.DEFAULT_CACHE, "bytes"), help="default %(default)s")
    table.add_argument("--hashes", nargs="*", default=[], help="more hashes.json files to read")
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    if args.cmd == "table":
        return _run_table(args)
    return _run_compare(args) if args.cmd == "compare" else _run_probe(args)


def _run_table(args: argparse.Namespace) -> int:
    hashes: dict[str, Any] = _load(os.path.join(args.out, "hashes.json"))
    for path in args.hashes:
        hashes.update(_load(path))
    rows = [key.split("/") for key in hashes]
    models = sorted({m for side, m, _v in rows if side == args.after})
    variants = [v for v in VARIANTS if any(r[2] == v for r in rows)]
    print(to_markdown(hashes, args.before, args.after, models, variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
