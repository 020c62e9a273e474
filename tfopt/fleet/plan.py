"""The fleet's task graph: per model, one ``prepare`` task, then one ``emit`` task per
(target, precision) (independent: they can run on different workers), then one ``finish`` task::

    prepare(m) --> emit(m, tflite, fp32) --+
               --> emit(m, onnx, fp32)   --+--> finish(m)   (OUTROOT/m, written atomically)
               --> ...                   --+

A model is not planned at all when its output is up to date (same options and input bytes as
the run that wrote it: the stamp in OUTROOT/NAME, and every artifact still there), unless ``force``.
Planning imports no TensorFlow: the (target, precision) pairs come from
:func:`tfopt.conversion.checks.check_options`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from tfopt.fleet.manifest import FleetModel
from tfopt.fleet.resources import estimate, model_mb
from tfopt.fleet.tasks import STAMP

KIND_ORDER = {"finish": 0, "emit": 1, "prepare": 2}  # finish models first: done outputs early, fewer half-done


@dataclass
class Task:
    id: str  # "NAME/prepare", "NAME/emit/tflite/fp32", "NAME/finish"
    kind: str
    model: str
    spec: dict[str, Any]  # what the task function reads (JSON)
    deps: list[str] = field(default_factory=list)
    target: str | None = None
    precision: str | None = None
    num_cpus: float = 1.0
    memory_mb: float = 0.0
    order: int = 0  # the model's index in the manifest
    exclusive: bool = False  # runs alone: nothing else starts while it runs (a finish task timing latency)

    def log_path(self, attempt: int) -> str:
        return os.path.join(self.spec["logs"], f"{self.id.replace('/', '.')}.{attempt}.log")


def up_to_date(outdir: str, stamp: str) -> bool:
    try:
        with open(os.path.join(outdir, STAMP)) as f:
            if json.load(f)["fingerprint"] != stamp:
                return False
        with open(os.path.join(outdir, "manifest.json")) as f:
            artifacts = json.load(f)["artifacts"]
    except (OSError, KeyError, ValueError, TypeError):
        return False
    return os.path.exists(os.path.join(outdir, "report.json")) and \
        all(os.path.exists(os.path.join(outdir, a["path"])) for a in artifacts)


def pairs_of(model: FleetModel, outdir: str) -> list[tuple[str, str]]:
    """The (target, precision) pairs ``tfopt convert`` would build (no model loaded)."""
    from tfopt.conversion.checks import check_options
    from tfopt.options import ConvertOptions

    o = ConvertOptions.from_kwargs(**model.convert_kwargs())
    pairs, _ = check_options(model.path, outdir, o)
    return [(t, p) for t, p in pairs]


def model_tasks(model: FleetModel, order: int, outdir: str, *, stamp: str, cache: str, logs: str,
                overwrite: bool, isolate_latency: bool = True) -> list[Task]:
    """The tasks that convert ``model`` into ``outdir``. ``isolate_latency``: the ``finish`` task
    (which measures every artifact for the report, latency included) runs alone."""
    size = model_mb(model.path)
    base = {"name": model.name, "base": model.base, "path": model.path, "kwargs": model.convert_kwargs(),
            "outdir": outdir, "cache": cache, "overwrite": overwrite, "stamp": stamp,
            "logs": os.path.join(logs, model.name), "latency": "isolated" if isolate_latency else "under load"}

    def task(kind: str, deps: list[str], target: str | None = None, precision: str | None = None) -> Task:
        suffix = f"/{target}/{precision}" if target else ""
        cpus, memory = estimate(kind, size)
        return Task(f"{model.name}/{kind}{suffix}", kind, model.name,
                    {**base, "kind": kind, "target": target, "precision": precision}, deps, target, precision,
                    cpus, memory, order)

    prepare = task("prepare", [])
    emits = [task("emit", [prepare.id], t, p) for t, p in pairs_of(model, outdir)]
    finish = task("finish", [e.id for e in emits] or [prepare.id])
    finish.exclusive = isolate_latency
    return [prepare, *emits, finish]
