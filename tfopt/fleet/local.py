"""The local executor: one fresh process per task (``python -m tfopt.fleet.worker``), at most
``jobs`` at a time.

Why a process per task, not a pool: a converter that segfaults, is killed for memory or calls
``os._exit`` takes its process down; with a fresh process per task that is one task's failure
(reported with its log's last lines, retried), never a broken pool that fails its neighbours. Each
process starts in its own session, so the terminal's Ctrl-C reaches the fleet's driver only: the
driver decides whether running tasks finish or are killed (``--cancel``). Everything a task
prints, TensorFlow's C++ logging included (file descriptors 1 and 2), goes to its log file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

from tfopt.fleet.plan import Task

WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int | None) -> None:
        self.slots = max(1, jobs or os.cpu_count() or 1)
        self._running: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
        self._scratch = tempfile.mkdtemp(prefix="tfopt-fleet-")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.environ.get("PYTHONPATH", "")
        self._env = {**os.environ, **WORKER_ENV, "PYTHONPATH": root + (os.pathsep + path if path else "")}

    def start(self, task: Task, attempt: int) -> None:
        spec_path = os.path.join(self._scratch, f"{task.id.replace('/', '.')}.{attempt}.spec.json")
        outcome_path = spec_path.replace(".spec.json", ".outcome.json")
        with open(spec_path, "w") as f:
            json.dump(task.spec, f)
        log = task.log_path(attempt)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tfopt.fleet.worker", spec_path, outcome_path],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=task.spec["base"], env=self._env, start_new_session=True)
        self._running[task.id] = (proc, outcome_path, log)

    def poll(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Tasks that ended since the last poll, with their outcomes (waits up to ``timeout`` for one)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            done = [(tid, self._outcome(tid)) for tid, (proc, _, _) in list(self._running.items())
                    if proc.poll() is not None]
            for tid, _ in done:
                del self._running[tid]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def _outcome(self, tid: str) -> dict[str, Any]:
        proc, outcome_path, _ = self._running[tid]
        try:
            with open(outcome_path) as f:
                outcome: dict[str, Any] = json.load(f)
            return outcome
        except (OSError, ValueError):
            code = proc.returncode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exited with status {code}"
            return {"status": "crashed", "error": f"the task's worker process died ({how}) before it reported",
                    "worker": f"pid {proc.pid}"}

    def kill(self, tid: str) -> None:
        proc = self._running[tid][0]
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started
        except ProcessLookupError:
            pass
        proc.wait()
        del self._running[tid]

    def running(self) -> list[str]:
        return list(self._running)

    def close(self) -> None:
        import shutil

        for tid in self.running():
            self.kill(tid)
        shutil.rmtree(self._scratch, ignore_errors=True)
