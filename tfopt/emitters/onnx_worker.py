"""tf2onnx in a child process with a fixed hash seed: the only way its output is reproducible.

Why a child process: tf2onnx's graph keeps each tensor's consumers in a ``set`` of node names
(``Graph._output_to_consumers``), and its optimizers walk those sets, and sets of node objects
(``Graph.extract_sub_graph_nodes`` returns ``list(set_of_nodes)`` and that becomes the node order), to decide
what to rewrite first. String hashes are salted per process (``PYTHONHASHSEED``) and object hashes are
addresses, so the same graph converted in two processes gave different graphs: basic-pitch's came out with 225
to 230 nodes, with TFLite and OpenVINO byte-identical. Sorting the ONNX graph afterwards cannot undo a
different rewrite, and patching each set in tf2onnx would chase its internals release by release. So the child
fixes both hashes at their root: ``PYTHONHASHSEED=0`` for strings, and tf2onnx's ``Node``/``Graph`` hashed by
creation number instead of address (:func:`tfopt.emitters.tf2onnx_hashes.stable_hashes`). A fixed seed alone was
not enough (three runs with ``PYTHONHASHSEED=0``: tf2onnx's optimizers left 324, 330 and 326 nodes; with both:
identical). The patch
lives only in the child, so the user's process and its tf2onnx are untouched.

One child serves many jobs: importing TensorFlow and tf2onnx costs seconds, once per child. Each job starts
from the same state (the creation counter and tf2onnx's generated-name counter are reset, and tf2onnx imports
every graph into a new ``tf.Graph``), so a job's file is byte-identical whichever jobs the child ran before.
Inside :func:`shared_child` (``tfopt convert`` enters it once per conversion) every conversion goes to one
child, and a repeated job (same graph, inputs, outputs and opset: fp32 and fp16 start from one float
conversion) is read back. Outside it, each call starts a child for its one job. A job can be sent ahead
(:func:`submit_in_child`: ``tfopt convert`` sends the float graph and the int8 engine's as soon as each
exists) and collected when its artifact is emitted; jobs queue in the child and run one at a time in the order
sent, so the files are those of synchronous jobs while this process builds the other targets.

A process whose own hash seed is already ``PYTHONHASHSEED=0`` (the ``tfopt`` command sets it for itself:
:func:`tfopt.cli.main`) does not start a new interpreter: :meth:`Tf2OnnxChild.start` forks it right after
importing TensorFlow, so the child serves from the parent's import instead of importing TensorFlow again. Its
state is a new child's after its own imports (the same seed, tf2onnx imported and patched after the fork): the
files are byte-identical to a spawned child's. A spawned child does not import Keras
(:func:`tfopt._tf.tf` imports TensorFlow without Keras 3: a third of its import).

Protocol: the parent writes ``graph.pb`` (deterministic serialization) and ``job.json`` (input and output
tensors, opset) into a job directory and sends its path as one line on the child's stdin; the child writes
``model.onnx`` or ``error.txt``, then answers one line on a private copy of its stdout (what TensorFlow and
tf2onnx print goes to the job's ``log.txt``, for the stage log). End of stdin ends the child.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

HASH_SEED = "0"
_SHARED: contextvars.ContextVar[Tf2OnnxChild | None] = contextvars.ContextVar("tfopt_tf2onnx_child", default=None)


class Tf2OnnxChild:
    """One tf2onnx child process (started on the first job) and the conversions it made.

    ``convert(...)`` gives ``(path of model.onnx, the child's log)``; the file lives until
    :meth:`close`. A child that dies (a crash inside TensorFlow) fails its job with what it printed,
    and the next job starts a new child.
    """

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="tfopt-onnx-")
        self._proc: subprocess.Popen[str] | _Forked | None = None
        self._startup = ""  # the current child's startup log
        self._jobs = itertools.count()
        self._done: dict[str, tuple[str, str]] = {}  # job key -> (model.onnx, log)
        self._failed: dict[str, RuntimeError] = {}  # job key -> its error, until told
        self._pending: list[tuple[str, str, bool, bool]] = []  # jobs sent, answered in this order: key, dir, first, sent
        self.submitted: list[str] = []  # job keys in the order sent to a child
        self._fresh = False  # the child has not served a job yet
        self.started = 0  # children started
        self.forked = 0  # of which forks of this process (no TensorFlow import of their own)
        self.converted = 0  # jobs converted (a repeated job is read back, not counted)
        self.lowered: dict[str, Any] = {}  # sha256 -> (graph tf2onnx converts, its lowering report), once per scope

    def convert(self, graph_def: Any, inputs: list[str], outputs: list[str], opset: int,
                imports: Sequence[Sequence[str]] = ()) -> tuple[str, str]:
        """Convert in the child (or read back the same job's earlier file, or collect the job
        :meth:`submit` sent ahead); raises ``RuntimeError(message, log)`` when tf2onnx fails or the
        child dies."""
        key = self.submit(graph_def, inputs, outputs, opset, imports)
        while any(pending[0] == key for pending in self._pending):
            self._collect()
        failed = self._failed.pop(key, None)  # a failure is told once, as a job converted now would be
        if failed is not None:
            raise failed
        return self._done[key]

    def submit(self, graph_def: Any, inputs: list[str], outputs: list[str], opset: int,
               imports: Sequence[Sequence[str]] = ()) -> str:
        """Send a job to the child without waiting for it (earlier jobs still queued or converting
        stay so), so that it converts while this process works on; :meth:`convert` with the same
        arguments collects it. The child runs its jobs one at a time in the order sent: each file is
        the one a synchronous job writes. ``imports``: the modules the model's loading imported
        (``--custom-objects``: :data:`tfopt._user_code.PROVENANCE_KEY`), imported by the job before it
        converts (a custom op's library, a tf2onnx handler of it). Returns the job's key."""
        data = graph_def.SerializeToString(deterministic=True)
        spec = json.dumps({"inputs": inputs, "outputs": outputs, "opset": opset, "imports": [list(i) for i in imports]},
                          sort_keys=True)
        key = hashlib.sha256(data + b"\0" + spec.encode()).hexdigest()
        if key in self._done or key in self._failed or any(pending[0] == key for pending in self._pending):
            return key
        if self._proc is not None and self._proc.poll() is not None:
            while self._pending:  # it died: its jobs fail, or run again in a new child, as they would have
                self._collect()
        job = os.path.join(self._dir, f"job{next(self._jobs)}")
        os.makedirs(job)
        with open(os.path.join(job, "graph.pb"), "wb") as f:
            f.write(data)
        with open(os.path.join(job, "job.json"), "w") as f:
            f.write(spec)
        if self._proc is not None and self._proc.poll() is not None:
            self._stop()  # it died after its last job: a new one
        if self._proc is None:
            self._start()
        first, self._fresh = self._fresh, False  # its startup log goes with its first job
        self._pending.append((key, job, first, self._send(job)))
        self.submitted.append(key)
        return key

    def _collect(self) -> None:
        """Wait for the oldest job sent, if any: its file into ``_done``, or its error into ``_failed``."""
        if not self._pending:
            return
        key, job, first, sent = self._pending.pop(0)
        answer = self._answer() if sent else ""
        self.converted += 1
        log = (_read(self._startup) if first else "") + _read(os.path.join(job, "log.txt"))
        result = os.path.join(job, "model.onnx")
        if answer != "ok" or not os.path.exists(result):
            message = _read(os.path.join(job, "error.txt")).strip()
            if not message:  # it died: its exit code (the whole child's, when that is what died)
                code = answer.split()[-1] if answer.startswith("exit ") else self._stop()
                tail = [line for line in log.splitlines() if line.strip()][-3:]
                message = f"the converter process exited with {code}: {' | '.join(tail)}"
            self._failed[key] = RuntimeError(message, log)
            if self._proc is None and self._pending:  # the child died: a new one runs the jobs queued behind
                self._resend()
            return
        self._done[key] = (result, log)

    def _resend(self) -> None:
        """Send every queued job again, in order, to a new child (as a job sent after a death would be)."""
        self._start()  # its startup log goes with the first of them
        self._pending = [(key, job, index == 0, self._send(job)) for index, (key, job, _, _) in enumerate(self._pending)]
        self._fresh = False

    def _start(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfopt's parent
        env = {**os.environ, "PYTHONHASHSEED": HASH_SEED,
               "PYTHONPATH": os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x)}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._startup = os.path.join(self._dir, f"startup{self.started}.log")
        with open(self._startup, "w") as log:  # the child keeps its own copy of the file
            self._proc = subprocess.Popen([sys.executable, "-m", "tfopt.emitters.onnx_worker"], env=env, text=True,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self.started += 1
        self._fresh = True

    def _send(self, job: str) -> bool:
        proc = self._proc
        with contextlib.suppress(OSError):  # the child is gone (a broken pipe): its exit code and log say why
            if proc is not None and proc.stdin is not None:
                proc.stdin.write(job + "\n")
                proc.stdin.flush()
                return True
        return False

    def _answer(self) -> str:
        proc = self._proc
        with contextlib.suppress(OSError):
            if proc is not None and proc.stdout is not None:
                return proc.stdout.readline().strip()
        return ""

    def _stop(self) -> int | None:
        """End the child (it holds nothing between jobs): its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return code

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before it starts)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, *, fork: bool = False) -> None:
        """Start the child now, so that its imports overlap the caller's own work (the first job
        would start it otherwise). ``fork``: the caller has done no TensorFlow work yet; when this
        process's hash seed is the child's (:func:`can_fork`), the child is a fork of it after
        TensorFlow's import (see the module docstring) instead of a new interpreter."""
        if self._proc is None and fork and can_fork():
            self._fork()
        elif self._proc is None:
            self._start()

    def _fork(self) -> None:
        from tfopt._tf import tf

        tf()  # imported once, here, for both processes
        jobs_r, jobs_w = os.pipe()
        answers_r, answers_w = os.pipe()
        self._startup = os.path.join(self._dir, f"startup{self.started}.log")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: serve until the parent closes the job pipe, never return into its stack
            code = 1
            try:
                os.close(jobs_w)
                os.close(answers_r)
                for sig in (signal.SIGINT, signal.SIGTERM):  # the parent's handlers are the parent's
                    signal.signal(sig, signal.SIG_DFL)
                log = os.open(self._startup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(log, 1)
                os.dup2(log, 2)
                code = _serve(os.fdopen(jobs_r), os.fdopen(answers_w, "w"))
            finally:
                os._exit(code)
        os.close(jobs_r)
        os.close(answers_w)
        self._proc = _Forked(pid, os.fdopen(jobs_w, "w"), os.fdopen(answers_r))
        self.started += 1
        self.forked += 1
        self._fresh = True

    def close(self) -> None:
        """End the child and remove every file it wrote."""
        self._stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Forked:
    """A forked child with the part of ``subprocess.Popen``'s interface :class:`Tf2OnnxChild` uses."""

    def __init__(self, pid: int, stdin: IO[str], stdout: IO[str]):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def can_fork() -> bool:
    """This process hashes strings as the child must (``PYTHONHASHSEED=0``), and can fork."""
    return os.environ.get("PYTHONHASHSEED") == HASH_SEED and sys.flags.hash_randomization == 0 and hasattr(os, "fork")


@contextlib.contextmanager
def shared_child() -> Iterator[Tf2OnnxChild]:
    """Inside, every :func:`convert_in_child` goes to one child process, and a repeated job is read
    back (nested: the outer one's child). The child ends when the outermost scope does."""
    current = _SHARED.get()
    if current is not None:
        yield current
        return
    child = Tf2OnnxChild()
    token = _SHARED.set(child)
    try:
        yield child
    finally:
        _SHARED.reset(token)
        child.close()


def current_child() -> Tf2OnnxChild | None:
    """The child of the enclosing :func:`shared_child` scope, or None outside one."""
    return _SHARED.get()


def convert_in_child(graph_def: Any, inputs: list[str], outputs: list[str], opset: int,
                     imports: Sequence[Sequence[str]] = ()) -> tuple[Any, str]:
    """``(ModelProto, child's stderr)``, the job importing ``imports`` first (:meth:`Tf2OnnxChild.submit`);
    raises ``RuntimeError(message, log)`` when tf2onnx fails."""
    import onnx

    with shared_child() as child:
        path, log = child.convert(graph_def, inputs, outputs, opset, imports)
        return onnx.load_model(path), log


def submit_in_child(graph_def: Any, inputs: list[str], outputs: list[str], opset: int,
                    imports: Sequence[Sequence[str]] = ()) -> bool:
    """Send a job ahead to the current :func:`shared_child` (:meth:`Tf2OnnxChild.submit`); its :func:`convert_in_child`
    collects it. Outside a shared scope nothing is sent (each call's child ends with the call): whether it was sent."""
    child = _SHARED.get()
    if child is None:
        return False
    child.submit(graph_def, inputs, outputs, opset, imports)
    return True


def _read(path: str) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def _convert(job: str) -> str:
    """One job: convert ``job/graph.pb`` as ``job/job.json`` says, from the state every job starts in."""
    import tf2onnx

    from tfopt._tf import graph_def_class
    from tfopt._user_code import import_recorded

    with open(os.path.join(job, "job.json")) as f:
        spec = json.load(f)
    graph_def = graph_def_class()()
    with open(os.path.join(job, "graph.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    tf2onnx.utils.INTERNAL_NAME = 1  # generated names count from here ("x__1")
    try:  # this job's fork imports what the model's loading imported (its ops, a tf2onnx handler of them)
        import_recorded(spec.get("imports", ()))
        proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=spec["inputs"], output_names=spec["outputs"],
                                                  opset=spec["opset"])
    except Exception as exc:
        with open(os.path.join(job, "error.txt"), "w") as f:
            f.write((str(exc).splitlines() or [type(exc).__name__])[0][:400])
        return "error"
    with open(os.path.join(job, "model.onnx"), "wb") as f:
        f.write(proto.SerializeToString(deterministic=True))
    return "ok"


def _serve(jobs: IO[str] | None = None, answers: IO[str] | None = None) -> int:
    """The child: one job directory per line of ``jobs`` (stdin), one answer line each on ``answers``
    (a private copy of stdout). Each job runs in a
    fork of this process as it stands after the imports, so no job sees what an earlier one left
    (objects hashed by address elsewhere in tf2onnx and TensorFlow iterate in the order of a fresh
    process). What the job prints (Python or C++) goes to its ``log.txt``, never into the answers."""
    if answers is None:
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # stray prints outside a job: the startup log
    from tfopt._tf import tf

    tf()  # quiet TensorFlow's Python logger before tf2onnx imports it
    import tf2onnx

    from tfopt.emitters.tf2onnx_hashes import stable_hashes

    stable_hashes(tf2onnx.graph.Node, tf2onnx.graph.Graph)
    for line in jobs or sys.stdin:
        job = line.strip()
        if not job:
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the job: its own copy of the imported state, gone when it ends
            code = 1
            try:
                log = os.open(os.path.join(job, "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(log, 1)
                os.dup2(log, 2)
                code = 0 if _convert(job) == "ok" else 1
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        answers.write(("ok" if code == 0 else f"exit {code}") + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    from tfopt._tf import tf
    tf()  # TensorFlow without Keras 3, before tf2onnx imports it
    sys.exit(_serve())
