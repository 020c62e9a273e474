"""The Keras layer sweep: every public layer class of Keras 3 (``keras.layers``) and Keras 2
(``tf_keras.layers``) in a tiny seeded model, saved the ways users save (Keras 3: ``.keras`` and
``model.export``; Keras 2: ``.h5`` and a SavedModel), converted with ``tfopt.convert`` to TFLite,
ONNX and OpenVINO at fp32 with verification, exactly as a user would.

A cell (layer variant x save format x target) is ``ok`` (the report's max abs error; verification
held it within ``tolerances.ARTIFACT["fp32"]`` scaled by the outputs' magnitude), ``typed`` (a
``TfoptError``: the converter's limitation, named), ``internal`` (any other exception: a tfopt bug)
or ``skip`` (the layer needs data to be built, or this Keras has no such class).

The cases are :mod:`tfopt.coverage.layer_cases`; public classes with no case are listed with the
reason, so the table says what was not tried.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt.coverage.corpus import TARGETS  # the three converters, as the corpus measures them
from tfopt.coverage.layer_cases import Case, keras_module
from tfopt.coverage.op_sweep import convert_cells

FORMATS = {"keras3": ("keras", "export"), "keras2": ("h5", "savedmodel")}


def save(model: Any, api: str, fmt: str, directory: str) -> str:
    """Save as users do; returns the path tfopt loads."""
    if fmt == "keras":
        path = os.path.join(directory, "model.keras")
        model.save(path)
    elif fmt == "export":
        path = os.path.join(directory, "savedmodel")
        model.export(path, verbose=False)
    elif fmt == "h5":
        path = os.path.join(directory, "model.h5")
        model.save(path)
    else:
        path = os.path.join(directory, "savedmodel")
        model.save(path, save_format="tf")
    return path


def sweep(selected: Iterable[Case], apis: Sequence[str] = ("keras3", "keras2"), *,
          formats: dict[str, Sequence[str]] | None = None, say: Callable[[str], None] = lambda _m: None,
          on_row: Callable[[dict[str, Any]], None] = lambda _r: None) -> list[dict[str, Any]]:
    """One row per case x api x format: ``{layer, case, api, format, seconds, cells: {target: cell}}``
    (every ONNX conversion in one tf2onnx child, started once)."""
    from tfopt.emitters.onnx_worker import shared_child

    formats = formats or dict(FORMATS)
    rows: list[dict[str, Any]] = []
    with shared_child():
        for case in selected:
            for row in _sweep_case(case, apis, formats, say):
                on_row(row)
                rows.append(row)
    return rows


def _sweep_case(case: Case, apis: Sequence[str], formats: dict[str, Sequence[str]],
                say: Callable[[str], None]) -> Iterable[dict[str, Any]]:
    for api in apis:
        for fmt in formats.get(api, ()):
            row: dict[str, Any] = {"layer": case.layer, "case": case.name, "api": api, "format": fmt}
            start = time.perf_counter()
            say(f"{case.name} {api} {fmt}")
            row["cells"] = _row_cells(case, api, fmt)
            yield {**row, "seconds": round(time.perf_counter() - start, 1)}


def _row_cells(case: Case, api: str, fmt: str) -> dict[str, dict[str, Any]]:
    if api not in case.apis:
        return {t: {"status": "skip", "message": f"no such configuration in {api}"} for t in TARGETS}
    K = keras_module(api)
    if not hasattr(K.layers, case.layer) and case.layer not in ("Bidirectional", "TimeDistributed"):
        return {t: {"status": "skip", "message": f"{api} has no layers.{case.layer}"} for t in TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            K.utils.set_random_seed(0)
            path = save(case.build(K), api, fmt, tmp)
        except Exception as exc:  # Keras itself refuses the configuration or the save: not tfopt's
            return {t: {"status": "skip", "message": f"Keras cannot build/save it: {_text(exc)}"} for t in TARGETS}
        cells = convert_cells(path, os.path.join(tmp, "out"), TARGETS, **case.options)
    # a verification failure is one of tfopt's typed errors here (the op sweep tells it apart as "mismatch")
    return {t: {**c, "status": "typed"} if c["status"] == "mismatch" else c for t, c in cells.items()}


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


@dataclass
class Counts:
    ok: int = 0
    typed: int = 0
    internal: int = 0
    skip: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


def count(rows: Sequence[dict[str, Any]]) -> Counts:
    counts = Counts()
    for row in rows:
        for cell in row["cells"].values():
            setattr(counts, cell["status"], getattr(counts, cell["status"]) + 1)
            if cell["status"] in ("typed", "internal"):
                counts.by_error[cell["error"]] = counts.by_error.get(cell["error"], 0) + 1
    return counts


def to_markdown(rows: Sequence[dict[str, Any]], uncovered_layers: dict[str, dict[str, str]] | None = None) -> str:
    """A table: one line per case x api x format, one column per target; failures numbered below."""
    lines = ["| case | keras | saved as | " + " | ".join(TARGETS) + " |", "|---|---|---|" + "---|" * len(TARGETS)]
    notes: list[str] = []
    for row in rows:
        out = [row["case"], row["api"], row["format"]]
        for target in TARGETS:
            cell = row["cells"][target]
            if cell["status"] == "ok":
                out.append(f"ok {cell['max_abs_err']:.1e}")
            elif cell["status"] == "skip":
                out.append("skip")
            else:
                note = f"{cell['status']}: {cell['error']}: {cell['message']}"
                if note not in notes:
                    notes.append(note)
                out.append(f"{cell['status']} [{notes.index(note) + 1}]")
        lines.append("| " + " | ".join(out) + " |")
    c = count(rows)
    lines += ["", f"cells: {c.ok} ok, {c.typed} typed error, {c.internal} internal error, {c.skip} skipped", ""]
    lines += [f"{i}. {note}" for i, note in enumerate(notes, 1)]
    for api, names in (uncovered_layers or {}).items():
        lines += ["", f"Public {api} layer classes without a case:", ""]
        lines += [f"- {name}: {why}" for name, why in names.items()]
    return "\n".join(lines) + "\n"
