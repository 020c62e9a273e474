#!/usr/bin/env python
"""Convert a fleet of models from a YAML manifest: parallel, resumable, one summary, gate-aware exit.

    python scripts/convert_fleet.py fleet.yaml [-o OUTROOT] [--jobs N] [--force] [--overwrite] [--only NAME ...]

The manifest (paths relative to the manifest's directory, which is also where modules named by
``custom_objects``, ``model_fn``, ``metric`` or a ``module:fn`` calibration are imported from, as
the CLI imports them from the working directory)::

    defaults:                      # options for every model: tfopt.convert keyword arguments,
      to: [tflite, onnx]           # or the CLI's option names (eval-data, fail-if, ...)
      quantize: [none, int8]
      fail_if: ["accuracy_drop>2"]
    models:
      - name: digits               # output goes to OUTROOT/digits (default OUTROOT: fleet_out/
        path: models/digits.keras  # next to the manifest)
        calibration: data/calib.npz
        eval_data: data/eval.npz
      - name: legacy
        path: ckpt/                # anything tfopt loads
        outputs: [probs]
      - name: custom
        path: models/custom.keras
        custom_objects: my_layers  # a module (my_layers.py next to the manifest), not a path

A key that is not an option of ``tfopt.convert`` (or the CLI's name for one) is an error naming
the closest valid key.

Each model converts in its own worker process (``--jobs``, default 2; TensorFlow runs once per
process). A model is skipped when its artifacts and report are up to date: same options and
same input bytes (model, calibration and eval files, hashed) as the run that wrote them, and
every artifact still there. Outputs follow tfopt's rule (:mod:`tfopt.outputs`), checked for every
model before any converts: OUTROOT/NAME may not be, hold or lie inside a model's input, and an existing
OUTROOT/NAME that tfopt did not write is refused unless ``--overwrite``. Exit status: 0 when all
converted and passed their gates, 10 when a gate failed (reports are written), 1 when a model could
not be converted, 2 when an output is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PATH_OPTIONS = ("path", "calibration", "eval_data", "finetune_data", "junit")
STAMP = ".fleet-stamp.json"


def load_manifest(path: str) -> list[dict[str, Any]]:
    """The models with their options merged over ``defaults`` and paths made absolute."""
    import yaml

    with open(path) as f:
        manifest = yaml.safe_load(f) or {}
    base = os.path.dirname(os.path.abspath(path))
    defaults = _checked(_normalise(manifest.get("defaults") or {}), f"{path}: defaults")
    models, names = [], set()
    for index, entry in enumerate(manifest.get("models") or []):
        options = {**defaults, **_checked(_normalise(entry), f"{path}: models[{index}]")}
        name = options.pop("name", None)
        if not name or "path" not in options:
            raise SystemExit(f"{path}: models[{index}] needs 'name' and 'path'")
        if name in names:
            raise SystemExit(f"{path}: model name '{name}' appears twice")
        names.add(name)
        for key in PATH_OPTIONS:
            if isinstance(options.get(key), str) and ":" not in options[key]:  # module:fn stays as it is
                options[key] = os.path.normpath(os.path.join(base, options[key]))
        models.append({"name": name, "options": options, "base": base})
    if not models:
        raise SystemExit(f"{path}: no models")
    return models


def option_names() -> frozenset[str]:
    """The keys a manifest entry may hold: ``name``, ``path`` and the flat names of
    :class:`tfopt.options.ConvertOptions` (what ``tfopt.convert`` takes as keywords) but
    ``overwrite`` and ``compress`` (the script's flag, and what ``cluster``/``prune`` build)."""
    from tfopt.options import flat_names

    return frozenset({"name", "path", *flat_names()} - {"overwrite", "compress"})


def _checked(options: dict[str, Any], where: str) -> dict[str, Any]:
    """``options``, or SystemExit naming the first key that is no option (and the closest that is)."""
    from tfopt.errors import did_you_mean

    valid = option_names()
    for key in options:
        if key == "overwrite":
            raise SystemExit(f"{where}: 'overwrite' is this script's --overwrite flag, not a manifest option")
        if key not in valid:
            raise SystemExit(f"{where}: unknown option '{key}'.{did_you_mean(key, valid)}")
    from tfopt.errors import OptionError
    from tfopt.options import ConvertOptions

    try:  # the same objects tfopt convert builds: two names for one option are refused here too
        ConvertOptions.from_kwargs(**{k: v for k, v in options.items() if k not in ("name", "path")})
    except OptionError as exc:
        raise SystemExit(f"{where}: {exc}") from None
    return options


def _normalise(options: dict[str, Any]) -> dict[str, Any]:
    out = {key.replace("-", "_"): value for key, value in options.items()}
    for key in ("to", "quantize", "keep_float", "fail_if"):
        if isinstance(out.get(key), str):
            out[key] = [v for v in out[key].split(",") if v] if key != "fail_if" else [out[key]]
    return out


def fingerprint(options: dict[str, Any]) -> str:
    """Options plus the bytes of every input file they name (a directory: every file in it)."""
    from tfopt._io import digest

    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for key in ("path", "calibration", "eval_data"):
        value = options.get(key)
        if isinstance(value, str) and os.path.exists(value):
            h.update(digest(value).encode())
    return h.hexdigest()


def up_to_date(outdir: str, stamp: str) -> bool:
    try:
        with open(os.path.join(outdir, STAMP)) as f:
            if json.load(f)["fingerprint"] != stamp:
                return False
        with open(os.path.join(outdir, "manifest.json")) as f:
            artifacts = json.load(f)["artifacts"]
    except (OSError, KeyError, ValueError):
        return False
    return os.path.exists(os.path.join(outdir, "report.json")) and \
        all(os.path.exists(os.path.join(outdir, a["path"])) for a in artifacts)


def check_outputs(models: list[dict[str, Any]], root: str, *, overwrite: bool) -> list[str]:
    """tfopt's output rule for every model's OUTROOT/NAME (and --junit): the refusals, one line each."""
    from tfopt.errors import TfoptError
    from tfopt.outputs import check_convert_outputs, check_not_input

    problems = []
    for model in models:
        options = model["options"]
        try:
            if not os.path.isdir(root):  # OUTROOT is created only when no model's input is in the way
                check_not_input(root, [options.get(k) for k in ("path", "calibration", "eval_data")])
                continue
            check_convert_outputs(os.path.join(root, model["name"]), options.get("junit"),
                                  [options.get(k) for k in ("path", "calibration", "eval_data", "finetune_data")],
                                  overwrite=overwrite)
        except TfoptError as exc:
            problems.append(f"{model['name']}: {exc}")
    return problems


def convert_one(name: str, options: dict[str, Any], outdir: str, stamp: str, base: str) -> dict[str, Any]:
    """Worker: one model, its outcome as a summary row (never raises). It runs in the manifest's
    directory ``base`` (every path is absolute by now), so tfopt imports the modules the options
    name from there, as the CLI does from its working directory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.chdir(base)
    import tfopt
    from tfopt.errors import GateFailure

    start = time.perf_counter()
    options = dict(options)
    path = options.pop("path")
    status, message = "converted", ""
    try:
        tfopt.convert(path, outdir, **options)
    except GateFailure as exc:
        status, message = "gate failed", str(exc)
    except tfopt.TfoptError as exc:
        return {"name": name, "status": "error", "message": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - start}
    except Exception as exc:  # a fleet run reports every model; one crash must not hide the rest
        return {"name": name, "status": "error", "message": f"internal error: {type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - start}
    with open(os.path.join(outdir, STAMP), "w") as f:
        json.dump({"fingerprint": stamp}, f)
    return {**summarise(name, outdir), "status": status, "message": message, "seconds": time.perf_counter() - start}


def summarise(name: str, outdir: str) -> dict[str, Any]:
    """A summary row from a conversion's report.json."""
    with open(os.path.join(outdir, "report.json")) as f:
        report = json.load(f)
    artifacts = report["artifacts"]
    drops = [a["accuracy_drop"] for a in artifacts if a.get("accuracy_drop") is not None]
    return {"name": name, "artifacts": len(artifacts),
            "worst_drop": max(drops) if drops else None,
            "worst_cosine": min((a["fidelity"]["cosine"] for a in artifacts), default=None),
            "gates_failed": sum(g["failed"] for g in report.get("gates", []))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="YAML: defaults + models (see this script's docstring)")
    parser.add_argument("-o", "--output", help="output root (default: fleet_out next to the manifest)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="convert even when up to date")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUTROOT/NAME that tfopt did not write (refused without it)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="convert only these models")
    args = parser.parse_args(argv)

    models = load_manifest(args.manifest)
    if args.only:
        unknown = set(args.only) - {m["name"] for m in models}
        if unknown:
            parser.error(f"--only: no model named {', '.join(sorted(unknown))} in {args.manifest}")
        models = [m for m in models if m["name"] in args.only]
    root = os.path.abspath(args.output or os.path.join(os.path.dirname(os.path.abspath(args.manifest)), "fleet_out"))
    problems = check_outputs(models, root, overwrite=args.overwrite)
    if not problems:
        os.makedirs(root, exist_ok=True)
        problems = check_outputs(models, root, overwrite=args.overwrite)
    if problems:
        print("nothing converted:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    rows, pending = [], []
    for model in models:
        outdir = os.path.join(root, model["name"])
        stamp = fingerprint(model["options"])
        if not args.force and up_to_date(outdir, stamp):
            row = summarise(model["name"], outdir)
            rows.append({**row, "status": "up to date" if not row["gates_failed"] else "gate failed",
                         "message": "", "seconds": 0.0})
        else:
            pending.append((model["name"], {**model["options"], "overwrite": args.overwrite}, outdir, stamp,
                            model["base"]))
    print(f"{len(models)} model(s): {len(pending)} to convert, {len(models) - len(pending)} up to date", flush=True)
    if pending:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(convert_one, *job) for job in pending]
            for future in as_completed(futures):
                row = future.result()
                print(f"  {row['name']}: {row['status']} ({row['seconds']:.1f} s)", flush=True)
                rows.append(row)
    print_summary(sorted(rows, key=lambda r: r["name"]), root)
    if any(r["status"] == "error" for r in rows):
        return 1
    return 10 if any(r["status"] == "gate failed" for r in rows) else 0


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
