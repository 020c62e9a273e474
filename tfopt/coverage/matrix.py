"""The coverage matrix: each model x each target cell converted with ``tfopt.convert`` exactly as a
user would, verified and measured. A model's cells of one precision are one call (the model is
loaded, frozen and optimized once for them, as for a user's ``--to a,b,c``): a failing target does
not hide the others (``convert`` records it and builds the rest); when nothing of the call could be
built, each of its cells is converted alone, so that each says its own error.

A cell is ``ok`` (with the report's max abs error, top-1 agreement, bytes and median latency) or
``failed`` with tfopt's typed error: the op or feature, the target's limitation, and what to do.
An untyped exception is shown as ``internal error``: a tfopt bug, not hidden.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CELLS = (("pb", "fp32"), ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("openvino", "fp32"),
         ("openvino", "int8"))


def run_matrix(names: Sequence[str], *, cells: Sequence[tuple[str, str]] = CELLS, runs: int = 10,
               say: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """One row per model: ``{model, description, seconds, cells: {"format/precision": cell}}``."""
    from tfopt.coverage.models import MODELS

    rows = []
    for name in names:
        entry = MODELS[name]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            say(f"{name}: building")
            row: dict[str, Any] = {"model": name, "description": entry.description, "cells": {}}
            try:
                path = entry.build(tmp)
                calibration = _calibration(path, entry, tmp)
            except Exception as exc:  # the model itself could not be loaded: every cell says why
                failure = _failure(exc)
                row["cells"] = {f"{t}/{p}": failure for t, p in cells}
                rows.append({**row, "seconds": time.perf_counter() - start})
                continue
            by_precision: dict[str, list[str]] = {}
            for target, precision in cells:
                by_precision.setdefault(precision, []).append(target)
            for precision, targets in by_precision.items():
                say(f"{name}: {','.join(targets)} {precision}")
                row["cells"].update(_cells(path, entry.options, targets, precision, calibration,
                                           os.path.join(tmp, precision), runs))
            row["cells"] = {f"{t}/{p}": row["cells"][f"{t}/{p}"] for t, p in cells}
        rows.append({**row, "seconds": time.perf_counter() - start})
    return rows


def _calibration(path: str, entry: Any, tmp: str) -> str:
    """Eight seeded samples matching the frozen model's inputs (unknown dims: batch 1, else the
    model's ``dynamic_dim``), as the .npz any user would pass."""
    from tfopt import freeze, load
    from tfopt.verification.testing import random_inputs

    frozen, _ = freeze(load(path, **entry.options), verify=False)
    samples = [random_inputs(frozen.inputs, seed=i, batch=1, dynamic_dim=entry.dynamic_dim) for i in range(8)]
    arrays = {s.name: np.concatenate([x[s.name] for x in samples]) for s in frozen.inputs}
    arrays = {k: v.astype("S") if v.dtype == object else v for k, v in arrays.items()}  # strings: no pickle
    out = os.path.join(tmp, "calibration.npz")
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out


def _cells(path: str, options: dict[str, Any], targets: list[str], precision: str, calibration: str, outdir: str,
           runs: int) -> dict[str, dict[str, Any]]:
    """The cells ``target/precision`` of ``targets`` from one ``convert`` (each cell's ``seconds``: its
    share of the call); when it builds nothing, each target alone (each cell then says its own error)."""
    from tfopt import convert

    start = time.perf_counter()
    try:
        result = convert(path, outdir, to=targets, quantize=[precision], report_runs=runs,
                         calibration=calibration if precision in ("int8", "int16x8") else None, **options)
    except Exception as exc:
        if len(targets) == 1:
            return {f"{targets[0]}/{precision}": {**_failure(exc), "seconds": time.perf_counter() - start}}
        return {key: cell for i, target in enumerate(targets)
                for key, cell in _cells(path, options, [target], precision, calibration, f"{outdir}-{i}", runs).items()}
    seconds = (time.perf_counter() - start) / len(targets)
    if result.report is None:  # convert(verify=False) measures nothing; an entry's options are load options
        return {f"{t}/{precision}": {"ok": False, "error": "no report", "message": "converted without verification",
                                     "seconds": seconds} for t in targets}
    built = {a["format"]: a for a in result.report["artifacts"] if a["precision"] == precision}
    failed = {f.format: error for f, error in zip(result.failed, result.errors)}
    cells = {}
    for target in targets:
        artifact = built.get(target)
        if artifact is None:
            error = failed.get(target)
            cells[f"{target}/{precision}"] = {**(_failure(error) if error is not None else
                                                 {"ok": False, "error": "not built", "message": "no artifact"}),
                                              "seconds": seconds}
            continue
        cells[f"{target}/{precision}"] = {
            "ok": True, "max_abs_err": artifact["fidelity"]["max_abs_err"],
            "top1_agreement": artifact["fidelity"]["top1_agreement"], "bytes": artifact["bytes"],
            "latency_ms": artifact["latency_ms"]["median"], "seconds": seconds}
    return cells


def _failure(exc: Exception) -> dict[str, Any]:
    from tfopt.errors import TfoptError

    message = " ".join(str(exc).split())
    kind = type(exc).__name__ if isinstance(exc, TfoptError) else f"internal error ({type(exc).__name__})"
    return {"ok": False, "error": kind, "message": message[:500]}


def to_markdown(rows: Sequence[dict[str, Any]], cells: Sequence[tuple[str, str]] = CELLS) -> str:
    """The matrix as a Markdown table (``ok`` cells: max abs error · size · latency), then one
    numbered note per failing cell with tfopt's message."""
    header = ["model"] + [f"{t} {p}" for t, p in cells]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for row in rows:
        out = [f"**{row['model']}**"]
        for target, precision in cells:
            cell = row["cells"].get(f"{target}/{precision}")
            if cell is None:
                out.append("")
            elif cell["ok"]:
                out.append(f"✓ {cell['max_abs_err']:.1e} · {_size(cell['bytes'])} · {cell['latency_ms']:.2f} ms")
            else:
                notes.append(f"{row['model']}, {target} {precision}: **{cell['error']}**: {cell['message']}")
                out.append(f"✗ [{len(notes)}](#coverage-notes)")
        lines.append("| " + " | ".join(out) + " |")
    ok = sum(c["ok"] for r in rows for c in r["cells"].values())
    total = sum(len(r["cells"]) for r in rows)
    lines += ["", f"{ok} of {total} cells convert and verify. ✓ cells: max abs error against the original "
              "(int8: measured, not bounded) · artifact size · median latency at batch 1.", ""]
    if notes:
        lines += ["<a id='coverage-notes'></a>Why the ✗ cells fail (tfopt's error message, as users see it):", ""]
        lines += [f"{i}. {note}" for i, note in enumerate(notes, 1)]
    models = "\n".join(f"- **{r['model']}**: {r['description']}" for r in rows)
    return "\n".join(lines) + "\n\nModels:\n\n" + models + "\n"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"
