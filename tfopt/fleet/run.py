"""``run_fleet``: a manifest's models converted on an executor, each into OUTROOT/NAME.

Steps: read the manifest (:mod:`tfopt.fleet.manifest`); check every output (tfopt's rule,
:mod:`tfopt.conversion.output_paths`) before anything converts; skip the models that are up to date; plan the
others' tasks (:mod:`tfopt.fleet.plan`); run them (:mod:`tfopt.fleet.schedule`) on the local
executor or Ray; write the fleet report (:mod:`tfopt.fleet.report`).

Latency: each model's ``finish`` task measures its artifacts for the report, latency included. By
default it runs alone (``isolate_latency``: one model at a time, no other task on the cores), so
the numbers are the artifacts' own; with ``isolate_latency=False`` finishes run beside other tasks
(faster) and every report (``ModelRecord.latency``, fleet.json/md/html, the console) says
"under load (N parallel tasks)".

Exit code (``FleetResult.exit_code``): 0 every model converted (or was up to date) and passed its
gates; 10 a gate failed (every report written); 11 a model partial (some targets failed, the others
written); 1 a model failed; 2 an output was refused
(nothing converted); 128 + the signal when interrupted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from tfopt.errors import OptionError, TfoptError
from tfopt.fleet.manifest import DATA_OPTIONS, FleetModel, fingerprint, load_manifest
from tfopt.fleet.plan import Task, model_tasks, up_to_date
from tfopt.fleet.result import FleetResult, ModelRecord, latency_label

EXECUTORS = ("local", "ray")
LOGS = ".fleet-logs"


def run_fleet(manifest: str, outroot: str | None = None, *, executor: str = "local", address: str | None = None,
              jobs: int | None = None, cache: str | None = None, task_timeout: float | None = None, retries: int = 1,
              cancel: bool = False, force: bool = False, overwrite: bool = False, only: Sequence[str] = (),
              isolate_latency: bool = True, progress: Callable[[Any], None] | None = None) -> FleetResult:
    """Convert every model of ``manifest`` into ``outroot``/NAME (default: ``fleet_out`` next to the manifest).

    Args:
        executor: ``local`` (a process per task, ``jobs`` at a time) or ``ray`` (``address``:
            ``auto``, ``ray://HOST:PORT``, or None for a local Ray with ``jobs`` or every core).
        cache: the content-addressed cache (default OUTROOT/.tfopt-cache; see :mod:`tfopt.fleet.cache`).
        task_timeout: seconds after which a running task is killed.
        retries: how often a task whose worker process died is run again.
        cancel: on an interrupt, kill the running tasks instead of letting them finish.
        force: convert models that are up to date too. overwrite: replace an OUTROOT/NAME tfopt did not write.
        only: convert only these models (by name).
        isolate_latency: run each model's finish task (which times the artifacts) alone; False runs
            it beside other tasks and labels its latency "under load (N parallel tasks)".
        progress: called with a progress record (:class:`tfopt.fleet.progress.FleetProgress`) on every change.

    Raises:
        OptionError: a bad manifest, an unknown ``--only`` name or executor, Ray missing.
    """
    start = time.perf_counter()
    if executor not in EXECUTORS:
        raise OptionError(f"--executor {executor}: choose one of {', '.join(EXECUTORS)}")
    if retries < 0 or (task_timeout is not None and task_timeout <= 0) or (jobs is not None and jobs < 1):
        raise OptionError("--retries must be >= 0, --task-timeout > 0 and --jobs >= 1")
    models = load_manifest(manifest)
    if only:
        unknown = sorted(set(only) - {m.name for m in models})
        if unknown:
            raise OptionError(f"--only: no model named {', '.join(unknown)} in {manifest}")
        models = [m for m in models if m.name in only]
    root = os.path.abspath(outroot or os.path.join(os.path.dirname(os.path.abspath(manifest)), "fleet_out"))
    result = FleetResult(outroot=root, executor=executor)
    problems = check_outputs(models, root, overwrite=overwrite)
    if not problems:
        os.makedirs(root, exist_ok=True)
        problems = check_outputs(models, root, overwrite=overwrite)
    if problems:
        result.models = [ModelRecord(m.name, m.path, os.path.join(root, m.name), "failed", error=problems[m.name])
                         for m in models if m.name in problems]
        result.exit_code = 2
        return result
    cache_root = os.path.abspath(cache or os.path.join(root, ".tfopt-cache"))
    tasks, records = _plan(models, root, cache_root, force=force, overwrite=overwrite,
                           isolate_latency=isolate_latency)
    if tasks:
        _run(tasks, result, executor=executor, address=address, jobs=jobs, retries=retries,
             task_timeout=task_timeout, cancel=cancel, progress=progress, records=records)
    result.models = [records[m.name] for m in models]
    result.seconds = time.perf_counter() - start
    from tfopt.fleet.rows import exit_code

    result.exit_code = exit_code(result)
    _write_report(result)
    return result


def check_outputs(models: list[FleetModel], root: str, *, overwrite: bool) -> dict[str, str]:
    """tfopt's output rule for every model's OUTROOT/NAME (and its junit): name -> the refusal."""
    from tfopt.conversion.output_paths import check_convert_outputs, check_not_input

    problems = {}
    for model in models:
        sources = [model.options.get(k) for k in ("path", *DATA_OPTIONS)]
        try:
            if not os.path.isdir(root):  # OUTROOT is created only when no model's input is in the way
                check_not_input(root, sources)
                continue
            check_convert_outputs(os.path.join(root, model.name), model.options.get("junit"), sources,
                                  overwrite=overwrite)
        except TfoptError as exc:
            problems[model.name] = str(exc)
    return problems


def _plan(models: list[FleetModel], root: str, cache: str, *, force: bool, overwrite: bool,
          isolate_latency: bool) -> tuple[list[Task], dict[str, ModelRecord]]:
    tasks: list[Task] = []
    records: dict[str, ModelRecord] = {}
    for order, model in enumerate(models):
        outdir = os.path.join(root, model.name)
        stamp = fingerprint(model.options)
        if not force and up_to_date(outdir, stamp):
            report = read_report(outdir)
            failed = any(g.get("failed") for g in (report or {}).get("gates", []))
            records[model.name] = ModelRecord(model.name, model.path, outdir, "gate-failed" if failed else "up-to-date",
                                              report=report, latency=_earlier_latency(outdir))
            continue
        records[model.name] = ModelRecord(model.name, model.path, outdir, "failed")
        try:
            tasks += model_tasks(model, order, outdir, stamp=stamp, cache=cache, logs=os.path.join(root, LOGS),
                                 overwrite=overwrite, isolate_latency=isolate_latency)
        except TfoptError as exc:  # its options cannot be planned: this model fails, the others convert
            records[model.name].error = f"{type(exc).__name__}: {exc}"
    return tasks, records


def _run(tasks: list[Task], result: FleetResult, *, executor: str, address: str | None, jobs: int | None,
         retries: int, task_timeout: float | None, cancel: bool, progress: Callable[[Any], None] | None,
         records: dict[str, ModelRecord]) -> None:
    from tfopt.fleet.schedule import Scheduler

    if executor == "ray":
        from tfopt.fleet.ray_executor import RayExecutor

        runner: Any = RayExecutor(address, jobs)
    else:
        from tfopt.fleet.local import LocalExecutor

        runner = LocalExecutor(jobs)
    scheduler: Scheduler | None = None

    def changed(last: str) -> None:
        if progress is not None and scheduler is not None:
            progress(_progress(scheduler, records, last))

    scheduler = Scheduler(runner, tasks, retries=retries, task_timeout=task_timeout, cancel=cancel, on_change=changed,
                          shortcut=cached_emit)
    try:
        scheduler.run()
    finally:
        runner.close()
    result.tasks = [scheduler.records[t.id] for t in tasks]
    for task in tasks:
        record, outcome = scheduler.records[task.id], scheduler.outcomes.get(task.id, {})
        model = records[task.model]
        if task.kind == "finish" and record.status == "ok":
            model.status, model.report = outcome.get("model_status", "converted"), read_report(model.outdir)
            model.error, model.latency = outcome.get("error"), latency_label(record.parallel)
        elif record.status in ("failed", "timeout") and model.error is None:
            model.error = f"{task.target} {task.precision}: {record.error}" if task.target else record.error
        elif record.status == "cancelled" and model.status == "failed" and model.error is None:
            model.status, model.error = "cancelled", "interrupted"
    if scheduler.interrupted:
        result.exit_code = 128 + scheduler.interrupted


def cached_emit(task: Task, outcomes: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """An emit task's outcome straight from the cache (its entry there and intact), without a process."""
    from tfopt.fleet.cache import Cache
    from tfopt.fleet.keys import emit_key
    from tfopt.options import ConvertOptions

    key = outcomes.get(task.deps[0], {}).get("statistics_key") if task.kind == "emit" else None
    if key is None or task.target is None or task.precision is None:
        return None
    options = ConvertOptions.from_kwargs(**task.spec["kwargs"])
    entry = Cache(task.spec["cache"]).get("emit", emit_key(key, options, task.target, task.precision))
    if entry is None:
        return None
    try:
        with open(os.path.join(entry, "emit.json")) as f:
            record = json.load(f)
    except (OSError, ValueError):  # not tfopt's: the task runs, and its worker replaces the entry
        return None
    if not isinstance(record, dict) or record.get("failed"):  # a failure is never served as a result
        return None
    return {"status": "ok", "cache_hits": ["emit"], "record": record, "seconds": 0.0, "worker": "driver (cached)"}


def _progress(scheduler: Any, records: dict[str, ModelRecord], last: str) -> Any:
    statuses = [r.status for r in scheduler.records.values()]
    finishes = [r for r in scheduler.records.values() if r.kind == "finish"]
    fields = dict(models_total=len(records), models_done=sum(r.status == "ok" for r in finishes)
                  + sum(m.status in ("up-to-date",) for m in records.values()),
                  models_failed=sum(r.status in ("failed", "timeout", "skipped") for r in finishes),
                  models_cached=sum(m.status == "up-to-date" for m in records.values()),
                  tasks_total=len(statuses), tasks_done=sum(s in ("ok", "cached") for s in statuses),
                  tasks_running=statuses.count("running"), tasks_cached=statuses.count("cached"),
                  tasks_failed=sum(s in ("failed", "timeout") for s in statuses), last=last)
    from tfopt.fleet.progress import FleetProgress

    return FleetProgress(**fields)


def _earlier_latency(outdir: str) -> str | None:
    """How the latency of an up-to-date model's report was taken, from the run that wrote it."""
    from tfopt.fleet.tasks import STAMP

    try:
        with open(os.path.join(outdir, STAMP)) as f:
            how = json.load(f).get("latency")
    except (OSError, ValueError, AttributeError):
        return None
    return f"{how} (an earlier run)" if isinstance(how, str) else None


def read_report(outdir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(outdir, "report.json")) as f:
            report: dict[str, Any] = json.load(f)
        return report
    except (OSError, ValueError):
        return None


def _write_report(result: FleetResult) -> None:
    """The fleet report (:mod:`tfopt.fleet.report`)."""
    from tfopt.fleet.report import write_fleet_report

    write_fleet_report(result)
