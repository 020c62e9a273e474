"""An artifact run in a child process that is killed when a call outlives its bound.

Native code cannot be interrupted from a Python thread, and not every runtime can cancel a run (LiteRT's
interpreter has no cancellation at all), so a bound that must hold for every runtime is a process boundary: :class:`ChildRunner` opens the artifact in
``python -m tfopt.runtimes.child`` (numpy and the one runtime imported, no TensorFlow) and waits for each
answer at most the bound; at the bound it kills the child (its own process id) and raises
:class:`~tfopt.VerificationTimeoutError` naming the artifact, the runtime, the bound and the fix.
A child that dies (a crash inside the runtime) fails the call with its exit code and last lines.

It costs a process start and the runtime's import (about a second), so :func:`tfopt.runtimes.runner_for`
uses it only for an artifact whose target's ``loops`` role says it holds a loop: a graph without one ends.

Protocol: one JSON line a request on the child's stdin, one JSON line an answer on a private copy of its
stdout (what the runtime prints goes to a log file); arrays travel as ``.npz`` files (no pickle) in a
private directory. Requests: ``open`` (target, path, input/output specs, threads; answered with whether the
runner offers a runtime-default run), ``run`` (feeds file, outputs file), ``latency`` (feeds file, runs: timed in
the child, as :func:`tfopt.runtimes.base.latency`), ``at_runtime_default`` (a precision hint or null: the runner's
``at_runtime_default`` in the child, whose other runner then answers every ``run``).

A runner that offers ``at_runtime_default`` in process (OpenVINO's: what a plain ``compile_model(xml, "CPU")``
runs, bf16 on CPUs with bf16) offers it here too, so the report's runtime-default column is measured for an IR
that holds a loop as for any other: :meth:`ChildRunner.at_runtime_default` opens the artifact in a second child
at that precision (the report closes each runner before it asks), its runs held to the same bound.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from tfopt.errors import TfoptError, VerificationTimeoutError
from tfopt.graph import Model, TensorSpec

START = 120.0  # seconds the child may take to start and import its runtime, beyond the bound of opening the file (a loaded CI machine)


class ChildRunner:
    """A :class:`tfopt.runtimes.base.Runner` whose runtime runs in a child process, each call (opening
    included) bounded by ``seconds``; ``describe_bound(seconds)`` says where the bound came from."""

    def __init__(self, target: str, path: str, model: Model, threads: int | None, seconds: float, *,
                 describe_bound: Any = None):
        self.target, self.path, self.seconds = target, path, seconds
        self.inputs, self.outputs = list(model.inputs), list(model.outputs)
        self._model, self._threads = model, threads
        self._describe = describe_bound or (lambda s: f"{s:g} s")
        self._dir = tempfile.mkdtemp(prefix="tfopt-run-")
        self._log = os.path.join(self._dir, "log.txt")
        self._calls = 0
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfopt's parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x)}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with open(self._log, "w") as log:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "tfopt.runtimes.child"], env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log)
        from tfopt.targets import target as record

        try:  # the runner's "module:function", not the target's name: a registered target is not in the child's table
            opened = self._ask({"open": {"runner": record(target, "format").runner, "path": path, "threads": threads,
                                         "inputs": [dataclasses.asdict(s) for s in self.inputs],
                                         "outputs": [dataclasses.asdict(s) for s in self.outputs]}}, "opening it",
                               allowance=START)
        except BaseException:
            self.close()
            raise
        self._runner_class = opened.get("runtime_default")  # "module:Class" of a runner that offers it, else None
        if self._runner_class:  # asked with hasattr (tfopt.report.measure): present only when the runner offers it
            self.at_runtime_default = self._at_runtime_default
            self.default_failed = self._default_failed

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sent, got = self._feeds(feeds), os.path.join(self._dir, "outputs.npz")
        self._ask({"run": sent, "out": got}, "running it")
        with np.load(got, allow_pickle=False) as data:
            return {s.name: data[s.name] for s in self.outputs}

    def latency(self, feeds: Mapping[str, Any], runs: int) -> dict[str, Any]:
        """:func:`tfopt.runtimes.base.latency` of one call on ``feeds``, timed in the child (no transfer in it);
        each timed call is held to the bound."""
        answer = self._ask({"latency": self._feeds(feeds), "runs": runs}, "timing it", calls=runs + 3)
        return dict(answer["latency"])

    def _at_runtime_default(self, precision: str | None = None) -> tuple[dict[str, Any], ChildRunner | None]:
        """The runner's ``at_runtime_default(precision)`` (OpenVINO's: ``(record, runner)``), computed in a second
        child that then runs at that precision (``None`` when it would give the verified numbers, or cannot
        compile: the record says why). A run there that outlives the bound fails as the plugin's refusal does
        (a ``RuntimeError``: the record tells it), not the report."""
        other = _DefaultChild(self.target, self.path, self._model, self._threads, self.seconds,
                              describe_bound=self._describe)
        try:
            answer = other._ask({"at_runtime_default": precision}, "compiling it at the runtime's default precision")
        except BaseException:
            other.close()
            raise
        if not answer["switched"]:
            other.close()
            return dict(answer["record"]), None
        return dict(answer["record"]), other

    def _default_failed(self, record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        """The runner class's own ``default_failed(record, exc)``, for a runtime-default run that failed."""
        import importlib

        module, _, name = str(self._runner_class).partition(":")
        return dict(getattr(importlib.import_module(module), name).default_failed(record, exc))

    def close(self) -> None:
        """End the child and remove its files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _feeds(self, feeds: Mapping[str, Any]) -> str:
        self._calls += 1
        path = os.path.join(self._dir, f"feeds{self._calls % 2}.npz")
        _savez(path, {s.name: np.asarray(feeds[s.name]) for s in self.inputs})
        return path

    def _ask(self, request: dict[str, Any], doing: str, *, calls: int = 1, allowance: float = 0.0) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError(f"{self.path}: its runtime's process is closed")
        with contextlib.suppress(OSError):
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        line = _readline(proc.stdout, self.seconds * calls + allowance)
        if line is None:  # the bound passed: the runtime is still in its call
            self._kill()
            raise self.timed_out(doing)
        if not line:
            code = self._kill()
            tail = [x for x in _read(self._log).splitlines() if x.strip()][-3:]
            raise RuntimeError(f"its runtime's process exited with {code} while {doing}: {' | '.join(tail)}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            cls = vars(sys.modules[TfoptError.__module__]).get(answer["error"])
            if isinstance(cls, type) and issubclass(cls, TfoptError):
                raise cls(answer["message"])
            raise RuntimeError(f"{answer['error']}: {answer['message']}")
        return answer

    def timed_out(self, doing: str) -> VerificationTimeoutError:
        return timed_out(self.target, self.path, self._describe(self.seconds), doing, stopped=True)

    def _kill(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        self.close()
        return code


class _DefaultChild(ChildRunner):
    """A child running the artifact at its runtime's default precision: a call that outlives the bound raises a
    ``RuntimeError`` (the report records it as that run's failure, beside the verified row)."""

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        try:
            return super().__call__(feeds)
        except VerificationTimeoutError as exc:
            raise RuntimeError(f"at the runtime's default precision: {exc}") from exc


def timed_out(target_name: str, path: str, bound: str, doing: str, *, stopped: bool) -> VerificationTimeoutError:
    """The error of an artifact call that outlived its bound (``bound``: its seconds and where they came from),
    in the stage in force (:mod:`tfopt.runtimes.bounded_stage`: verification unless another is entered)."""
    from tfopt.runtimes.bounded_stage import current
    from tfopt.targets import target

    runtime = target(target_name, "format").runtime_name
    stage = current()
    return VerificationTimeoutError(
        f"{'' if stage.verifying else stage.head() + ': '}running {path} in {runtime}: no answer within {bound} "
        f"while {doing} (a loop whose condition never turns false runs forever){'; its process was stopped' if stopped else ''}. "
        f"If it is only slow, raise --verify-timeout SECONDS (0: no bound){stage.way_out().replace(', or', '; or', 1)}")


def _readline(stream: IO[bytes], seconds: float) -> bytes | None:
    """One line from ``stream`` (b"" at its end), or ``None`` when none comes within ``seconds``."""
    end = time.monotonic() + seconds
    fd, data = stream.fileno(), b""
    while not data.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b""
        data += chunk
    return data


def _read(path: str) -> str:
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        return f.read()
    return ""


def _serve(requests: IO[str], answers: IO[str]) -> int:
    """The child: answer each request line (see the module docstring) until stdin ends."""
    import importlib

    from tfopt.runtimes.base import latency

    runner: Any = None
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if "open" in request:
                spec = request["open"]
                model = Model(graph_def=None, inputs=specs_of(spec["inputs"]), outputs=specs_of(spec["outputs"]))
                module, _, function = spec["runner"].partition(":")
                runner = getattr(importlib.import_module(module), function)(spec["path"], model, spec["threads"])
                offers = hasattr(runner, "at_runtime_default") and hasattr(type(runner), "default_failed")
                answer: dict[str, Any] = {"ok": True, "runtime_default": f"{type(runner).__module__}:"
                                          f"{type(runner).__qualname__}" if offers else None}
            elif "at_runtime_default" in request:
                record, other = runner.at_runtime_default(request["at_runtime_default"])
                if other is not None:  # every later run is at that precision
                    runner.close()
                    runner = other
                answer = {"ok": True, "record": record, "switched": other is not None}
            elif "run" in request:
                with np.load(request["run"], allow_pickle=False) as data:
                    got = runner(dict(data))
                _savez(request["out"], {k: np.asarray(v) for k, v in got.items()})
                answer = {"ok": True}
            else:
                with np.load(request["latency"], allow_pickle=False) as data:
                    feeds = dict(data)
                answer = {"ok": True, "latency": latency(functools.partial(runner, feeds), int(request["runs"]))}
        except Exception as exc:  # told to the parent, which raises it (a TfoptError as its own class)
            answer = {"error": type(exc).__name__, "message": " ".join(str(exc).split())[:2000]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


def _savez(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    savez: Any = np.savez  # its stub reads the members' dict as its own keyword arguments
    savez(path, **arrays)


def specs_of(items: Sequence[Mapping[str, Any]]) -> list[TensorSpec]:
    return [TensorSpec(**{**s, "shape": None if s.get("shape") is None else tuple(s["shape"])}) for s in items]


if __name__ == "__main__":
    _answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the runtime prints goes to the log, never into the answers
    sys.exit(_serve(sys.stdin, _answers))
