"""Run a task graph on an executor: dependencies, retries, timeouts, interrupts.

- A task starts when every task it depends on ended ``ok``; when one failed, it is ``skipped``.
  Ready tasks start finish-first, then emit, then prepare (models complete early), manifest order within.
- A task whose worker process died without reporting (``crashed``: a segfault, ``os._exit``, an
  out-of-memory kill) is retried up to ``retries`` times; a task that reported an error (a typed
  tfopt error: the same input fails the same way) or timed out (it would hang again) is not.
- ``shortcut``: a task whose result is already cached ends at once, without a process.
- ``task_timeout``: a task running longer is killed (``timeout``).
- An ``exclusive`` task (a ``finish`` that times latency) runs alone: when it is next in line the
  scheduler starts nothing else until the running tasks ended, and nothing while it runs. Each
  record keeps ``parallel``, the most other tasks running at once beside it (0: it ran alone).
- An interrupt (SIGINT/SIGTERM through :mod:`tfopt.terminal.signals`, or ``KeyboardInterrupt`` without
  it) stops scheduling: running tasks finish (``cancel=False``; their outputs are atomic) or are
  killed (``cancel=True``); tasks not started are ``cancelled``.

The executor protocol: ``slots``, ``start(task, attempt)``, ``poll(timeout) -> [(task id, outcome)]``,
``kill(task id)``, ``running()``, ``close()``; an outcome is a dict with ``status`` (``ok``,
``failed``, ``crashed``) and what the task returned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from tfopt.fleet.plan import KIND_ORDER, Task
from tfopt.fleet.result import TaskRecord

LOG_TAIL = 20


def log_tail(path: str, lines: int = LOG_TAIL) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in f.readlines()[-lines:]]
    except OSError:
        return []


class Scheduler:
    def __init__(self, executor: Any, tasks: list[Task], *, retries: int, task_timeout: float | None,
                 cancel: bool, on_change: Callable[[str], None],
                 shortcut: Callable[[Task, dict[str, dict[str, Any]]], dict[str, Any] | None] | None = None) -> None:
        self.executor, self.tasks = executor, {t.id: t for t in tasks}
        self.retries, self.timeout, self.cancel = retries, task_timeout, cancel
        self.records = {t.id: TaskRecord(t.model, t.kind, t.target, t.precision, status="pending",
                                         memory_mb=t.memory_mb) for t in tasks}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.started: dict[str, tuple[float, int]] = {}  # task id -> (start time, attempt)
        self.on_change = on_change
        self.shortcut = shortcut  # a task's outcome without running it (its result is cached), or None
        self.interrupted = 0

    def run(self) -> None:
        from tfopt.terminal import signals

        try:
            with signals.patient():  # the driver stops scheduling at once; running tasks end on their own
                self._loop()
        except KeyboardInterrupt:  # no signal handler installed (the Python API): the same rules
            self._interrupt(2)
            with signals.patient():
                self._loop()
        for tid in self._pending():
            self._set(tid, "cancelled", error="interrupted before it started")

    def _loop(self) -> None:
        from tfopt.terminal import signals

        while self._pending() or self.executor.running():
            if signals.received() and not self.interrupted:
                self._interrupt(signals.received())
            if not self.interrupted:
                self._start_ready()
            for tid, outcome in self.executor.poll(0.2):
                self._ended(tid, outcome)
            self._check_timeouts()
            if self.interrupted and not self.executor.running():
                break

    def _pending(self) -> list[str]:
        return [tid for tid, r in self.records.items() if r.status == "pending"]

    def _start_ready(self) -> None:
        ready = []
        for tid in self._pending():
            deps = [self.records[d].status for d in self.tasks[tid].deps]
            if any(s not in ("ok", "cached", "pending", "running") for s in deps):
                self._set(tid, "skipped", error="a task it depends on did not succeed")
            elif all(s in ("ok", "cached") for s in deps):
                ready.append(self.tasks[tid])
        ready.sort(key=lambda t: (KIND_ORDER[t.kind], t.order))
        if self.shortcut is not None:
            for task in list(ready):
                outcome = self.shortcut(task, self.outcomes)
                if outcome is not None:
                    ready.remove(task)
                    self.started[task.id] = (time.monotonic(), 0)
                    self._ended(task.id, outcome)
        for task in ready:
            running = self.executor.running()
            if any(self.tasks[tid].exclusive for tid in running) or len(running) >= self.executor.slots:
                break
            if task.exclusive and running:
                break  # drain: it waits for the running tasks, and nothing starts before it
            self._launch(task, 0)
            if task.exclusive:
                break

    def _launch(self, task: Task, attempt: int) -> None:
        self.executor.start(task, attempt)
        self.started[task.id] = (time.monotonic(), attempt)
        self._set(task.id, "running")
        running = self.executor.running()
        for tid in running:  # concurrency only grows when a task starts: the maximum is seen here
            self.records[tid].parallel = max(self.records[tid].parallel, len(running) - 1)

    def _ended(self, tid: str, outcome: dict[str, Any]) -> None:
        task, record = self.tasks[tid], self.records[tid]
        _, attempt = self.started[tid]
        record.retries, record.worker = attempt, outcome.get("worker")
        record.seconds = float(outcome.get("seconds") or time.monotonic() - self.started[tid][0])
        record.peak_rss_mb = outcome.get("peak_rss_mb")
        status = outcome["status"]
        if status == "crashed" and attempt < self.retries and not self.interrupted:
            self._launch(task, attempt + 1)
            return
        self.outcomes[tid] = outcome
        if status == "ok":
            hits = list(outcome.get("cache_hits") or [])
            record.cache_hits = hits
            cached = task.kind != "finish" and ((task.kind == "emit" and "emit" in hits) or
                                                (task.kind == "prepare" and "statistics" in hits))
            self._set(tid, "cached" if cached else "ok")
        else:
            record.log_tail = outcome.get("log_tail") or log_tail(task.log_path(attempt))
            self._set(tid, "failed", error=outcome.get("error"))

    def _check_timeouts(self) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        for tid in self.executor.running():
            start, attempt = self.started[tid]
            if now - start > self.timeout:
                self.executor.kill(tid)
                record = self.records[tid]
                record.seconds, record.retries = now - start, attempt
                record.log_tail = log_tail(self.tasks[tid].log_path(attempt))
                self._set(tid, "timeout", error=f"killed after --task-timeout {self.timeout:g} s")

    def _interrupt(self, signum: int) -> None:
        self.interrupted = signum
        for tid in self._pending():
            self._set(tid, "cancelled", error="interrupted before it started")
        if self.cancel:
            for tid in self.executor.running():
                self.executor.kill(tid)
                self._set(tid, "cancelled", error="interrupted: cancelled (--cancel)")
        self.on_change("interrupted: " + ("running tasks cancelled" if self.cancel else
                                          "waiting for the running tasks to finish (signal again to stop at once)"))

    def _set(self, tid: str, status: str, *, error: str | None = None) -> None:
        record = self.records[tid]
        record.status = status
        if error is not None:
            record.error = error
        with contextlib.suppress(Exception):  # a progress printer never stops the fleet
            self.on_change(f"{tid}: {status}")
