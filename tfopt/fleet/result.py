"""What a fleet run produced: one :class:`TaskRecord` per task, one :class:`ModelRecord` per model.

Shared by the executors (which fill it) and :mod:`tfopt.fleet.report` (which writes it); plain
dataclasses of JSON-able values, so ``dataclasses.asdict`` gives fleet.json's body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_KINDS = ("prepare", "emit", "finish")
LATENCY_ISOLATED = "isolated"


def latency_label(parallel: int) -> str:
    """How a finish task's latency was taken, from the most other tasks running beside it."""
    return LATENCY_ISOLATED if parallel == 0 else f"under load ({parallel} parallel task{'s' * (parallel > 1)})"

TASK_STATUSES = ("ok", "cached", "failed", "timeout", "cancelled", "skipped")
MODEL_STATUSES = ("converted", "up-to-date", "gate-failed", "partial", "failed", "cancelled")  # partial: some targets failed


@dataclass
class TaskRecord:
    model: str                      # the manifest's model name
    kind: str                       # prepare (load->freeze->optimize->statistics) | emit (one target x precision) | finish (manifest + report + gates)
    target: str | None = None       # emit only
    precision: str | None = None    # emit only
    status: str = "ok"              # one of TASK_STATUSES
    seconds: float = 0.0            # wall time of the last attempt (0.0 when cached)
    retries: int = 0                # attempts beyond the first
    cache_hits: list[str] = field(default_factory=list)   # cache stages reused by this task, e.g. ["prepare"]
    peak_rss_mb: float | None = None
    memory_mb: float | None = None  # what the task declared it needs (the executor's resource request)
    error: str | None = None        # one line
    log_tail: list[str] = field(default_factory=list)     # last lines of the task's captured log (failed/timeout)
    worker: str | None = None       # "pid 1234" locally, the Ray node id / worker id under Ray
    parallel: int = 0               # the most other tasks of the fleet running at once while it ran


@dataclass
class ModelRecord:
    name: str
    source: str                     # the model path
    outdir: str                     # OUTROOT/NAME
    status: str                     # one of MODEL_STATUSES
    report: dict[str, Any] | None = None   # the model's OUTROOT/NAME/report.json, when written
    error: str | None = None
    latency: str | None = None      # how its report's latency was taken: LATENCY_ISOLATED, or under load (N tasks)


@dataclass
class FleetResult:
    outroot: str
    executor: str                   # "local" | "ray"
    models: list[ModelRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int = 0              # 0 all passed; 10 a gate failed (reports written); 11 a model partial; 1 a model failed; 2 an output refused; 130 interrupted
