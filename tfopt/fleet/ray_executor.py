"""The Ray executor: each task a Ray task declaring its CPUs and memory (:mod:`tfopt.fleet.resources`),
so Ray packs them onto the cluster's nodes without out-of-memory kills.

- ``address``: ``auto`` (the cluster this machine belongs to), ``ray://HOST:PORT`` (Ray Client),
  or None: a local Ray instance with ``jobs`` (else every) core.
- No telemetry: ``RAY_USAGE_STATS_ENABLED=0`` is set before Ray is imported; no dashboard; the
  workers' output is not forwarded to this terminal (each task writes its own log file).
- Ray's own retries are off (``max_retries=0``): the scheduler (:mod:`tfopt.fleet.schedule`) retries
  a crashed task itself, the same way for both executors, and counts it. A timed-out task is
  cancelled with ``ray.cancel(force=True)``, which kills its worker process.
- Ray pickles each task's spec and outcome (JSON-able dicts) between the driver and its workers:
  that is Ray's own transport between processes it started, not the cache, whose entries are
  never unpickled (:mod:`tfopt.fleet.cache`).
- On a cluster, the manifest's directory, the models, OUTROOT and the cache must be on storage every
  node sees at the same path (the tasks read and write them directly), and tfopt importable there.
"""

from __future__ import annotations

import os
from typing import Any

from tfopt.errors import OptionError
from tfopt.fleet.plan import Task


def import_ray() -> Any:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before the import: Ray reads it then
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray
    except ImportError:
        raise OptionError("--executor ray needs Ray: pip install tfopt[ray]") from None
    return ray


def run_captured(spec: dict[str, Any], log: str) -> dict[str, Any]:
    """A Ray task: the fleet task with file descriptors 1 and 2 sent to ``log`` (restored after)."""
    import sys

    from tfopt.fleet.schedule import log_tail
    from tfopt.fleet.worker import outcome_of

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        outcome = outcome_of(spec)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
    cwd = os.getcwd()
    if outcome["status"] != "ok":
        outcome["log_tail"] = log_tail(log)  # the log may be on the worker's disk only
    import ray

    outcome["worker"] = f"node {ray.get_runtime_context().get_node_id()[:12]}, pid {os.getpid()}, cwd {cwd}"
    return outcome


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, jobs: int | None) -> None:
        ray = import_ray()
        self.ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            import logging

            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                          configure_logging=True)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=jobs or os.cpu_count() or 1, **kwargs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, jobs or cpus) if address else max(1, cpus)
        self._remote = ray.remote(run_captured)
        self._running: dict[str, Any] = {}

    def start(self, task: Task, attempt: int) -> None:
        ref = self._remote.options(num_cpus=task.num_cpus, memory=int(task.memory_mb * 2**20), max_retries=0,
                                   name=task.id).remote(task.spec, task.log_path(attempt))
        self._running[task.id] = ref

    def poll(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        if not self._running:
            return []
        by_ref = {ref: tid for tid, ref in self._running.items()}
        ready, _ = self.ray.wait(list(by_ref), num_returns=len(by_ref), timeout=timeout)
        done = []
        for ref in ready:
            tid = by_ref[ref]
            del self._running[tid]
            done.append((tid, self._outcome(ref)))
        return done

    def _outcome(self, ref: Any) -> dict[str, Any]:
        from ray import exceptions as rx

        try:
            outcome: dict[str, Any] = self.ray.get(ref)
            return outcome
        except (rx.WorkerCrashedError, rx.OutOfMemoryError, rx.NodeDiedError, rx.LocalRayletDiedError) as exc:
            return {"status": "crashed", "error": f"the task's Ray worker died before it reported: "
                                                  f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        except rx.RayError as exc:
            return {"status": "failed", "error": f"Ray: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}

    def kill(self, tid: str) -> None:
        ref = self._running.pop(tid)
        self.ray.cancel(ref, force=True)

    def running(self) -> list[str]:
        return list(self._running)

    def close(self) -> None:
        for tid in self.running():
            self.kill(tid)
        if self._owned:
            self.ray.shutdown()
