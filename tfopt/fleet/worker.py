"""One fleet task in this process: ``python -m tfopt.fleet.worker SPEC.json OUTCOME.json``.

The local executor starts one such process per task (a fresh TensorFlow each time, so a crash,
an out-of-memory kill or a hang ends that process only); under Ray, :func:`run_captured` runs the
same code inside a Ray worker. The outcome is written atomically; a process that dies writes none,
which is how its executor knows it crashed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any


def outcome_of(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the task; its outcome (``status`` ``ok`` or ``failed`` with a one-line ``error``), never raises."""
    import resource

    from tfopt.errors import TfoptError
    from tfopt.fleet.tasks import run_task

    start = time.perf_counter()
    try:
        outcome = {**run_task(spec), "status": "ok"}
    except TfoptError as exc:
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    except Exception as exc:  # a task reports; one model's bug must not hide the rest
        traceback.print_exc()
        outcome = {"status": "failed", "error": f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"}
    outcome.setdefault("seconds", time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    outcome["peak_rss_mb"] = peak_rss_mb()
    outcome["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    outcome["worker"] = f"pid {os.getpid()}"
    print(f"tfopt fleet: {spec['kind']} task {outcome['status']} in {outcome['seconds']:.2f} s "
          f"({outcome['cpu_seconds']:.2f} s CPU), peak RSS {outcome['peak_rss_mb']:.0f} MB", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    return outcome


def peak_rss_mb() -> float | None:
    """This process's peak resident memory, MB: ``VmHWM`` (``ru_maxrss`` would include the parent's
    peak, inherited through fork)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write_json(data: dict[str, Any], path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    spec_path, outcome_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    outcome = outcome_of(spec)
    write_json(outcome, outcome_path)
    os._exit(0)  # TensorFlow's teardown takes seconds and prints; the outcome is written


if __name__ == "__main__":
    main(sys.argv[1:])
