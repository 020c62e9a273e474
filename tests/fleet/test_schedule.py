"""The scheduler's exclusive tasks: a finish task that times latency runs alone (nothing starts
before it while others run, nothing beside it), and every record says how many other tasks ran
beside it. Driven by an in-process executor that implements the executor protocol (each task ends
after a fixed number of polls), over several fleet sizes and slot counts."""

from __future__ import annotations

import pytest

from tfopt.fleet.plan import Task
from tfopt.fleet.schedule import Scheduler


class StepExecutor:
    """Tasks "run" for ``steps[kind]`` polls each; records what ran at once."""

    def __init__(self, slots: int, steps: dict[str, int]) -> None:
        self.slots, self.steps = slots, steps
        self.left: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.overlaps: list[tuple[str, ...]] = []  # the running set after every start

    def start(self, task: Task, attempt: int) -> None:
        self.left[task.id], self.kinds[task.id] = self.steps[task.kind], task.kind
        self.overlaps.append(tuple(sorted(self.left)))

    def poll(self, timeout: float) -> list[tuple[str, dict]]:
        for tid in self.left:
            self.left[tid] -= 1
        done = [tid for tid, n in self.left.items() if n <= 0]
        for tid in done:
            del self.left[tid]
        return [(tid, {"status": "ok", "seconds": 1.0}) for tid in done]

    def kill(self, tid: str) -> None:
        del self.left[tid]

    def running(self) -> list[str]:
        return list(self.left)

    def close(self) -> None:
        pass


def _tasks(models: int, emits: int, *, exclusive: bool) -> list[Task]:
    out = []
    for m in range(models):
        name = f"m{m}"
        prepare = Task(f"{name}/prepare", "prepare", name, {}, order=m)
        emit = [Task(f"{name}/emit/{e}", "emit", name, {}, [prepare.id], f"t{e}", "fp32", order=m) for e in range(emits)]
        finish = Task(f"{name}/finish", "finish", name, {}, [e.id for e in emit], order=m, exclusive=exclusive)
        out += [prepare, *emit, finish]
    return out


def _run(models: int, emits: int, slots: int, *, exclusive: bool) -> tuple[Scheduler, StepExecutor]:
    executor = StepExecutor(slots, {"prepare": 2, "emit": 3, "finish": 2})
    scheduler = Scheduler(executor, _tasks(models, emits, exclusive=exclusive), retries=0, task_timeout=None,
                          cancel=False, on_change=lambda _: None)
    scheduler.run()
    return scheduler, executor


@pytest.mark.parametrize(("models", "emits", "slots"), [(1, 1, 1), (2, 2, 2), (3, 1, 3), (4, 3, 2), (5, 2, 4)])
def test_an_exclusive_finish_runs_alone(models, emits, slots):
    scheduler, executor = _run(models, emits, slots, exclusive=True)
    assert {r.status for r in scheduler.records.values()} == {"ok"}
    for running in executor.overlaps:
        finishes = [tid for tid in running if tid.endswith("/finish")]
        assert not finishes or (running == tuple(finishes) and len(finishes) == 1), running
    assert all(r.parallel == 0 for r in scheduler.records.values() if r.kind == "finish")
    most = max(len(r) for r in executor.overlaps)
    assert most <= slots and (most > 1 or slots == 1 or models * emits == 1)  # the rest still run side by side


@pytest.mark.parametrize(("models", "emits", "slots"), [(3, 1, 3), (4, 3, 2), (5, 2, 4)])
def test_without_isolation_finishes_share_the_cores_and_say_so(models, emits, slots):
    scheduler, executor = _run(models, emits, slots, exclusive=False)
    assert {r.status for r in scheduler.records.values()} == {"ok"}
    most = max(len(r) for r in executor.overlaps)
    assert most == slots  # the slots were all used at some point
    for record in scheduler.records.values():
        assert 0 <= record.parallel <= slots - 1
    assert any(r.parallel > 0 for r in scheduler.records.values() if r.kind == "finish")
