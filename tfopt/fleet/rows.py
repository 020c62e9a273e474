"""The fleet report's rows, their order and the summary counts: pure functions of a FleetResult.

One :class:`Row` per model x target x precision (from the model's emit tasks and its report.json's
artifacts, joined on ``(format, precision)``), plus one row per failed ``prepare``/``finish`` task
(``target`` is None), plus one row for a failed or cancelled model that no task explains. A row's
status is the task's when the task did not finish (failed, timeout, cancelled, skipped), else
``failed`` when the model's report lists the artifact as failed (a partial model), else ``gate-failed`` when a gate of the model's report tripped on that artifact, else ``ok``/``cached``.

Order (:func:`sort_key`): worst offenders first - failed and timed-out rows, then gate-failed, then
cancelled, skipped, and the rest; within a rank by accuracy drop (points, descending), then
fidelity error (max abs err, descending; NaN counts as the worst); ties by model, target, precision,
so the order never depends on the order in which an executor finished the tasks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from tfopt.errors import PARTIAL_EXIT_CODE
from tfopt.fleet.result import FleetResult, ModelRecord, TaskRecord
from tfopt.targets import precision_name

# Lower is worse. A timeout is a failure; an interrupt (cancelled) is not the model's fault.
STATUS_RANK = {"failed": 0, "timeout": 0, "gate-failed": 1, "cancelled": 2, "skipped": 3, "ok": 4, "cached": 4}
FAILED = frozenset({"failed", "timeout"})
KIND_ORDER = {"prepare": 0, "emit": 1, "finish": 2}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """``text`` without ANSI escapes and without the characters XML 1.0 forbids (NUL, other C0
    controls): a captured log as every report format can hold it."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


@dataclass(frozen=True)
class Row:
    """One line of the fleet table. ``target``/``precision`` are None for a model-level row."""

    model: str
    kind: str                          # "emit", or "prepare"/"finish"/"model" for a model-level row
    status: str                        # a key of STATUS_RANK
    target: str | None = None
    precision: str | None = None
    accuracy_drop: float | None = None  # points
    max_abs_err: float | None = None
    bytes: int | None = None
    gzip_bytes: int | None = None
    latency_ms: float | None = None    # median, batch 1
    seconds: float = 0.0
    cache_hits: tuple[str, ...] = ()
    retries: int = 0
    message: str | None = None         # the error, or the tripped gates
    log_tail: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        """``tflite/int8``, or the task kind for a model-level row."""
        return f"{self.target}/{self.precision}" if self.target else self.kind


def number(value: Any) -> float | None:
    """A report value as a float: report.json spells non-finite floats ``"nan"``/``"inf"``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return float(value)


def task_order(task: TaskRecord) -> tuple[Any, ...]:
    return (task.model, KIND_ORDER.get(task.kind, 3), task.kind, task.target or "",
            precision_name(task.precision or ""))


def rows(result: FleetResult) -> list[Row]:
    """Every row of the fleet, worst first (:func:`sort_key`)."""
    by_model: dict[str, list[TaskRecord]] = {}
    for task in result.tasks:
        by_model.setdefault(task.model, []).append(task)
    out: list[Row] = []
    for model in result.models:
        out += _model_rows(model, sorted(by_model.pop(model.name, []), key=task_order))
    for name in sorted(by_model):  # tasks of a model the result does not list: still reported
        out += _model_rows(ModelRecord(name, "", "", "failed"), sorted(by_model[name], key=task_order))
    return sorted(out, key=sort_key)


def sort_key(row: Row) -> tuple[Any, ...]:
    drop = row.accuracy_drop
    err = row.max_abs_err
    return (STATUS_RANK.get(row.status, 0),
            -math.inf if drop is not None and math.isnan(drop) else -(drop if drop is not None else -math.inf),
            -math.inf if err is not None and math.isnan(err) else -(err if err is not None else -math.inf),
            row.model, KIND_ORDER.get(row.kind, 3), row.target or "", row.precision or "")


def _model_rows(model: ModelRecord, tasks: list[TaskRecord]) -> list[Row]:
    report = model.report or {}
    artifacts = {(a.get("format"), precision_name(str(a.get("precision")))): a for a in report.get("artifacts") or []}
    tripped: dict[tuple[Any, str], list[str]] = {}
    for gate in report.get("gates") or []:
        if gate.get("failed"):
            key = (gate.get("format"), precision_name(str(gate.get("precision"))))
            tripped.setdefault(key, []).append(f"fail-if {gate.get('gate')}: {gate.get('metric')} = {gate.get('value')}")
    failed = {(f.get("format"), precision_name(str(f.get("precision")))): f for f in report.get("failed") or []}
    out, seen = [], set()
    for task in tasks:
        if task.kind != "emit":
            if task.status in FAILED or (task.status == "cancelled" and model.status == "cancelled"):
                out.append(_task_row(model.name, task, task.kind, None, None, {}))
            continue
        key = (task.target, precision_name(task.precision or ""))
        seen.add(key)
        row = _task_row(model.name, task, "emit", *key, artifacts.get(key, {}), tripped.get(key))
        if key in failed and row.status in ("ok", "cached"):  # the task ran; its artifact failed (a partial model)
            row = replace(row, status="failed", message=clean(" ".join(failed[key].get("reason", "").split())))
        out.append(row)
    for key in sorted(set(artifacts) - seen, key=lambda k: (str(k[0]), k[1])):  # e.g. an up-to-date model with no tasks
        status = "cached" if model.status == "up-to-date" else "ok"
        out.append(_artifact_row(model.name, key, artifacts[key], status, tripped.get(key)))
    for key in sorted(set(failed) - seen, key=lambda k: (str(k[0]), k[1])):
        out.append(Row(model.name, "emit", "failed", key[0], key[1],
                       message=clean(" ".join(failed[key].get("reason", "").split()))))
    if model.status in ("failed", "cancelled") and not any(r.status in (*FAILED, "cancelled") for r in out):
        out.append(Row(model.name, "model", model.status if model.status == "cancelled" else "failed",
                       message=clean(model.error or f"model {model.status}")))
    return out


def _task_row(model: str, task: TaskRecord, kind: str, target: str | None, precision: str | None,
              artifact: dict[str, Any], gates: list[str] | None = None) -> Row:
    if task.status in ("ok", "cached"):
        base = _artifact_row(model, (target, precision or ""), artifact, task.status, gates)
    else:
        base = Row(model, kind, task.status, target, precision, message=clean(task.error or f"{kind} {task.status}"),
                   log_tail=tuple(clean(line) for line in task.log_tail))
    return replace(base, seconds=task.seconds, retries=task.retries, cache_hits=tuple(task.cache_hits))


def _artifact_row(model: str, key: tuple[str | None, str], artifact: dict[str, Any], status: str,
                  gates: list[str] | None) -> Row:
    fidelity = artifact.get("fidelity") or {}
    latency = artifact.get("latency_ms") or {}
    return Row(model, "emit", "gate-failed" if gates else status, key[0], key[1],
               accuracy_drop=number(artifact.get("accuracy_drop")), max_abs_err=number(fidelity.get("max_abs_err")),
               bytes=artifact.get("bytes"), gzip_bytes=artifact.get("gzip_bytes"),
               latency_ms=number(latency.get("median")), message="; ".join(gates) if gates else None)


def summary(result: FleetResult) -> dict[str, Any]:
    """The header counts: models by status, tasks run/cached/failed/retried, seconds, cache hits."""
    models = Counter(m.status for m in result.models)
    tasks = Counter(t.status for t in result.tasks)
    return {
        "models": len(result.models),
        **{f"models_{status.replace('-', '_')}": models.get(status, 0)
           for status in ("converted", "up-to-date", "gate-failed", "partial", "failed", "cancelled")},
        "tasks": len(result.tasks),
        "tasks_run": sum(tasks.get(s, 0) for s in ("ok", "failed", "timeout")),
        "tasks_cached": tasks.get("cached", 0),
        "tasks_failed": sum(tasks.get(s, 0) for s in FAILED),
        "tasks_cancelled": tasks.get("cancelled", 0),
        "tasks_skipped": tasks.get("skipped", 0),
        "tasks_retried": sum(t.retries > 0 for t in result.tasks),
        "retries": sum(t.retries for t in result.tasks),
        "cache_hits": sum(len(t.cache_hits) for t in result.tasks),
        "seconds": result.seconds,
        "task_seconds": sum(t.seconds for t in result.tasks),
        "peak_rss_mb": max((t.peak_rss_mb for t in result.tasks if t.peak_rss_mb is not None), default=None),
        "latency": {m.name: m.latency for m in result.models if m.report is not None},
    }


def latency_line(s: dict[str, Any]) -> str:
    """How the table's latency was taken: in isolation, or under load (which models, how many tasks)."""
    how = s.get("latency") or {}
    if not how:
        return "latency: none measured"
    loaded = {name: label for name, label in how.items() if label and label.startswith("under load")}
    unknown = sorted(name for name, label in how.items() if not label)
    if not loaded and not unknown:
        return ("latency: measured in isolation (each model's artifacts timed alone, one model at a time, "
                "no other task running)")
    parts = [f"{name} {label}" for name, label in sorted(loaded.items())]
    line = ("latency: measured UNDER LOAD for " + "; ".join(parts) + " - other tasks shared the cores, so these "
            "numbers are slower than the artifacts alone (rerun without --latency-under-load)") if parts else "latency:"
    if unknown:
        line += f"{';' if parts else ''} not known how it was taken for {', '.join(unknown)} (an older run)"
    return line


def gate_tripped(model: ModelRecord) -> bool:
    return model.status == "gate-failed" or any(g.get("failed") for g in (model.report or {}).get("gates") or [])


def exit_code(result: FleetResult) -> int:
    """The fleet's exit status: 130 interrupted (a model or task cancelled), 1 anything failed (a
    model, or a task that stayed failed after its retries), 11 a model is partial (some of its
    targets failed, the others written, as ``tfopt convert`` exits), 10 a gate tripped and nothing failed,
    0 all passed. What the run itself decided is kept: 2 (an output refused, before anything ran) and
    128 + N (stopped by signal N: 130 Ctrl-C, 143 SIGTERM)."""
    if result.exit_code == 2 or result.exit_code >= 128:
        return result.exit_code
    if any(m.status == "cancelled" for m in result.models) or any(t.status == "cancelled" for t in result.tasks):
        return 130
    if any(m.status == "failed" for m in result.models) or any(t.status in FAILED for t in result.tasks):
        return 1
    if any(m.status == "partial" for m in result.models):
        return PARTIAL_EXIT_CODE
    return 10 if any(gate_tripped(m) for m in result.models) else 0


HEADER = ("model", "target", "precision", "status", "accuracy drop (points)", "max abs err", "bytes", "gzip bytes",
          "latency ms", "seconds", "cache hits", "retries")


def cells(row: Row) -> list[str]:
    """A row as table text, in :data:`HEADER` order; ``-`` where there is no value."""
    return [row.model, row.target or f"({row.kind})", row.precision or "-", row.status,
            _fmt(row.accuracy_drop, "+.2f"), _fmt(row.max_abs_err, ".3g"), _fmt(row.bytes, ","),
            _fmt(row.gzip_bytes, ","), _fmt(row.latency_ms, ".3f"), f"{row.seconds:.1f}",
            ", ".join(row.cache_hits) or "-", str(row.retries)]


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary header as four lines of text (markdown, HTML and the console share them); the
    last says how the latency column was taken (:func:`latency_line`)."""
    peak = "-" if s["peak_rss_mb"] is None else f"{s['peak_rss_mb']:.0f} MB"
    return [f"models {s['models']}: {s['models_converted']} converted, {s['models_up_to_date']} up-to-date, "
            f"{s['models_gate_failed']} gate-failed, {s['models_failed']} failed"
            + (f", {s['models_partial']} partial" if s.get("models_partial") else "")
            + (f", {s['models_cancelled']} cancelled" if s["models_cancelled"] else ""),
            f"tasks {s['tasks']}: {s['tasks_run']} run, {s['tasks_cached']} cached, {s['tasks_failed']} failed, "
            f"{s['tasks_retried']} retried" + (f", {s['tasks_skipped']} skipped" if s["tasks_skipped"] else "")
            + (f", {s['tasks_cancelled']} cancelled" if s["tasks_cancelled"] else ""),
            f"{s['seconds']:.1f} s wall, {s['task_seconds']:.1f} s in tasks, {s['cache_hits']} cache hits, "
            f"peak task memory {peak}", latency_line(s)]


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)
